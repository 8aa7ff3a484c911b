"""arm64 EFI outputs: a gzip kernel (arm64's Image.gz) decompressed, bounded, into the UKI's ``.linux``
while x86's bzImage keeps its bytes; the EFI names per architecture; the EFI writers for arm64 (UKI,
raw-efi, iso-efi) with real mkfs.vfat/mtools, the ESP holding ``EFI/BOOT/BOOTAA64.EFI``."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from tests.imagefactory import directory, file, layer_tar

from linuxkit.errors import BuildError
from linuxkit.formats.bootfiles import BOOT_FILES, efi_boot_path, efi_names
from linuxkit.formats.efikernel import MAX_KERNEL, efi_kernel, gunzip_bounded
from linuxkit.formats.registry import FormatContext, find
from linuxkit.outputs import OutputSet

#: an arm64 Image as far as the EFI stub cares: "MZ", then the arm64 Image header's magic at 0x38
ARM64_IMAGE = b"MZ" + bytes(0x36) + b"ARM\x64" + bytes(range(256)) * 3000
#: an x86 bzImage's start: "MZ" too (its PE header), then the setup header's "HdrS" at 0x202
BZIMAGE = b"MZ" + bytes(0x200) + b"HdrS" + bytes(range(256)) * 100


def _gunzip(data: bytes, limit: int = MAX_KERNEL) -> bytes:
    out = io.BytesIO()
    size = gunzip_bounded(io.BytesIO(data), out, limit)
    assert size == len(out.getvalue())
    return out.getvalue()


def test_gunzip_one_member_and_several() -> None:
    assert _gunzip(gzip.compress(ARM64_IMAGE, mtime=0)) == ARM64_IMAGE
    # gzip allows several members one after the other: they decompress to the concatenation
    two = gzip.compress(b"first ", mtime=0) + gzip.compress(b"second", mtime=0)
    assert _gunzip(two) == b"first second"


def test_gunzip_accepts_zero_padding_and_refuses_other_trailing_data() -> None:
    packed = gzip.compress(ARM64_IMAGE, mtime=0)
    assert _gunzip(packed + bytes(3 << 20)) == ARM64_IMAGE  # padding longer than one read
    with pytest.raises(BuildError, match="followed by data that is not gzip"):
        _gunzip(packed + b"\0\0junk")


def test_gunzip_truncated_and_corrupt() -> None:
    packed = gzip.compress(ARM64_IMAGE, mtime=0)
    with pytest.raises(BuildError, match="truncated"):
        _gunzip(packed[: len(packed) // 2])
    with pytest.raises(BuildError, match="truncated"):
        _gunzip(packed[:-4])  # the trailer's size field missing
    broken = bytearray(packed)
    broken[-8] ^= 0xFF  # CRC32 of the data
    with pytest.raises(BuildError, match="cannot decompress"):
        _gunzip(bytes(broken))


class _CountingSink(io.RawIOBase):
    def __init__(self) -> None:
        self.written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.written += len(data)
        return len(data)


def test_gunzip_bomb_stops_at_the_limit() -> None:
    """64 MiB of zeros in ~64 KiB of gzip with a 4 MiB limit: refused after at most one chunk more."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join(comp.compress(bytes(1 << 20)) for _ in range(64)) + comp.flush()
    assert len(bomb) < 256 << 10
    sink = _CountingSink()
    with pytest.raises(BuildError, match="more than 4 MiB") as err:
        gunzip_bounded(io.BytesIO(bomb), sink, 4 << 20)  # type: ignore[arg-type]
    assert "gzip bomb" in (err.value.hint or "")
    assert sink.written <= 4 << 20


def test_gunzip_output_exactly_at_the_limit_passes() -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    assert _gunzip(gzip.compress(data, mtime=0), limit=len(data)) == data
    with pytest.raises(BuildError, match="more than"):
        _gunzip(gzip.compress(data + b"x", mtime=0), limit=len(data))


def test_efi_kernel_decompresses_gzip_and_keeps_other_kernels(tmp_path: Path) -> None:
    bz = tmp_path / "bzImage"
    bz.write_bytes(BZIMAGE)
    assert efi_kernel(bz, tmp_path) == bz and bz.read_bytes() == BZIMAGE  # x86: the same file, untouched
    gz = tmp_path / "Image.gz"
    gz.write_bytes(gzip.compress(ARM64_IMAGE, mtime=0))
    plain = efi_kernel(gz, tmp_path)
    assert plain != gz and plain.parent == tmp_path and plain.read_bytes() == ARM64_IMAGE
    not_pe = tmp_path / "vmlinux.gz"
    not_pe.write_bytes(gzip.compress(b"\x7fELF" + bytes(100), mtime=0))
    with pytest.raises(BuildError, match="not an EFI"):
        efi_kernel(not_pe, tmp_path)


def test_efi_names_per_architecture() -> None:
    for arch in ("amd64", "x86_64"):
        assert efi_boot_path(arch) == "EFI/BOOT/BOOTX64.EFI" and efi_names(arch).stub == "linuxx64.efi.stub"
    for arch in ("arm64", "aarch64"):
        assert efi_boot_path(arch) == "EFI/BOOT/BOOTAA64.EFI" and efi_names(arch).stub == "linuxaa64.efi.stub"
    for arch in ("amd64", "arm64"):
        assert BOOT_FILES[efi_names(arch).stub][1] == "systemd-boot-efi"
    with pytest.raises(BuildError, match="no EFI boot files for architecture riscv64"):
        efi_names("riscv64")


# -- the arm64 writers -------------------------------------------------------------------------------


def _pe_stub(machine: int = 0xAA64) -> bytes:
    """A minimal PE32+ image with one ``.text`` section (what the section appender reads of a stub)."""
    pe, opt_size = 0x80, 240
    out = bytearray(0x400)
    out[:2] = b"MZ"
    struct.pack_into("<I", out, 0x3C, pe)
    out[pe : pe + 4] = b"PE\0\0"
    struct.pack_into("<HHIIIHH", out, pe + 4, machine, 1, 0, 0, 0, opt_size, 0x206)
    struct.pack_into("<H", out, pe + 24, 0x20B)
    struct.pack_into("<II", out, pe + 24 + 32, 0x1000, 0x200)  # section / file alignment
    struct.pack_into("<II", out, pe + 24 + 56, 0x2000, 0x400)  # SizeOfImage, SizeOfHeaders
    table = pe + 24 + opt_size
    struct.pack_into("<8sIIIIIIHHI", out, table, b".text", 0x10, 0x1000, 0x200, 0x400, 0, 0, 0, 0, 0x60000020)
    return bytes(out) + b"\xcc" * 0x200


def _section(data: bytes, name: bytes) -> bytes:
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    n, opt_size = struct.unpack_from("<H", data, pe + 6)[0], struct.unpack_from("<H", data, pe + 20)[0]
    for i in range(n):
        sname, vsize, _, _, raw = struct.unpack_from("<8sIIII", data, pe + 24 + opt_size + 40 * i)
        if sname.rstrip(b"\0") == name:
            return data[raw : raw + vsize]
    raise AssertionError(f"no section {name!r}")


@pytest.fixture
def boot_tree(tmp_path: Path) -> Path:
    """A boot-files tree with only the aa64 stub: the arm64 writers must ask for nothing else."""
    root = tmp_path / "loaders"
    stub = root / BOOT_FILES["linuxaa64.efi.stub"][0]
    stub.parent.mkdir(parents=True)
    stub.write_bytes(_pe_stub())
    return root


def _rootfs(path: Path, kernel: bytes) -> Path:
    entries = [directory("boot"), directory("bin"), file("bin/hello", b"hello\n", 0o755)]
    entries += [file("boot/kernel", kernel), file("boot/cmdline", b"console=ttyAMA0")]
    with open(path, "wb") as out:
        layer_tar(entries, out)
    return path


def _write(fmt: str, rootfs: Path, out: Path, boot_files: Path, arch: str = "arm64") -> Path:
    table = find(fmt)
    assert table is not None and table.writer is not None
    out.mkdir(parents=True, exist_ok=True)
    with OutputSet() as outputs:
        ctx = FormatContext(out / "lk", 0, arch, False, outputs, boot_files=boot_files, epoch=1700000000)
        table.writer(ctx, rootfs)
        (done,) = outputs.commit()
    assert sorted(os.listdir(out)) == [done.name]  # no scratch left behind
    return done


def test_arm64_uki_holds_the_decompressed_kernel(tmp_path: Path, boot_tree: Path) -> None:
    rootfs = _rootfs(tmp_path / "rootfs.tar", gzip.compress(ARM64_IMAGE, mtime=0))
    uki = _write("uki", rootfs, tmp_path / "a", boot_tree).read_bytes()
    assert _section(uki, b".linux") == ARM64_IMAGE
    assert _section(uki, b".cmdline") == b"console=ttyAMA0\0"
    assert uki == _write("uki", rootfs, tmp_path / "b", boot_tree).read_bytes()  # reproducible


def test_arm64_uki_of_an_uncompressed_image_keeps_it(tmp_path: Path, boot_tree: Path) -> None:
    rootfs = _rootfs(tmp_path / "rootfs.tar", ARM64_IMAGE)
    assert _section(_write("uki", rootfs, tmp_path / "a", boot_tree).read_bytes(), b".linux") == ARM64_IMAGE


def test_amd64_uki_keeps_the_kernel_bytes(tmp_path: Path) -> None:
    root = tmp_path / "loaders"
    stub = root / BOOT_FILES["linuxx64.efi.stub"][0]
    stub.parent.mkdir(parents=True)
    stub.write_bytes(_pe_stub(0x8664))
    rootfs = _rootfs(tmp_path / "rootfs.tar", BZIMAGE)
    assert _section(_write("uki", rootfs, tmp_path / "a", root, "amd64").read_bytes(), b".linux") == BZIMAGE


def test_arm64_writers_without_the_aa64_stub_name_it(tmp_path: Path) -> None:
    rootfs = _rootfs(tmp_path / "rootfs.tar", ARM64_IMAGE)
    empty = tmp_path / "empty"
    empty.mkdir()
    for fmt in ("uki", "raw-efi", "iso-efi"):
        with pytest.raises(BuildError, match=r"linuxaa64\.efi\.stub is missing"):
            _write(fmt, rootfs, tmp_path / fmt, empty)


def _mtools_read(image: Path, offset: int, path: str, dest: Path) -> bytes:
    subprocess.run(["mcopy", "-n", "-i", f"{image}@@{offset}", f"::/{path}", str(dest)], check=True)
    return dest.read_bytes()


@pytest.mark.skipif(shutil.which("mkfs.vfat") is None or shutil.which("mcopy") is None, reason="dosfstools, mtools")
def test_arm64_raw_efi_esp_boots_bootaa64(tmp_path: Path, boot_tree: Path) -> None:
    rootfs = _rootfs(tmp_path / "rootfs.tar", gzip.compress(ARM64_IMAGE, mtime=0))
    disk = _write("raw-efi", rootfs, tmp_path / "a", boot_tree)
    listing = subprocess.run(
        ["mdir", "-b", "-/", "-i", f"{disk}@@{1 << 20}", "::/"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert listing == ["::/EFI/", "::/EFI/BOOT/", "::/EFI/BOOT/BOOTAA64.EFI"]
    boot = _mtools_read(disk, 1 << 20, "EFI/BOOT/BOOTAA64.EFI", tmp_path / "boot.efi")
    assert _section(boot, b".linux") == ARM64_IMAGE
    assert disk.read_bytes() == _write("raw-efi", rootfs, tmp_path / "b", boot_tree).read_bytes()


@pytest.mark.skipif(shutil.which("xorriso") is None or shutil.which("mcopy") is None, reason="xorriso, mtools")
def test_arm64_iso_efi_boot_image_holds_bootaa64(tmp_path: Path, boot_tree: Path) -> None:
    rootfs = _rootfs(tmp_path / "rootfs.tar", gzip.compress(ARM64_IMAGE, mtime=0))
    iso = _write("iso-efi", rootfs, tmp_path / "a", boot_tree)
    esp = tmp_path / "efiboot.img"
    subprocess.run(
        ["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", "/EFI/efiboot.img", str(esp)],
        capture_output=True,
        check=True,
    )
    boot = _mtools_read(esp, 0, "EFI/BOOT/BOOTAA64.EFI", tmp_path / "boot.efi")
    assert _section(boot, b".linux") == ARM64_IMAGE
    assert iso.read_bytes() == _write("iso-efi", rootfs, tmp_path / "b", boot_tree).read_bytes()
