"""``linuxkit pkg build`` from the real Debian archive (this machine's apt mirror), no Docker."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from tests.conftest import RunLinuxkit

pytestmark = pytest.mark.integration

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
}

BUILD_YML = """image: tiny
org: test
arches: [amd64]
config:
  pid: host
debian:
  packages: [busybox-static]
  include: [bin/busybox]
  copy:
    - {src: files, dst: /}
  symlinks:
    /bin/sh: busybox
  entrypoint: [/bin/hello.sh]
"""


def shared_debian_cache() -> Path:
    root = Path(os.environ.get("LINUXKIT_TEST_CACHE", Path.home() / ".cache" / "linuxkit-tests")) / "debian"
    root.mkdir(parents=True, exist_ok=True)
    return root


def make_repo(where: Path, build_yml: str = BUILD_YML, lock: str | None = None) -> Path:
    pkg = where / "pkg" / "tiny"
    (pkg / "files" / "bin").mkdir(parents=True)
    (pkg / "build.yml").write_text(build_yml)
    script = pkg / "files" / "bin" / "hello.sh"
    script.write_text("#!/bin/sh\necho hello\n")
    script.chmod(0o755)
    if lock is not None:
        (pkg / "debian.lock").write_text(lock)
    env = {**os.environ, **GIT_ENV}
    subprocess.run(["git", "init", "-q", str(where)], check=True, env=env)
    subprocess.run(["git", "-C", str(where), "add", "."], check=True, env=env)
    subprocess.run(["git", "-C", str(where), "commit", "-qm", "pkg"], check=True, env=env)
    return pkg


def manifest_digest(linuxkit: RunLinuxkit, cache: Path, name: str) -> str:
    out = linuxkit("--cache", cache, "cache", "ls").stderr.decode()  # upstream logs the table
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == name:
            return parts[1]
    raise AssertionError(f"{name} not in:\n{out}")


@pytest.fixture(scope="module")
def lock_text(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A lock made once by `pkg lock` from the signed indexes (shared index cache)."""
    where = tmp_path_factory.mktemp("lockrepo")
    pkg = make_repo(where)
    env = {**os.environ, "LINUXKIT_DEBIAN_CACHE": str(shared_debian_cache())}
    proc = subprocess.run(
        [sys.executable, "-m", "linuxkit.cli.main", "pkg", "lock", str(pkg)],
        capture_output=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    text = (pkg / "debian.lock").read_text()
    assert "busybox-static" in text and "sha256:" in text
    return text


def test_same_image_from_two_checkouts_with_empty_caches(linuxkit: RunLinuxkit, tmp_path: Path, lock_text: str) -> None:
    digests = []
    names = []
    first = make_repo(tmp_path / "checkout0", lock=lock_text)
    # the same commit in another directory, later
    subprocess.run(["git", "clone", "-q", str(tmp_path / "checkout0"), str(tmp_path / "checkout1")], check=True)
    for i in range(2):
        repo = first if i == 0 else tmp_path / "checkout1" / "pkg" / "tiny"
        env = {"LINUXKIT_DEBIAN_CACHE": str(tmp_path / f"debs{i}")}  # empty download cache too
        proc = linuxkit("--cache", tmp_path / f"cache{i}", "pkg", "build", repo, env=env)
        name = linuxkit("pkg", "show-tag", "--canonical", repo).stdout.decode().strip()
        assert name.startswith("docker.io/test/tiny:") and "dirty" not in name
        assert b"Built " + name.encode() in proc.stderr
        names.append(name)
        digests.append(manifest_digest(linuxkit, tmp_path / f"cache{i}", name))
    assert names[0] == names[1]
    assert digests[0] == digests[1]

    cache = tmp_path / "cache0"
    # per-arch name and index, label, entrypoint and the files
    arch_digest = manifest_digest(linuxkit, cache, names[0] + "-amd64")
    assert arch_digest != digests[0]
    out = tmp_path / "fs.tar"
    linuxkit("--cache", cache, "cache", "export", "--format", "filesystem", "--outfile", out, names[0])
    with tarfile.open(out) as tf:
        members = {m.name.rstrip("/"): m for m in tf.getmembers()}
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    assert members["bin/hello.sh"].mode == 0o755
    assert members["bin/busybox"].size > 1_000_000
    assert not any(n.startswith("usr/share/doc") for n in members)
    # the OCI export names the image and points at the manifest the cache lists
    linuxkit("--cache", cache, "cache", "export", "--format", "oci", "--outfile", tmp_path / "i.tar", names[0])
    with tarfile.open(tmp_path / "i.tar") as tf:
        index = json.load(tf.extractfile("index.json"))  # type: ignore[arg-type]
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == [names[0]]

    # again: skipped, already in the cache
    again = linuxkit("--cache", cache, "pkg", "build", make_repo(tmp_path / "checkout2", lock=lock_text))
    assert b"already in the cache" in again.stderr


def test_image_config_carries_label_and_entrypoint(linuxkit: RunLinuxkit, tmp_path: Path, lock_text: str) -> None:
    repo = make_repo(tmp_path / "c", lock=lock_text)
    linuxkit(
        "--cache", tmp_path / "cache", "pkg", "build", repo, env={"LINUXKIT_DEBIAN_CACHE": str(shared_debian_cache())}
    )
    name = linuxkit("pkg", "show-tag", "--canonical", repo).stdout.decode().strip()
    out = tmp_path / "oci.tar"
    linuxkit("--cache", tmp_path / "cache", "cache", "export", "--format", "docker", "--outfile", out, name)
    with tarfile.open(out) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = json.load(tf.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
    assert config["config"]["Entrypoint"] == ["/bin/hello.sh"]
    labels = config["config"]["Labels"]
    assert labels["org.mobyproject.config"] == '{"pid":"host"}'
    assert "org.opencontainers.image.revision" in labels


def test_unknown_package_is_a_clear_error(linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "c", BUILD_YML.replace("[busybox-static]", "[busybox-static, no-such-package-xyz]"))
    proc = linuxkit("pkg", "build", repo, check=False, env={"LINUXKIT_DEBIAN_CACHE": str(shared_debian_cache())})
    assert proc.returncode == 2, proc.stderr.decode()
    assert b"no-such-package-xyz" in proc.stderr
    assert b"Traceback" not in proc.stderr
    assert not (repo / "debian.lock").exists()


def test_stale_lock_with_locked_fails(linuxkit: RunLinuxkit, tmp_path: Path, lock_text: str) -> None:
    repo = make_repo(tmp_path / "c", BUILD_YML.replace("[busybox-static]", "[busybox-static, jq]"), lock=lock_text)
    proc = linuxkit("pkg", "build", "--locked", repo, check=False)
    assert proc.returncode == 2
    assert b"debian.lock is out of date" in proc.stderr and b"pkg lock" in proc.stderr


def test_wrong_sha256_in_lock_keeps_nothing(linuxkit: RunLinuxkit, tmp_path: Path, lock_text: str) -> None:
    bad = []
    for line in lock_text.splitlines():
        if line.strip().startswith("sha256:"):
            line = line.split("sha256:")[0] + "sha256: " + "0" * 64
        bad.append(line)
    repo = make_repo(tmp_path / "c", lock="\n".join(bad) + "\n")
    debs = tmp_path / "debs"
    proc = linuxkit("pkg", "build", repo, check=False, env={"LINUXKIT_DEBIAN_CACHE": str(debs)})
    assert proc.returncode != 0
    assert b"sha256" in proc.stderr.lower()
    assert not list(debs.rglob("*.deb")), "a deb with the wrong digest was kept"
    assert linuxkit("cache", "ls").stderr.count(b"\n") <= 1


def test_unreachable_mirror_is_a_clear_error(linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "c")
    proc = linuxkit(
        "pkg",
        "build",
        "--debian-mirror",
        "http://127.0.0.1:9/debian",
        repo,
        check=False,
        env={"LINUXKIT_DEBIAN_CACHE": str(tmp_path / "debs")},
    )
    assert proc.returncode in (1, 2)
    assert b"127.0.0.1:9" in proc.stderr
    assert b"Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("buildah") is None, reason="buildah is not installed")
def test_dockerfile_package_from_our_package_with_buildah(
    linuxkit: RunLinuxkit, tmp_path: Path, lock_text: str
) -> None:
    base_repo = make_repo(tmp_path / "base", lock=lock_text)
    debs = {"LINUXKIT_DEBIAN_CACHE": str(shared_debian_cache())}
    linuxkit("pkg", "build", base_repo, env=debs)
    base = linuxkit("pkg", "show-tag", base_repo).stdout.decode().strip()
    app = tmp_path / "base" / "pkg" / "app"
    app.mkdir()
    (app / "build.yml").write_text("image: app\norg: test\narches: [amd64]\nconfig:\n  net: host\n")
    (app / "greeting").write_text("hi from a Dockerfile package\n")
    (app / "Dockerfile").write_text(
        f"FROM {base}\nCOPY greeting /etc/greeting\n"
        'RUN ["/bin/sh", "-c", "/bin/busybox cp /etc/greeting /etc/copied"]\n'
        'ENTRYPOINT ["/bin/busybox", "cat", "/etc/copied"]\n'
    )
    env = {**os.environ, **GIT_ENV}
    subprocess.run(["git", "-C", str(tmp_path / "base"), "add", "."], check=True, env=env)
    subprocess.run(["git", "-C", str(tmp_path / "base"), "commit", "-qm", "app"], check=True, env=env)
    linuxkit("pkg", "build", app)
    name = linuxkit("pkg", "show-tag", "--canonical", app).stdout.decode().strip()
    out = tmp_path / "app.tar"
    linuxkit("cache", "export", "--format", "filesystem", "--outfile", out, name)
    with tarfile.open(out) as tf:
        copied = tf.extractfile("etc/copied")
        assert copied is not None and copied.read() == b"hi from a Dockerfile package\n"
        assert "bin/busybox" in tf.getnames()
    docker = tmp_path / "app-docker.tar"
    linuxkit("cache", "export", "--format", "docker", "--outfile", docker, name)
    with tarfile.open(docker) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = json.load(tf.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
    assert config["config"]["Entrypoint"] == ["/bin/busybox", "cat", "/etc/copied"]
    assert config["config"]["Labels"]["org.mobyproject.config"] == '{"net":"host"}'


def test_arm64_image_from_the_arm64_archive_and_assembled(linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    """No emulation needed: arm64 packages are resolved from the arm64 index and the system assembles."""
    repo = make_repo(tmp_path / "c", BUILD_YML.replace("arches: [amd64]", "arches: [amd64, arm64]"))
    debs = {"LINUXKIT_DEBIAN_CACHE": str(shared_debian_cache())}
    (tmp_path / "c" / "system.yml").write_text('init:\n  - "@pkg:pkg/tiny"\n')
    proc = linuxkit(
        "build", "--arch", "arm64", "-f", "tar", "--o", tmp_path / "arm.tar", tmp_path / "c" / "system.yml", env=debs
    )
    assert b"building the package" in proc.stderr
    with tarfile.open(tmp_path / "arm.tar") as tf:
        busybox = tf.extractfile("bin/busybox")
        assert busybox is not None
        header = busybox.read(20)
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 183  # EM_AARCH64
    lock = (repo / "debian.lock").read_text()
    assert "  arm64:" in lock and "_arm64.deb" in lock
    # the other architecture joins the same index
    linuxkit("pkg", "build", "--platforms", "linux/amd64", repo, env=debs)
    name = linuxkit("pkg", "show-tag", "--canonical", repo).stdout.decode().strip()
    assert "dirty" in name  # the lock was written into the checkout
    out = linuxkit("cache", "ls").stderr.decode()
    assert f"{name}-amd64" in out


def test_copied_file_over_a_packaged_path_is_shipped(linuxkit: RunLinuxkit, tmp_path: Path, lock_text: str) -> None:
    # busybox-static ships usr/share/initramfs-tools/hooks/zz-busybox, which include: leaves out; a file copied
    # to that path (as pkg/containerd's config.toml over Debian's) must be in the image, with the copy's bytes
    hook = "/usr/share/initramfs-tools/hooks/zz-busybox"
    yml = BUILD_YML.replace(
        "    - {src: files, dst: /}\n",
        f"    - {{src: files, dst: /}}\n    - {{src: files/bin/hello.sh, dst: {hook}}}\n",
    )
    repo = make_repo(tmp_path / "c", build_yml=yml, lock=lock_text)
    cache = tmp_path / "cache"
    linuxkit("--cache", cache, "pkg", "build", repo, env={"LINUXKIT_DEBIAN_CACHE": str(shared_debian_cache())})
    name = linuxkit("pkg", "show-tag", "--canonical", repo).stdout.decode().strip()
    out = tmp_path / "fs.tar"
    linuxkit("--cache", cache, "cache", "export", "--format", "filesystem", "--outfile", out, name)
    with tarfile.open(out) as tf:
        member = tf.extractfile("usr/share/initramfs-tools/hooks/zz-busybox")
        assert member is not None and member.read() == b"#!/bin/sh\necho hello\n"
        names = {m.name.rstrip("/") for m in tf.getmembers()}
    assert "usr/share/initramfs-tools/conf-hooks.d/busybox" not in names  # the package's other files stay out
