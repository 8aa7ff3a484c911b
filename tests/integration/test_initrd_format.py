"""``linuxkit build --format kernel+initrd|tar-kernel-initrd`` end to end: the golden scenario's
outputs against upstream's (``tests/data/initrd``), rebuild determinism, and the host's ``cpio``
reading our initrd back."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from tests.conftest import ROOT, RunLinuxkit

pytestmark = pytest.mark.integration

GOLDEN = ROOT / "tests" / "data" / "initrd"
ROOTFS_GOLDEN = ROOT / "tests" / "data" / "rootfs" / "upstream-tar.tar.gz"
UPSTREAM = Path("/work/upstream/bin/linuxkit")
UCODE = (GOLDEN / "upstream-ucode.bin").read_bytes()


def _cpio_of(initrd: bytes) -> bytes:
    assert initrd.startswith(UCODE)
    return gzip.decompress(initrd[len(UCODE) :])


def test_kernel_initrd_matches_upstream(scenario: Path, linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    linuxkit("build", "--format", "kernel+initrd", "--no-sbom", "--dir", "out", "--name", "test", "test.yml")
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["test-cmdline", "test-initrd.img", "test-kernel"]
    assert (out / "test-kernel").read_bytes() == (GOLDEN / "upstream-kernel").read_bytes()
    assert (out / "test-cmdline").read_bytes() == (GOLDEN / "upstream-cmdline").read_bytes()
    assert _cpio_of((out / "test-initrd.img").read_bytes()) == gzip.decompress(
        (GOLDEN / "upstream-initrd.cpio.gz").read_bytes()
    )


def test_decompress_kernel_flag(scenario: Path, linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    linuxkit("build", "--format", "kernel+initrd", "--decompress-kernel", "--no-sbom", "--name", "dk", "test.yml")
    want = gzip.decompress((GOLDEN / "upstream-kernel-decompressed.gz").read_bytes())
    assert (tmp_path / "dk-kernel").read_bytes() == want


def test_rebuild_is_identical(scenario: Path, linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    for d in ("a", "b"):
        linuxkit("build", "--format", "kernel+initrd,tar-kernel-initrd", "--no-sbom", "--dir", d, "test.yml")
    for name in ("test-kernel", "test-initrd.img", "test-cmdline", "test-initrd.tar"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_tar_kernel_initrd(scenario: Path, linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    linuxkit("build", "--format", "tar-kernel-initrd", "--no-sbom", "--name", "t", "test.yml")
    with tarfile.open(tmp_path / "t-initrd.tar") as ours, tarfile.open(GOLDEN / "upstream-initrd.tar.gz") as theirs:
        assert ours.getnames() == theirs.getnames() == ["kernel", "initrd.img", "cmdline", "ucode.cpio"]
        for member in theirs.getmembers():
            mine = ours.getmember(member.name)
            assert (mine.mode, mine.mtime, mine.uid, mine.gid) == (member.mode, member.mtime, member.uid, member.gid)
            a, b = ours.extractfile(mine), theirs.extractfile(member)
            assert a is not None and b is not None
            data_a, data_b = a.read(), b.read()
            if member.name == "initrd.img":
                data_a, data_b = gzip.decompress(data_a), gzip.decompress(data_b)
            assert data_a == data_b, member.name


@pytest.mark.skipif(shutil.which("cpio") is None, reason="cpio is not installed")
def test_host_cpio_reads_back_the_rootfs(scenario: Path, linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    linuxkit("build", "--format", "kernel+initrd", "--no-sbom", "--name", "c", "test.yml")
    cpio = _cpio_of((tmp_path / "c-initrd.img").read_bytes())
    listing = subprocess.run(["cpio", "-it", "--quiet"], input=cpio, capture_output=True, check=True).stdout
    rootfs = tarfile.open(fileobj=io.BytesIO(gzip.decompress(ROOTFS_GOLDEN.read_bytes())))  # noqa: SIM115
    # upstream drops what is below boot/ but keeps the boot directory itself
    members = [m for m in rootfs.getmembers() if not m.name.startswith("boot/")]
    # The tar's names as stored (directories keep no slash in tarfile's view; cpio shows the raw name).
    assert [n.rstrip("/") for n in os.fsdecode(listing).splitlines()] == [m.name for m in members]
    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run(
        ["cpio", "-idmu", "--quiet", "--no-absolute-filenames"], input=cpio, cwd=dest, check=True, capture_output=True
    )
    last = {m.name: m for m in members}  # a name written twice: the later entry wins, as in the guest
    for m in last.values():
        path = dest / m.name
        if m.isfile():
            f = rootfs.extractfile(m)
            assert f is not None and path.read_bytes() == f.read(), m.name
            assert path.stat().st_mode & 0o7777 == m.mode & 0o7777, m.name
        elif m.issym():
            assert os.readlink(path) == m.linkname, m.name
        elif m.islnk():
            # hard links come back as symlinks relative to their directory, pointing at the same file
            assert path.is_symlink(), m.name
            assert path.resolve() == (dest / m.linkname).resolve(), m.name
        elif m.isdir():
            assert path.is_dir(), m.name


@pytest.mark.slow
@pytest.mark.skipif(not UPSTREAM.exists(), reason="upstream linuxkit binary not available")
def test_live_upstream_comparison(scenario: Path, linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    """Same YAML through the upstream binary, now: the decompressed initrd is byte-identical."""
    (tmp_path / "up").mkdir()
    up_cache = tmp_path / "upcache"
    subprocess.run([UPSTREAM, "--cache", up_cache, "cache", "import", "images.tar"], cwd=tmp_path, check=True)
    build = ["build", "-f", "kernel+initrd", "--no-sbom", "--dir=up", "--name=test", "test.yml"]
    subprocess.run(
        [UPSTREAM, "--cache", up_cache, *build],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    linuxkit("build", "--format", "kernel+initrd", "--no-sbom", "--dir", "ours", "--name", "test", "test.yml")
    theirs, ours = tmp_path / "up", tmp_path / "ours"
    assert (ours / "test-kernel").read_bytes() == (theirs / "test-kernel").read_bytes()
    assert (ours / "test-cmdline").read_bytes() == (theirs / "test-cmdline").read_bytes()
    assert _cpio_of((ours / "test-initrd.img").read_bytes()) == _cpio_of((theirs / "test-initrd.img").read_bytes())
