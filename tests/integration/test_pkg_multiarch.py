"""Multi-arch packages against a real ``docker-registry`` (plain and with token auth), read back with
``skopeo``: ``pkg build --platforms linux/amd64,linux/arm64 --push``, ``pkg push``, ``pkg manifest``
(``index``), ``pkg remote-tag``, and ``linuxkit build --arch`` pulling the right platform into an empty
cache. The package is built from the Debian archive's amd64 and arm64 ``busybox-static`` (no emulation)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunLinuxkit
from tests.integration.test_pkg_build import BUILD_YML, make_repo, shared_debian_cache
from tests.integration.test_registry_client import free_port, serve_registry
from tests.integration.test_registry_token_auth import PASSWORD, USER, TokenRegistry, token_registry

from linuxkit.oci import reference
from linuxkit.oci.cache import Cache
from linuxkit.oci.image import Platform
from linuxkit.oci.registry import Credentials, RegistryOptions
from linuxkit.oci.registry.client import Client

pytestmark = [pytest.mark.integration]
__all__ = ["token_registry"]  # a fixture

SKOPEO = shutil.which("skopeo")
TWO_ARCH_YML = BUILD_YML.replace("arches: [amd64]", "arches: [amd64, arm64]")
#: ELF e_machine of each architecture's busybox
ELF_MACHINE = {"amd64": 0x3E, "arm64": 0xB7}


@dataclass
class Target:
    """A registry and how the CLI and skopeo reach it."""

    host: str
    cli: list[str] = field(default_factory=list)  # global flags for linuxkit
    skopeo: list[str] = field(default_factory=list)


@pytest.fixture(params=["plain", "token"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    if request.param == "token":
        reg: TokenRegistry = request.getfixturevalue("token_registry")
        creds = f"{USER}:{PASSWORD}"
        yield Target(reg.host, ["--registry-creds", f"{reg.host}={creds}"], ["--creds", creds])
        return
    where = tmp_path / "registry"
    where.mkdir()
    with serve_registry(where) as host:
        yield Target(host)


@pytest.fixture(scope="module")
def two_arch_lock(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A lock of both architectures, made once by ``pkg lock`` (shared index cache)."""
    pkg = make_repo(tmp_path_factory.mktemp("lock2"), TWO_ARCH_YML)
    proc = subprocess.run(
        [sys.executable, "-m", "linuxkit.cli.main", "pkg", "lock", str(pkg)],
        capture_output=True,
        env={**os.environ, "LINUXKIT_DEBIAN_CACHE": str(shared_debian_cache())},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    text = (pkg / "debian.lock").read_text()
    assert "amd64:" in text and "arm64:" in text
    return text


def env(tmp_path: Path, cache: str) -> dict[str, str]:
    return {
        "LINUXKIT_CACHE": str(tmp_path / cache),
        "LINUXKIT_DEBIAN_CACHE": str(shared_debian_cache()),
        "DOCKER_CONFIG": str(tmp_path / "no-docker-config"),
    }


def skopeo(target: Target, *args: str, check: bool = True) -> bytes:
    """``skopeo inspect ARGS`` (its output; empty when it fails and ``check`` is off)."""
    if SKOPEO is None:
        pytest.skip("skopeo not installed (apt-get install skopeo)")
    proc = subprocess.run(
        [SKOPEO, "inspect", "--tls-verify=false", *target.skopeo, *args], capture_output=True, check=False
    )
    assert proc.returncode == 0 or not check, proc.stderr.decode()
    return proc.stdout if proc.returncode == 0 else b""


def digest_of_index(target: Target, ref: str) -> str:
    return "sha256:" + hashlib.sha256(skopeo(target, "--raw", f"docker://{ref}")).hexdigest()


def delete_manifest(target: Target, ref: str, digest: str) -> None:
    """Delete a manifest from the registry by digest (every tag naming it goes with it)."""
    parsed = reference.parse(ref)
    creds = {target.host: Credentials(USER, PASSWORD)} if target.cli else {}
    with Client(parsed.domain, RegistryOptions(use_docker_config=False, credentials=creds), "test") as client:
        resp = client.request(
            "DELETE", f"/v2/{parsed.path}/manifests/{digest}", repository=parsed.path, actions="delete"
        )
        resp.close()
        assert resp.status_code == 202, resp.status_code


def raw(target: Target, ref: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(skopeo(target, "--raw", f"docker://{ref}"))
    return data


def by_arch(index: dict[str, Any]) -> dict[str, str]:
    """arch → manifest digest of the images (an SBOM attestation, platform unknown/unknown, is no image)"""
    return {
        m["platform"]["architecture"]: m["digest"]
        for m in index["manifests"]
        if m.get("annotations", {}).get("vnd.docker.reference.type") != "attestation-manifest"
    }


def check_index(target: Target, name: str, arches: set[str], *, sboms: bool = True) -> dict[str, str]:
    """``name`` in the registry is an OCI index of exactly ``arches``, each a manifest whose config
    says that architecture and which ``name-ARCH`` names too, and one SBOM attestation for each image
    (where they stand depends on how the index was merged, as upstream's AppendIndex: what was pushed
    from this cache first); returns arch → manifest digest."""
    index = raw(target, name)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    found = by_arch(index)
    assert set(found) == arches and len(index["manifests"]) == (2 if sboms else 1) * len(arches)
    notes = [m for m in index["manifests"] if m["digest"] not in found.values()]
    assert all(n["platform"] == {"architecture": "unknown", "os": "unknown"} for n in notes)
    described = sorted(n["annotations"]["vnd.docker.reference.digest"] for n in notes)
    assert described == (sorted(found.values()) if sboms else [])
    repo = name.rsplit(":", 1)[0]
    for arch, digest in found.items():
        config = json.loads(skopeo(target, "--config", "--raw", f"docker://{repo}@{digest}"))
        assert (config["architecture"], config["os"]) == (arch, "linux")
        assert skopeo(target, "--format", "{{.Digest}}", f"docker://{name}-{arch}").decode().strip() == digest
    return found


def layer_digests(target: Target, repo: str, digest: str) -> list[str]:
    return [layer["digest"] for layer in raw(target, f"{repo}@{digest}")["layers"]]


def busybox_machine(tar_path: Path, image: str) -> int:
    with tarfile.open(tar_path) as tar:
        member = tar.extractfile(f"containers/onboot/000-{image}/lower/bin/busybox")
        assert member is not None
        header = member.read(20)
    assert header[:4] == b"\x7fELF"
    return int.from_bytes(header[18:20], "little")


def test_two_arch_package_pushed_read_back_and_pulled_per_arch(
    linuxkit: RunLinuxkit, tmp_path: Path, target: Target, two_arch_lock: str
) -> None:
    repo = make_repo(tmp_path / "src", TWO_ARCH_YML, lock=two_arch_lock)
    org = f"{target.host}/test"
    built = env(tmp_path, "built")
    proc = linuxkit(
        *target.cli, "pkg", "build", "--org", org, "--platforms", "linux/amd64,linux/arm64", "--push", repo, env=built
    )
    name = linuxkit("pkg", "show-tag", "--org", org, "--canonical", repo).stdout.decode().strip()
    assert f"Built {name} (linux/amd64, linux/arm64)" in proc.stderr.decode()
    # one index in the cache with both images
    cache = Cache(tmp_path / "built")
    assert cache.platforms(name) == [Platform("linux", "amd64"), Platform("linux", "arm64")]
    root = cache.find(name)
    assert root is not None

    # reproducible: built again into an empty cache, platforms in the other order, the same index bytes
    linuxkit("pkg", "build", "--org", org, "--platforms", "linux/arm64,linux/amd64", repo, env=env(tmp_path, "again"))
    again = Cache(tmp_path / "again").find(name)
    assert again is not None and again.digest == root.digest

    found = check_index(target, name, {"amd64", "arm64"})
    assert by_arch(json.loads(cache.layout.read_blob(root.digest))) == found  # the cache's own index was pushed

    repository = name.rsplit(":", 1)[0]
    layers = {arch: layer_digests(target, repository, digest) for arch, digest in found.items()}
    assert not set(layers["amd64"]) & set(layers["arm64"])
    (tmp_path / "s.yml").write_text(f"onboot:\n  - name: tiny\n    image: {name}\n")
    for arch, other in (("arm64", "amd64"), ("amd64", "arm64")):
        fresh = env(tmp_path, f"fresh-{arch}")
        out = tmp_path / f"out-{arch}"
        proc = linuxkit(
            *target.cli, "build", "--arch", arch, "--format", "tar", "--no-sbom", "--dir", out, "s.yml", env=fresh
        )
        assert f"Pulling {name}" in proc.stderr.decode()
        pulled = Cache(tmp_path / f"fresh-{arch}").layout
        assert all(pulled.has_blob(d) for d in [found[arch], *layers[arch]])
        assert not any(pulled.has_blob(d) for d in [found[other], *layers[other]])  # only the right platform
        assert busybox_machine(out / "s.tar", "tiny") == ELF_MACHINE[arch]


def test_pushes_from_two_machines_add_up_and_pkg_manifest_rebuilds_the_index(
    linuxkit: RunLinuxkit, tmp_path: Path, target: Target, two_arch_lock: str
) -> None:
    repo = make_repo(tmp_path / "src", TWO_ARCH_YML, lock=two_arch_lock)
    org = f"{target.host}/test"
    name = linuxkit("pkg", "show-tag", "--org", org, "--canonical", repo).stdout.decode().strip()
    # each "machine" (cache) builds and pushes one platform: the registry's index gets both
    linuxkit(*target.cli, "pkg", "push", "--org", org, "--platforms", "linux/amd64", repo, env=env(tmp_path, "a"))
    assert set(by_arch(raw(target, name))) == {"amd64"}
    merged = linuxkit(
        *target.cli, "pkg", "push", "--org", org, "--platforms", "linux/arm64", repo, env=env(tmp_path, "b")
    )
    assert "merged with the platforms" in merged.stderr.decode()
    found = check_index(target, name, {"amd64", "arm64"})

    # a third machine with --pull fetches both TAG-<arch> images instead of building them
    proc = linuxkit(*target.cli, "pkg", "build", "--pull", "--org", org, repo, env=env(tmp_path, "pulled"))
    err = proc.stderr.decode()
    assert f"Pulled {name} (linux/amd64, linux/arm64) instead of building" in err and "Built" not in err
    pulled = Cache(tmp_path / "pulled")
    index = pulled.find(name)
    assert index is not None and by_arch(json.loads(pulled.layout.read_blob(index.digest))) == found
    assert all(pulled.resolve(name, Platform("linux", arch)) is not None for arch in found)

    # the index lost (deleted in the registry, its TAG-<arch> images kept): pkg manifest makes it again
    delete_manifest(target, name, digest_of_index(target, name))
    assert skopeo(target, "--raw", f"docker://{name}-arm64", check=False) != b""
    assert skopeo(target, "--raw", f"docker://{name}", check=False) == b""
    linuxkit(*target.cli, "pkg", "manifest", "--org", org, repo, env=env(tmp_path, "c"))
    # made from the TAG-<arch> images alone, as upstream's: the attestations are not found from those
    assert check_index(target, name, {"amd64", "arm64"}, sboms=False) == found

    # pkg manifest (and its alias index): the release's index made from the RELEASE-<arch> images alone
    for arch, cache in (("amd64", "a"), ("arm64", "b")):
        linuxkit(
            *target.cli,
            "cache",
            "push",
            "--remote-name",
            f"{org}/tiny:v1-{arch}",
            f"{name}-{arch}",
            env=env(tmp_path, cache),
        )
    proc = linuxkit(*target.cli, "pkg", "manifest", "--org", org, "--release", "v1", repo, env=env(tmp_path, "c"))
    err = proc.stderr.decode()
    assert f"image {org}/tiny:v1-s390x not found; skipping" in err
    assert check_index(target, f"{org}/tiny:v1", {"amd64", "arm64"}, sboms=False) == found
    again = linuxkit(*target.cli, "pkg", "index", "--org", org, "--release", "v1", repo, env=env(tmp_path, "c"))
    assert again.stderr.decode().count("(unchanged)") == 2

    # remote-tag: in the repository (the same manifest under a new tag), then into another repository
    linuxkit(*target.cli, "pkg", "remote-tag", f"{org}/tiny:v1", f"{org}/tiny:v2", env=env(tmp_path, "c"))
    v1 = skopeo(target, "--format", "{{.Digest}}", f"docker://{org}/tiny:v1")
    assert skopeo(target, "--format", "{{.Digest}}", f"docker://{org}/tiny:v2") == v1
    same = linuxkit(*target.cli, "pkg", "remote-tag", f"{org}/tiny:v1", f"{org}/tiny:v2", env=env(tmp_path, "c"))
    assert "identical to" in same.stderr.decode()
    linuxkit(*target.cli, "pkg", "remote-tag", f"{org}/tiny:v2", f"{target.host}/copy/tiny:v3", env=env(tmp_path, "c"))
    copied = raw(target, f"{target.host}/copy/tiny:v3")
    assert by_arch(copied) == found
    config = json.loads(skopeo(target, "--config", "--raw", f"docker://{target.host}/copy/tiny@{found['arm64']}"))
    assert config["architecture"] == "arm64"


def test_errors_are_clear(linuxkit: RunLinuxkit, tmp_path: Path, two_arch_lock: str) -> None:
    repo = make_repo(tmp_path / "src", TWO_ARCH_YML, lock=two_arch_lock)
    where = tmp_path / "registry"
    where.mkdir()
    with serve_registry(where) as host:
        org = f"{host}/test"
        cases = [
            (["pkg", "build", "--platforms", "linux/sparc", repo], "unknown platform 'linux/sparc'"),
            (["pkg", "push", "--platforms", "arm64", repo], "invalid target platform specification 'arm64'"),
            (["pkg", "push", "--org", org, "--nobuild", repo], "--nobuild was given"),
            (["pkg", "push", "--nobuild", "--force", repo], "flags --force and --nobuild conflict"),
            (["pkg", "manifest", "--org", org, repo], f"the registry has no {org}/tiny:"),
            (["pkg", "build", "--pull", "--force", repo], "flags --force and --pull conflict"),
            (["pkg", "build", "--platforms", "linux/amd64", "--skip-platforms", "linux/arm64", repo], "together"),
            (["pkg", "build", "--skip-platforms", "arm64", repo], "--skip-platforms: invalid target platform"),
        ]
        for argv, message in cases:
            proc = linuxkit(*argv, check=False, env=env(tmp_path, "c"))
            err = proc.stderr.decode()
            assert proc.returncode == 2, (argv, err)
            assert message in err and "hint:" in err and "Traceback" not in err, (argv, err)
        assert "tiny" not in linuxkit("cache", "ls", env=env(tmp_path, "c")).stderr.decode()  # nothing was built
        # --skip-platforms leaves out platforms of build.yml; all of them: nothing to do (not an error, as upstream)
        skip_all = ["pkg", "build", "--skip-platforms", "linux/amd64,linux/arm64", repo]
        assert "with no architectures to build" in linuxkit(*skip_all, env=env(tmp_path, "c")).stderr.decode()
        linuxkit("pkg", "build", "--skip-platforms", "linux/arm64", repo, env=env(tmp_path, "skip"))
        name = linuxkit("pkg", "show-tag", "--canonical", repo).stdout.decode().strip()
        assert Cache(tmp_path / "skip").platforms(name) == [Platform("linux", "amd64")]

        # an image without the platform a build asks for
        linuxkit("pkg", "push", "--org", org, "--platforms", "linux/amd64", repo, env=env(tmp_path, "c"))
        name = linuxkit("pkg", "show-tag", "--org", org, "--canonical", repo).stdout.decode().strip()
        (tmp_path / "s.yml").write_text(f"onboot:\n  - name: tiny\n    image: {name}\n")
        proc = linuxkit("build", "--arch", "arm64", "-f", "tar", "s.yml", check=False, env=env(tmp_path, "fresh"))
        err = proc.stderr.decode()
        assert proc.returncode != 0 and "no variant for linux/arm64" in err and "linux/amd64" in err, err

    # no registry where the package's org says: refused before anything is built
    gone = f"127.0.0.1:{free_port()}/test"
    proc = linuxkit(
        "pkg", "push", "--org", gone, "--platforms", "linux/amd64", repo, check=False, env=env(tmp_path, "d")
    )
    err = proc.stderr.decode()
    assert proc.returncode == 1 and f"cannot reach registry {gone.split('/')[0]}" in err and "hint:" in err, err
    assert "Traceback" not in err
    assert "tiny" not in linuxkit("cache", "ls", env=env(tmp_path, "d")).stderr.decode()  # refused before building
