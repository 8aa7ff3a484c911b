"""``uki``: a Unified Kernel Image (``NAME.efi``): systemd's EFI stub of the build's architecture (x64
or aa64) with ``.osrel``, ``.cmdline``, ``.linux`` (a PE kernel: see :mod:`.efikernel`) and ``.initrd``
sections, written by a small PE section appender (no objcopy, streams the kernel and initrd,
recomputes the PE checksum)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .. import log
from ..errors import BuildError
from .bootfiles import boot_file, efi_names
from .efikernel import efi_kernel
from .initrd import make_kernel_initrd, scratch
from .registry import FormatContext
from .signing import sign_efi

_CHUNK = 1 << 20
_PAGE = 4096
_SECTION_HEADER = 40
#: IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ
_DATA_SECTION = 0x40000040


@dataclass(frozen=True)
class Section:
    """A section to append: ``name`` (≤ 8 bytes) and its content as bytes or a file."""

    name: str
    content: bytes | Path

    @property
    def size(self) -> int:
        return len(self.content) if isinstance(self.content, bytes) else self.content.stat().st_size


def _align(value: int, to: int) -> int:
    return (value + to - 1) // to * to


class _ChecksumWriter:
    """Writes to ``fh`` and keeps the PE checksum's running sum (16-bit little-endian words).

    Because 2**16 ≡ 1 (mod 0xFFFF), the folded one's-complement sum of the words is the file read as
    one little-endian integer modulo 0xFFFF; a byte at an odd offset weighs 256."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.offset = 0
        self.total = 0

    def write(self, data: bytes) -> None:
        value = int.from_bytes(data, "little") % 0xFFFF
        if self.offset % 2:
            value = value * 256 % 0xFFFF
        self.total = (self.total + value) % 0xFFFF
        self.fh.write(data)
        self.offset += len(data)

    def pad_to(self, offset: int) -> None:
        if offset > self.offset:
            self.write(bytes(offset - self.offset))

    def checksum(self) -> int:
        return (self.total + self.offset) & 0xFFFFFFFF


def _read(fh: BinaryIO, size: int) -> bytes:
    data = fh.read(size)
    if len(data) != size:
        raise BuildError("EFI stub is truncated")
    return data


def append_sections(stub: Path, sections: Sequence[Section], out: BinaryIO) -> None:
    """Write ``stub`` with ``sections`` appended (page-aligned addresses after the stub's last section)."""
    with open(stub, "rb") as fh:
        head = bytearray(_read(fh, 0x40))
        if head[:2] != b"MZ":
            raise BuildError(f"{stub} is not a PE/EFI file")
        pe = struct.unpack_from("<I", head, 0x3C)[0]
        fh.seek(0)
        header = bytearray(_read(fh, pe + 24))
        if header[pe : pe + 4] != b"PE\0\0":
            raise BuildError(f"{stub} is not a PE/EFI file")
        (nsections,) = struct.unpack_from("<H", header, pe + 6)
        (opt_size,) = struct.unpack_from("<H", header, pe + 20)
        header += _read(fh, opt_size)
        opt = pe + 24
        if struct.unpack_from("<H", header, opt)[0] != 0x20B:
            raise BuildError(f"{stub} is not a PE32+ (64-bit) EFI file")
        section_align, file_align = struct.unpack_from("<II", header, opt + 32)
        (size_of_headers,) = struct.unpack_from("<I", header, opt + 60)
        table = opt + opt_size
        header += _read(fh, nsections * _SECTION_HEADER)
        end_va = 0
        first_raw = size_of_headers
        for i in range(nsections):
            _, vsize, va, rawsize, rawptr = struct.unpack_from("<8sIIII", header, table + i * _SECTION_HEADER)
            end_va = max(end_va, va + max(vsize, rawsize))
            if rawsize:
                first_raw = min(first_raw, rawptr)
        new_table_end = table + (nsections + len(sections)) * _SECTION_HEADER
        if new_table_end > min(size_of_headers, first_raw):
            raise BuildError(f"{stub} has no room in its headers for {len(sections)} more sections")
        stub_size = fh.seek(0, 2)
        va = _align(end_va, max(section_align, _PAGE))
        raw = _align(stub_size, file_align)
        entries = bytearray()
        added_init = 0
        layout: list[tuple[int, Section]] = []
        for sec in sections:
            size = sec.size
            raw_size = _align(size, file_align)
            entries += struct.pack(
                "<8sIIIIIIHHI", sec.name.encode()[:8], size, va, raw_size, raw, 0, 0, 0, 0, _DATA_SECTION
            )
            layout.append((raw, sec))
            added_init += raw_size
            raw += raw_size
            va = _align(va + size, max(section_align, _PAGE))
        if va > 0xFFFFFFFF or raw > 0xFFFFFFFF:
            raise BuildError(
                f"kernel + initrd are too big for a UKI: {raw >> 20} MiB, a PE image holds at most 4 GiB",
                hint="make the image smaller, or use kernel+initrd or a BIOS disk format",
            )
        # Header edits: section count, SizeOfInitializedData, SizeOfImage, checksum (computed last).
        struct.pack_into("<H", header, pe + 6, nsections + len(sections))
        (init_data,) = struct.unpack_from("<I", header, opt + 8)
        struct.pack_into("<I", header, opt + 8, (init_data + added_init) & 0xFFFFFFFF)
        struct.pack_into("<I", header, opt + 56, va)
        struct.pack_into("<I", header, opt + 64, 0)
        header += entries
        start = out.tell()
        writer = _ChecksumWriter(out)
        writer.write(bytes(header))
        fh.seek(len(header))
        rest = _read(fh, stub_size - len(header)) if stub_size > len(header) else b""
        writer.write(rest)
    for offset, sec in layout:
        writer.pad_to(offset)
        if isinstance(sec.content, bytes):
            writer.write(sec.content)
        else:
            with open(sec.content, "rb") as src:
                while chunk := src.read(_CHUNK):
                    writer.write(chunk)
    writer.pad_to(_align(writer.offset, file_align))
    out.seek(start + opt + 64)
    out.write(struct.pack("<I", writer.checksum()))
    out.seek(0, 2)


def os_release(name: str) -> bytes:
    """The ``.osrel`` section: what boot menus show for this image."""
    return f'NAME="LinuxKit"\nID=linuxkit\nPRETTY_NAME="LinuxKit {name}"\nIMAGE_ID={name}\n'.encode()


def build_uki(stub: Path, kernel: Path, initrd: Path, cmdline: str, out: BinaryIO, *, name: str) -> None:
    """Write a UKI to ``out`` from an EFI ``stub``, a ``kernel``, an ``initrd`` and a ``cmdline``."""
    if not kernel.stat().st_size:
        raise BuildError("the image has no kernel (boot/kernel): a UKI cannot be made")
    sections = [
        Section(".osrel", os_release(name)),
        Section(".cmdline", cmdline.encode() + b"\0"),
        Section(".linux", kernel),
        Section(".initrd", initrd),
    ]
    append_sections(stub, sections, out)


def write_uki_file(ctx: FormatContext, kernel: Path, initrd: Path, cmdline: str, dest: Path) -> None:
    """Write a UKI for this build to the (temporary) path ``dest``: the EFI stub of the build's
    architecture; a gzip kernel (arm64's) is decompressed next to ``dest`` first. Signed when the
    build signs (:mod:`.signing`), before it goes into an ESP or an ISO."""
    stub = boot_file(ctx.boot_files, efi_names(ctx.arch).stub)
    kernel = efi_kernel(kernel, dest.parent)
    unsigned = dest.with_name(dest.name + ".unsigned") if ctx.signing else dest
    with open(unsigned, "wb") as fh:
        build_uki(stub, kernel, initrd, cmdline, fh, name=ctx.base.name)
    if ctx.signing:
        sign_efi(unsigned, dest, ctx.signing, epoch=ctx.epoch)
        unsigned.unlink()


def write_uki(ctx: FormatContext, rootfs_tar: Path) -> None:
    """``uki``: ``NAME.efi`` (signed when the build signs)."""
    if ctx.verity_tools is not None:
        from .verityuki import write_verity_uki  # build --verity: the root image's boot chain

        write_verity_uki(ctx)
        return
    final = f"{ctx.base}.efi"
    stub = boot_file(ctx.boot_files, efi_names(ctx.arch).stub)
    log.info(f"  {final}")
    # the shared scratch helper makes the output directory first (a fresh --dir failed here)
    with scratch(ctx, "uki") as tmp:
        parts = make_kernel_initrd(rootfs_tar, tmp, decompress_kernel=ctx.decompress_kernel)
        kernel = efi_kernel(parts.kernel, tmp)
        unsigned = tmp / "unsigned.efi" if ctx.signing else ctx.outputs.path(final)
        with open(unsigned, "wb") as fh:
            build_uki(stub, kernel, parts.initrd, parts.cmdline, fh, name=ctx.base.name)
        if ctx.signing:
            sign_efi(unsigned, ctx.outputs.path(final), ctx.signing, epoch=ctx.epoch)
