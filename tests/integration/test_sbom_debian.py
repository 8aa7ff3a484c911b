"""The SBOM from the Debian locks, for real: examples/minimal.yml built from this repository's packages (the
real Debian archive), its ``sbom.spdx.json`` checked against every package lock it uses and validated by
spdx-tools, built twice from empty caches to the same bytes; a package's SBOM attestation pushed to a real
``docker-registry`` and read back by ``linuxkit sbom`` from a fresh cache; the ``cache`` verbs on such an
index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from tests.conftest import ROOT, RunLinuxkit
from tests.integration.test_pkg_build import lock_text, make_repo, manifest_digest
from tests.integration.test_pkg_push import debs, host

from linuxkit.arch import host_arch

pytestmark = [pytest.mark.integration]

__all__ = ["host", "lock_text"]  # fixtures, shared with test_pkg_push and test_pkg_build

#: the packages examples/minimal.yml names
PACKAGES = ("kernel", "init", "crun", "busybox", "getty")
ARCH = host_arch()


def _locked() -> dict[str, dict[str, Any]]:
    """Every Debian package the locks of minimal.yml's packages pin for this architecture."""
    out: dict[str, dict[str, Any]] = {}
    for name in PACKAGES:
        lock = yaml.safe_load((ROOT / "pkg" / name / "debian.lock").read_text())
        for item in lock["arches"][ARCH]:
            out[item["name"]] = item
    return out


def _pyspdxtools(path: Path) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).parent / "pyspdxtools"
    return subprocess.run([str(tool), "-i", str(path)], capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """minimal.yml as kernel+initrd, twice, each from an empty image cache (the packages built again)."""
    where = tmp_path_factory.mktemp("sbom-minimal")
    outs = []
    for i in range(2):
        out = where / f"build{i}"
        out.mkdir()
        env = {**os.environ, **debs(), "LINUXKIT_CACHE": str(out / "cache"), "COLUMNS": "200"}
        argv = [sys.executable, "-m", "linuxkit.cli.main", "build", "--format", "kernel+initrd", "--dir", str(out)]
        proc = subprocess.run(
            [*argv, str(ROOT / "examples" / "minimal.yml")], capture_output=True, env=env, timeout=1800, check=False
        )
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-4000:]
        outs.append(out)
    return outs[0], outs[1]


def _sbom(linuxkit: RunLinuxkit, target: Path | str, *flags: str, cache: Path | None = None) -> dict[str, Any]:
    args: list[str | Path] = ["sbom", *flags, target]
    if cache is not None:
        args = ["--cache", cache, *args]
    doc = json.loads(linuxkit(*args).stdout)
    assert isinstance(doc, dict)
    return doc


def test_minimal_sbom_lists_every_locked_debian_package_and_where_files_came_from(
    linuxkit: RunLinuxkit, built: tuple[Path, Path], tmp_path: Path
) -> None:
    first, second = built
    # build twice from empty caches: the same initrd, so the same SBOM inside it
    assert (first / "minimal-initrd.img").read_bytes() == (second / "minimal-initrd.img").read_bytes()
    doc = _sbom(linuxkit, first / "minimal")
    assert doc["spdxVersion"] == "SPDX-2.3"
    out = tmp_path / "minimal.spdx.json"
    out.write_text(json.dumps(doc))
    checked = _pyspdxtools(out)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    packages = {p["name"]: p for p in doc["packages"]}
    locked = _locked()
    assert {"busybox-static", "crun", "libc6", "libseccomp2"} <= set(locked)
    for name, item in locked.items():
        assert name in packages, f"{name} (locked) is not in the SBOM"
        package = packages[name]
        assert package["versionInfo"] == item["version"]
        assert package["checksums"] == [{"algorithm": "SHA256", "checksumValue": item["sha256"]}]
        (purl,) = [r["referenceLocator"] for r in package["externalRefs"] if r["referenceType"] == "purl"]
        assert purl.startswith(f"pkg:deb/debian/{name}@")
        codename = item["suite"].split("-")[0]
        release = {"bookworm": "12", "trixie": "13"}[codename]
        assert f"?arch={item['architecture']}&distro=debian-{release}" in purl
        assert package["supplier"].startswith("Person: ")
    # one SPDX package per Debian package: libc6 is in crun's image and getty's, listed once
    assert sum(1 for p in doc["packages"] if p["name"] == "libc6") <= 1
    assert {f"docker.io/linuxkit/{n}" for n in PACKAGES} <= set(packages)

    # licences from the copyright files: DEP-5 ones give SPDX expressions, busybox's free text none
    assert "Apache-2.0" in packages["crun"]["licenseDeclared"]
    assert "LGPL-2.1-or-later" in packages["libc6"]["licenseDeclared"]
    assert packages["busybox-static"]["licenseDeclared"] == "NOASSERTION"

    ids = {p["SPDXID"]: p["name"] for p in doc["packages"]}
    files = {f["SPDXID"]: f["fileName"] for f in doc["files"]}
    origin: dict[str, set[str]] = {}
    made_from: dict[str, set[str]] = {}
    for rel in doc["relationships"]:
        source, kind, target = rel["spdxElementId"], rel["relationshipType"], rel["relatedSpdxElement"]
        if kind == "CONTAINS" and target in files:
            origin.setdefault(files[target], set()).add(ids[source])
        if kind == "GENERATED_FROM":
            made_from.setdefault(files[source], set()).add(ids[target])
    assert origin["bin/busybox"] == {"busybox-static"}  # init's busybox
    assert origin["containers/onboot/000-hello/rootfs/bin/busybox"] == {"busybox-static"}
    crun = [f for f in origin if f.endswith("/crun") or f == "usr/bin/crun"]
    assert crun and all(origin[f] == {"crun"} for f in crun)
    libc = [f for f in origin if f.endswith("/libc.so.6")]
    assert libc and all(origin[f] == {"libc6"} for f in libc)
    getty = [f for f in origin if f.endswith("/usr/bin/getty.sh")]  # from the package directory: the image's
    assert getty and all(origin[f] == {"docker.io/linuxkit/getty"} for f in getty)
    (kernel_from,) = {frozenset(v) for f, v in made_from.items() if f in ("kernel", "kernel.tar")}
    assert all(name.startswith("linux-image-") for name in kernel_from)
    # every file of the document says where it came from
    assert set(origin) == set(files.values())

    # the same document read straight from the initrd file, and as CycloneDX 1.5
    assert _sbom(linuxkit, first / "minimal-initrd.img") == doc
    bom = _sbom(linuxkit, first / "minimal", "--format", "cyclonedx")
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(json.dumps(bom)) is None
    assert {c["name"] for c in bom["components"] if c["type"] == "library"} >= set(locked)


def test_an_images_sbom_from_the_cache_and_through_a_registry(
    linuxkit: RunLinuxkit, tmp_path: Path, host: str, built: tuple[Path, Path], lock_text: str
) -> None:
    # the cached package image of the build: its attestation
    cache = built[0] / "cache"
    name = linuxkit("pkg", "show-tag", "--canonical", ROOT / "pkg" / "busybox").stdout.decode().strip()
    doc = _sbom(linuxkit, name, cache=cache)
    assert [p["name"] for p in doc["packages"]] == ["docker.io/linuxkit/busybox", "busybox-static"]
    assert [f["fileName"] for f in doc["files"]] == ["./bin/busybox"]

    # a package pushed with its SBOM, read back by `linuxkit sbom` from an empty cache (pulled)
    repo = make_repo(tmp_path / "src", lock=lock_text)
    pushed = tmp_path / "pushed"
    linuxkit("--cache", pushed, "pkg", "build", "--org", f"{host}/test", "--push", repo, env=debs())
    image = linuxkit("pkg", "show-tag", "--org", f"{host}/test", "--canonical", repo).stdout.decode().strip()
    fresh = tmp_path / "fresh"
    remote = _sbom(linuxkit, image, cache=fresh)
    assert remote == _sbom(linuxkit, image, cache=pushed)
    names = {p["name"] for p in remote["packages"]}
    assert "busybox-static" in names and f"{host}/test/tiny" in names
    ids = {p["SPDXID"]: p["name"] for p in remote["packages"]}
    files = {f["SPDXID"]: f["fileName"] for f in remote["files"]}
    owners = {
        files[r["relatedSpdxElement"]]: ids[r["spdxElementId"]]
        for r in remote["relationships"]
        if r["relatedSpdxElement"] in files
    }
    assert owners == {"./bin/busybox": "busybox-static", "./bin/hello.sh": f"{host}/test/tiny"}
    assert manifest_digest(linuxkit, fresh, image) == manifest_digest(linuxkit, pushed, image)

    # cache verbs on an index with an attestation manifest
    verify = linuxkit("--cache", fresh, "cache", "verify")
    assert b"damaged" not in verify.stderr.lower()
    exported = tmp_path / "x.tar"
    linuxkit("--cache", fresh, "cache", "export", "--outfile", exported, image)
    other = tmp_path / "imported"
    linuxkit("--cache", other, "cache", "import", exported)
    linuxkit("--cache", fresh, "cache", "rm", image)
    assert image not in linuxkit("--cache", fresh, "cache", "ls").stderr.decode()


def test_an_image_without_an_sbom_and_an_output_without_one_are_user_errors(
    linuxkit: RunLinuxkit, scenario: Path, tmp_path: Path
) -> None:
    proc = linuxkit("sbom", "svc:1", check=False)  # in the cache, without attestations
    assert proc.returncode == 2, proc.stderr
    assert b"docker.io/library/svc:1 has no SBOM attestation for linux/" in proc.stderr
    linuxkit("build", "--no-sbom", "--format", "tar", "--o", tmp_path / "out.tar", scenario)
    proc = linuxkit("sbom", tmp_path / "out.tar", check=False)
    assert proc.returncode == 2 and b"has no sbom.spdx.json" in proc.stderr
    assert b"--no-sbom" in proc.stderr  # the hint
