"""The kernel file of a kernel image: an uncompressed ``Image`` (arm64, riscv64) becomes ``Image.gz``.

Debian ships arm64's ``vmlinuz`` uncompressed (it is an EFI PE that Debian signs: 27 MiB), where
upstream's arm64 and riscv64 kernel images carry ``arch/*/boot/Image.gz`` as ``kernel``. A boot
loader or ``qemu -kernel`` decompresses it; the EFI formats gunzip it where a PE is needed
(``formats/efikernel``). x86's ``bzImage`` is compressed already and is shipped as it is.

The gzip stream is reproducible: no file name, mtime 0, level 9, OS "unknown" (255), so the same
``Image`` and zlib give the same bytes.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import BinaryIO

#: the ``Image`` header's magic at offset 0x38 (Documentation/arch/arm64/booting.rst, riscv/boot-image-header.rst)
IMAGE_MAGICS = {b"ARM\x64": "arm64", b"RSC\x05": "riscv64"}
_MAGIC_OFFSET = 0x38
_GZIP_HEADER = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x02\xff"  # deflate, no flags, mtime 0, best, OS 255
_LEVEL = 9
_CHUNK = 1 << 20


def image_arch(head: bytes) -> str | None:
    """The architecture of an uncompressed ``Image`` whose first bytes are ``head``, else ``None``."""
    return IMAGE_MAGICS.get(head[_MAGIC_OFFSET : _MAGIC_OFFSET + 4])


def is_uncompressed_image(path: Path) -> bool:
    with open(path, "rb") as fh:
        return image_arch(fh.read(_MAGIC_OFFSET + 4)) is not None


def gzip_reproducibly(src: BinaryIO, dst: BinaryIO) -> int:
    """Write ``src`` to ``dst`` as one gzip member with fixed header fields; returns the bytes written."""
    deflate = zlib.compressobj(_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS, 9)
    crc = 0
    size = 0
    written = dst.write(_GZIP_HEADER)
    while chunk := src.read(_CHUNK):
        crc = zlib.crc32(chunk, crc)
        size += len(chunk)
        written += dst.write(deflate.compress(chunk))
    written += dst.write(deflate.flush())
    written += dst.write(struct.pack("<II", crc, size & 0xFFFFFFFF))
    return written


def kernel_file(vmlinuz: Path, scratch: Path) -> Path:
    """The file to ship as ``kernel``: ``vmlinuz`` itself, or ``scratch`` holding its gzip when it is an
    uncompressed ``Image``."""
    if not is_uncompressed_image(vmlinuz):
        return vmlinuz
    with open(vmlinuz, "rb") as src, open(scratch, "wb") as dst:
        gzip_reproducibly(src, dst)
    return scratch
