"""Every disk/ISO/cloud/UKI format built from a real kernel + busybox rootfs: built twice in two
directories (identical bytes), checked with independent tools, and booted once under qemu TCG
(SeaBIOS or OVMF) until the rootfs's marker shows on the serial console."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from tests.bootkit import boot, marker_rootfs_tar

from linuxkit.errors import UserError
from linuxkit.formats.registry import FORMATS as TABLE
from linuxkit.formats.registry import FormatContext, find
from linuxkit.outputs import OutputSet

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MARKER = "LINUXKIT-FORMAT-MARKER-7731"
OVMF = Path("/usr/share/ovmf/OVMF.fd")
EPOCH = 1700000000

#: format → (how qemu attaches it, firmware); the file each writes comes from the format table
FORMATS: dict[str, tuple[str, str]] = {
    "raw-bios": ("raw", "bios"),
    "aws": ("raw", "bios"),
    "qcow2-bios": ("qcow2", "bios"),
    "vhd": ("vpc", "bios"),
    "dynamic-vhd": ("vpc", "bios"),
    "vmdk": ("vmdk", "bios"),
    "gcp": ("gcp", "bios"),
    "iso-bios": ("cdrom", "bios"),
    "raw-efi": ("raw", "efi"),
    "qcow2-efi": ("qcow2", "efi"),
    "iso-efi": ("cdrom", "efi"),
    "iso-efi-initrd": ("cdrom", "efi"),
    "uki": ("kernel", "efi"),
}
TOOLS = ("mkfs.vfat", "mcopy", "syslinux", "qemu-img")


def test_every_format_with_boot_loaders_is_booted_here() -> None:
    assert set(FORMATS) == {f.name for f in TABLE if f.boot_loaders and f.available}


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing tools: {missing}")
    return marker_rootfs_tar(tmp_path_factory.mktemp("rootfs") / "rootfs.tar", MARKER)


def build(fmt: str, rootfs: Path, outdir: Path, size_mb: int = 0) -> Path:
    outdir.mkdir(parents=True, exist_ok=True)
    with OutputSet() as outputs:
        ctx = FormatContext(
            base=outdir / "lk",
            size_mb=size_mb,
            arch="x86_64",
            decompress_kernel=False,
            outputs=outputs,
            boot_files=Path("/"),
            epoch=EPOCH,
        )
        table = find(fmt)
        assert table is not None and table.writer is not None
        table.writer(ctx, rootfs)
        done = outputs.commit()
    assert done == [outdir / f"lk{out.suffix}" for out in table.outputs]
    return done[0]


def sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def check_fat_partition(image: Path, offset: int, size: int, work: Path) -> None:
    """fsck.vfat -n on the partition (copied out: fsck.vfat takes no offset)."""
    part = work / "part.fat"
    with open(image, "rb") as src, open(part, "wb") as dst:
        src.seek(offset)
        left = size
        while left:
            chunk = src.read(min(left, 1 << 20))
            dst.write(chunk)
            left -= len(chunk)
    fsck = subprocess.run(["fsck.vfat", "-n", part], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    part.unlink()


def independent_checks(fmt: str, out: Path, work: Path) -> None:
    kind = FORMATS[fmt][0]
    if kind in ("qcow2", "vpc", "vmdk"):
        # A fixed VHD has only a footer, which qemu-img does not probe: name the format.
        probe = subprocess.run(["qemu-img", "info", "-f", kind, "--output=json", out], capture_output=True)
        assert probe.returncode == 0 and not probe.stderr, probe.stderr
        info = json.loads(probe.stdout)
        assert info["format"] == kind and info["virtual-size"] % (1 << 20) == 0
        if kind == "vpc":
            with open(out, "rb") as fh:
                fh.seek(-512, 2)
                footer = fh.read()
            stored = int.from_bytes(footer[64:68], "big")
            assert stored == (~(sum(footer) - sum(footer[64:68]))) & 0xFFFFFFFF
        if kind in ("qcow2", "vmdk"):
            check = subprocess.run(["qemu-img", "check", out], capture_output=True, text=True)
            assert check.returncode == 0, check.stdout + check.stderr
    if fmt in ("raw-bios", "aws"):
        table = json.loads(subprocess.run(["sfdisk", "-J", out], capture_output=True, check=True).stdout)
        (p,) = table["partitiontable"]["partitions"]
        assert p["bootable"] and p["type"] == "c" and p["start"] == 2048
        check_fat_partition(out, p["start"] * 512, p["size"] * 512, work)
    if fmt == "raw-efi":
        verify = subprocess.run(["sgdisk", "-v", out], capture_output=True, text=True)
        assert verify.returncode == 0 and "No problems found" in verify.stdout, verify.stdout
        table = json.loads(subprocess.run(["sfdisk", "-J", out], capture_output=True, check=True).stdout)
        (p,) = table["partitiontable"]["partitions"]
        assert p["type"] == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
        check_fat_partition(out, p["start"] * 512, p["size"] * 512, work)
    if kind == "cdrom" and shutil.which("xorriso"):
        report = subprocess.run(
            ["xorriso", "-indev", out, "-report_el_torito", "plain"], capture_output=True, text=True
        ).stdout
        platform = "UEFI" if FORMATS[fmt][1] == "efi" else "BIOS"
        assert f"El Torito boot img :   1  {platform}  y" in report, report
    if fmt == "gcp":
        with tarfile.open(out) as tf:
            (member,) = tf.getmembers()
            assert (member.name, member.mtime, member.uid, member.gid) == ("disk.raw", EPOCH, 0, 0)
            assert member.size % (1 << 30) == 0
            # old-GNU sparse, as Google documents (tar --format=oldgnu -S): the holes are not stored
            assert member.type == tarfile.GNUTYPE_SPARSE and out.stat().st_size < member.size // 20
        with open(out, "rb") as fh:
            assert fh.read(8)[4:8] == bytes(4)  # gzip mtime 0


def qemu_args(fmt: str, out: Path, work: Path) -> list[str]:
    kind, firmware = FORMATS[fmt]
    args = ["-bios", str(OVMF)] if firmware == "efi" else []
    if kind == "gcp":
        with tarfile.open(out) as tf:
            tf.extract("disk.raw", work, filter="data")
        return [*args, "-drive", f"file={work / 'disk.raw'},format=raw"]
    if kind == "cdrom":
        return [*args, "-cdrom", str(out)]
    if kind == "kernel":
        return [*args, "-kernel", str(out)]
    return [*args, "-drive", f"file={out},format={kind}"]


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_format_builds_identically_checks_and_boots(fmt: str, rootfs: Path, tmp_path: Path) -> None:
    if FORMATS[fmt][1] == "efi" and not OVMF.exists():
        pytest.skip("ovmf not installed")
    first = build(fmt, rootfs, tmp_path / "a")
    time.sleep(1.1)  # a time that leaks into the image (a clock read, a directory's mtime) shows up
    second = build(fmt, rootfs, tmp_path / "b")
    assert sha256(first) == sha256(second), f"{fmt}: two builds differ"
    independent_checks(fmt, first, tmp_path)
    second.unlink()
    console = boot(qemu_args(fmt, first, tmp_path), MARKER, timeout=180)
    assert MARKER in console


def test_iso_bios_boots_as_a_disk(rootfs: Path, tmp_path: Path) -> None:
    """The isohybrid MBR: the same ISO attached as a hard disk boots under SeaBIOS."""
    out = build("iso-bios", rootfs, tmp_path)
    assert MARKER in boot(["-drive", f"file={out},format=raw"], MARKER, timeout=180)


def test_size_is_honoured_and_too_small_is_a_user_error(rootfs: Path, tmp_path: Path) -> None:
    out = build("raw-bios", rootfs, tmp_path / "big", size_mb=100)
    assert out.stat().st_size == 100 << 20
    out = build("vhd", rootfs, tmp_path / "vhd", size_mb=100)
    assert out.stat().st_size == (100 << 20) + 512  # fixed VHD: disk + footer
    with pytest.raises(UserError) as err:
        build("raw-efi", rootfs, tmp_path / "small", size_mb=4)
    assert "too small" in err.value.message and err.value.exit_code == 2
    assert not list((tmp_path / "small").iterdir())  # nothing left behind
    with pytest.raises(UserError, match="whole number of GiB"):
        build("gcp", rootfs, tmp_path / "gcp", size_mb=1000)
