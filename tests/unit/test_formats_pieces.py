"""Pure pieces of the disk/ISO/UKI formats: PE section appender and checksum, VHD footer fix,
size arithmetic, boot-file lookup errors, pycdlib's fixed clock."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pycdlib.headervd
import pytest

from linuxkit.errors import BuildError, UserError
from linuxkit.formats.bootable import disk_size
from linuxkit.formats.bootfiles import boot_file
from linuxkit.formats.disk import fat_partition_bytes, fix_vhd_footer, vhd_checksum
from linuxkit.formats.fat import FAT32_MIN_BYTES, FatFile, make_fat
from linuxkit.formats.iso import fixed_clock
from linuxkit.formats.partition import MIB
from linuxkit.formats.registry import FormatContext
from linuxkit.formats.uki import Section, append_sections
from linuxkit.outputs import OutputSet


def _pe_stub(nsections: int = 1, trailer: bytes = b"") -> bytes:
    """A minimal PE32+ image: DOS header, PE header, optional header, one .text section."""
    pe_off = 0x80
    opt_size = 240
    out = bytearray(0x400)
    out[:2] = b"MZ"
    struct.pack_into("<I", out, 0x3C, pe_off)
    out[pe_off : pe_off + 4] = b"PE\0\0"
    struct.pack_into("<HHIIIHH", out, pe_off + 4, 0x8664, nsections, 0, 0, 0, opt_size, 0x206)
    opt = pe_off + 24
    struct.pack_into("<H", out, opt, 0x20B)
    struct.pack_into("<II", out, opt + 32, 0x200, 0x200)  # section / file alignment
    struct.pack_into("<I", out, opt + 56, 0x2000)  # SizeOfImage
    struct.pack_into("<I", out, opt + 60, 0x400)  # SizeOfHeaders
    table = opt + opt_size
    struct.pack_into("<8sIIIIIIHHI", out, table, b".text", 0x10, 0x1000, 0x200, 0x400, 0, 0, 0, 0, 0x60000020)
    return bytes(out) + b"\xcc" * 0x200 + trailer


def _pe_checksum_reference(data: bytes) -> int:
    """The PE checksum the slow, obvious way (word loop with carry folding)."""
    total = 0
    padded = data + b"\0" * (len(data) % 2)
    for i in range(0, len(padded), 2):
        total += padded[i] | padded[i + 1] << 8
        total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return (total + len(data)) & 0xFFFFFFFF


def _sections(data: bytes) -> list[tuple[bytes, int, int, int, int]]:
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    n, opt_size = struct.unpack_from("<H", data, pe + 6)[0], struct.unpack_from("<H", data, pe + 20)[0]
    table = pe + 24 + opt_size
    return [struct.unpack_from("<8sIIII", data, table + 40 * i) for i in range(n)]


def test_append_sections_layout_and_checksum(tmp_path: Path) -> None:
    stub = tmp_path / "stub.efi"
    stub.write_bytes(_pe_stub(trailer=b"TRAILER"))
    big = tmp_path / "kernel"
    big.write_bytes(bytes(range(256)) * 4099 + b"x")  # odd length
    out = io.BytesIO()
    append_sections(stub, [Section(".osrel", b"ID=x\n"), Section(".linux", big)], out)
    data = out.getvalue()
    secs = _sections(data)
    assert [s[0].rstrip(b"\0") for s in secs] == [b".text", b".osrel", b".linux"]
    _, vsize, va, raw_size, raw_ptr = secs[2]
    assert vsize == big.stat().st_size and va % 4096 == 0 and raw_ptr % 0x200 == 0 and raw_size % 0x200 == 0
    assert data[raw_ptr : raw_ptr + vsize] == big.read_bytes()
    assert data[secs[1][4] : secs[1][4] + 5] == b"ID=x\n"
    assert secs[1][2] >= 0x2000  # after the stub's last section, page aligned
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    opt = pe + 24
    assert struct.unpack_from("<I", data, opt + 56)[0] == va + 4096 * ((vsize + 4095) // 4096)
    stored = struct.unpack_from("<I", data, opt + 64)[0]
    assert stored == _pe_checksum_reference(data[: opt + 64] + bytes(4) + data[opt + 68 :])
    assert b"TRAILER" in data[: secs[1][4]]  # the stub's trailing bytes are kept before the new sections


def test_append_sections_needs_header_room(tmp_path: Path) -> None:
    stub = tmp_path / "stub.efi"
    stub.write_bytes(_pe_stub())
    with pytest.raises(BuildError, match="no room"):
        append_sections(stub, [Section(f".s{i}", b"x") for i in range(20)], io.BytesIO())


def test_append_sections_rejects_non_pe(tmp_path: Path) -> None:
    stub = tmp_path / "stub.efi"
    stub.write_bytes(b"\x7fELF" + bytes(600))
    with pytest.raises(BuildError, match="not a PE"):
        append_sections(stub, [Section(".x", b"x")], io.BytesIO())


@pytest.mark.skipif(shutil.which("objdump") is None, reason="binutils not installed")
def test_objdump_reads_our_uki_sections(tmp_path: Path) -> None:
    stub = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
    if not stub.exists():
        pytest.skip("systemd-boot-efi not installed")
    out = tmp_path / "x.efi"
    with open(out, "wb") as fh:
        append_sections(stub, [Section(".osrel", b"ID=t\n"), Section(".cmdline", b"console=ttyS0\0")], fh)
    text = subprocess.run(["objdump", "-h", out], capture_output=True, text=True, check=True).stdout
    assert ".osrel" in text and ".cmdline" in text and ".sdmagic" in text
    # The reference checksum agrees with the one the linker stored in the stub.
    raw = stub.read_bytes()
    opt = struct.unpack_from("<I", raw, 0x3C)[0] + 24
    assert struct.unpack_from("<I", raw, opt + 64)[0] == _pe_checksum_reference(
        raw[: opt + 64] + bytes(4) + raw[opt + 68 :]
    )


def test_vhd_footer_fix() -> None:
    footer = bytearray(512)
    footer[:8] = b"conectix"
    struct.pack_into(">I", footer, 24, 123456)
    footer[68:84] = b"R" * 16
    fixed = fix_vhd_footer(bytes(footer), "seed", 946684800 + 1000)
    assert struct.unpack_from(">I", fixed, 24)[0] == 1000
    assert fixed[68:84] != b"R" * 16
    assert struct.unpack_from(">I", fixed, 64)[0] == vhd_checksum(fixed)
    assert vhd_checksum(fixed) == ~(sum(fixed) - sum(fixed[64:68])) & 0xFFFFFFFF
    assert fix_vhd_footer(bytes(footer), "seed", 0)[24:28] == bytes(4)  # before 2000 → 0
    assert fix_vhd_footer(bytes(footer), "seed", 5) == fix_vhd_footer(bytes(footer), "seed", 5)
    with pytest.raises(BuildError):
        fix_vhd_footer(bytes(512), "seed", 0)


def _ctx(tmp_path: Path, size_mb: int, boot_files: Path | None = None) -> FormatContext:
    return FormatContext(tmp_path / "img", size_mb, "x86_64", False, OutputSet(), boot_files=boot_files)


def test_disk_size_auto_and_explicit(tmp_path: Path) -> None:
    assert disk_size(_ctx(tmp_path, 0), 5 * MIB + 1, "raw-bios") == 6 * MIB
    assert disk_size(_ctx(tmp_path, 100), 5 * MIB, "raw-bios") == 100 * MIB
    with pytest.raises(UserError) as err:
        disk_size(_ctx(tmp_path, 5), 5 * MIB + 1, "raw-bios")
    assert "needs at least 6M" in err.value.message and err.value.exit_code == 2


def test_fat_partition_bytes() -> None:
    assert fat_partition_bytes(1, 1) == FAT32_MIN_BYTES
    big = fat_partition_bytes(1000 * MIB, 3)
    assert big % MIB == 0 and 1000 * MIB + 3 * 32768 + 2 * MIB < big < 1030 * MIB
    # FAT tables (2 × 4 bytes per 512-byte cluster) fit next to the content.
    assert big - 1000 * MIB > big * 8 // 512


def test_boot_file_errors(tmp_path: Path) -> None:
    with pytest.raises(BuildError) as err:
        boot_file(None, "isolinux.bin")
    assert "usr/lib/ISOLINUX/isolinux.bin" in err.value.message and "isolinux" in (err.value.hint or "")
    with pytest.raises(BuildError) as err:
        boot_file(tmp_path, "linuxx64.efi.stub")
    assert "linuxx64.efi.stub" in err.value.message and "systemd-boot-efi" in (err.value.hint or "")
    (tmp_path / "usr/lib/syslinux/mbr").mkdir(parents=True)
    (tmp_path / "usr/lib/syslinux/mbr/mbr.bin").write_bytes(b"x")
    assert boot_file(tmp_path, "mbr.bin") == tmp_path / "usr/lib/syslinux/mbr/mbr.bin"


def test_fixed_clock_patches_and_restores() -> None:
    with fixed_clock(1234):
        assert pycdlib.headervd.time.time() == 1234.0
        assert pycdlib.headervd.time.localtime(0).tm_year == 1970
    assert pycdlib.headervd.time is time


def test_fat_rejects_files_of_4gib(tmp_path: Path) -> None:
    huge = tmp_path / "initrd.img"
    with open(huge, "wb") as fh:
        fh.truncate(1 << 32)  # sparse: no disk used
    with pytest.raises(BuildError, match="below 4 GiB"):
        make_fat(tmp_path / "x.img", offset=0, size=1 << 20, files=[FatFile("i", huge)], label="X", seed="s", epoch=0)
