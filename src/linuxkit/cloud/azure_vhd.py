"""What an Azure page blob needs from a VHD: a fixed VHD whose footer is sound, and the list of its non-empty
4 MiB ranges (with the MD5 of the whole file, the blob's ``Content-MD5``).

Pure file reading: no SDK, no network. Holes of a sparse file are skipped without reading them
(``SEEK_DATA``); what is read is compared with zeros, so an image written without holes is planned the same.
"""

from __future__ import annotations

import errno
import hashlib
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

#: a page blob's page; every write is aligned to it
PAGE = 512
#: the most one ``Put Page`` may carry, and the unit in which empty ranges are skipped
CHUNK = 4 * 1024 * 1024
#: Azure wants the virtual size of an OS disk to be a whole number of MiB
MIB = 1024 * 1024

_COOKIE = b"conectix"
_DISK_TYPES = {2: "fixed", 3: "dynamic", 4: "differencing"}
_ZEROS = bytes(CHUNK)

_FIXED_HINT = (
    "build a fixed VHD with `linuxkit build -format vhd FILE.yml` (not dynamic-vhd), or convert one with "
    "`qemu-img convert -O vpc -o subformat=fixed,force_size=on IN.vhd OUT.vhd`"
)


@dataclass(frozen=True)
class VhdFooter:
    """The fields of a VHD footer that matter for an upload."""

    disk_type: str
    current_size: int


def footer_checksum(footer: bytes) -> int:
    """One's complement of the byte sum of the footer, its checksum field (bytes 64..68) left out."""
    return ~(sum(footer[:64]) + sum(footer[68:PAGE])) & 0xFFFFFFFF


def parse_footer(footer: bytes, name: str = "the file") -> VhdFooter:
    """The footer's type and size, or a :class:`UserError` saying why it is no VHD footer."""
    if len(footer) != PAGE or footer[:8] != _COOKIE:
        raise UserError(f"{name} is not a VHD: no 'conectix' footer in its last 512 bytes", hint=_FIXED_HINT)
    (checksum,) = struct.unpack_from(">I", footer, 64)
    if checksum != footer_checksum(footer):
        raise UserError(f"{name}: the VHD footer's checksum is wrong (a damaged or truncated file?)")
    (current_size,) = struct.unpack_from(">Q", footer, 48)
    (disk_type,) = struct.unpack_from(">I", footer, 60)
    return VhdFooter(_DISK_TYPES.get(disk_type, f"type {disk_type}"), current_size)


def check_fixed_vhd(path: Path) -> VhdFooter:
    """Check that ``path`` is a fixed VHD Azure takes as a page blob: its size a multiple of 512, a "conectix"
    fixed-disk footer whose size is the file's less the footer, and a virtual size of whole MiB."""
    size = path.stat().st_size
    if size < PAGE or size % PAGE:
        raise UserError(
            f"{path}: {size} bytes is not a whole number of 512-byte pages, so it is no fixed VHD", hint=_FIXED_HINT
        )
    with path.open("rb") as fh:
        fh.seek(size - PAGE)
        footer = parse_footer(fh.read(PAGE), str(path))
    if footer.disk_type != "fixed":
        raise UserError(f"{path} is a {footer.disk_type} VHD; Azure page blobs need a fixed VHD", hint=_FIXED_HINT)
    if footer.current_size != size - PAGE:
        raise UserError(
            f"{path}: the VHD footer says {footer.current_size} bytes but the disk holds {size - PAGE}",
            hint=_FIXED_HINT,
        )
    if footer.current_size % MIB:
        raise UserError(
            f"{path}: Azure needs a disk of whole MiB, this one has {footer.current_size} bytes",
            hint="build it again with `linuxkit build -format vhd -size NM` (a size in MiB or G)",
        )
    return footer


@dataclass(frozen=True)
class PagePlan:
    """The upload of one file: its size, MD5 (``b""``: not computed yet), and the ``(offset, length)`` ranges
    holding data."""

    size: int
    md5: bytes
    ranges: tuple[tuple[int, int], ...]

    @property
    def upload_bytes(self) -> int:
        return sum(length for _, length in self.ranges)


def _next_data(fd: int, offset: int, size: int) -> int:
    """The offset of the next byte that may hold data at or after ``offset`` (``size`` if none)."""
    try:
        return os.lseek(fd, offset, os.SEEK_DATA)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return size
        return offset  # no SEEK_DATA here: read everything


def _walk(path: Path, chunk: int, visit: Callable[[int, int, bytes | None], None]) -> int:
    """Call ``visit(offset, length, data)`` for each ``chunk`` of ``path``, ``data`` None where the file has a
    hole (read nothing there); the file's size."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        fd = fh.fileno()
        data_at = _next_data(fd, 0, size)
        for offset in range(0, size, chunk):
            length = min(chunk, size - offset)
            if data_at < offset:
                data_at = _next_data(fd, offset, size)
            if data_at >= offset + length:
                visit(offset, length, None)
                continue
            data = os.pread(fd, length, offset)
            if len(data) != length:
                raise UserError(f"{path} changed while it was read (short read at {offset})")
            visit(offset, length, data)
    return size


def file_md5(path: Path) -> bytes:
    """The MD5 of ``path``, feeding zeros for its holes instead of reading them."""
    md5 = hashlib.md5(usedforsecurity=False)
    _walk(path, CHUNK, lambda offset, length, data: md5.update(_ZEROS[:length] if data is None else data))
    return md5.digest()


def plan_pages(path: Path, chunk: int = CHUNK, *, md5: bool = True) -> PagePlan:
    """Read ``path`` once: the ``chunk``-sized ranges that are not all zeros, and (``md5``) the MD5 of all of it
    (else ``b""``: :func:`file_md5` can compute it alongside the upload)."""
    if chunk % PAGE or chunk <= 0 or chunk > CHUNK:
        raise ValueError(f"chunk {chunk} is not a multiple of {PAGE} up to {CHUNK}")
    digest = hashlib.md5(usedforsecurity=False)
    ranges: list[tuple[int, int]] = []
    zeros = _ZEROS[:chunk]

    def visit(offset: int, length: int, data: bytes | None) -> None:
        if md5:
            digest.update(zeros[:length] if data is None else data)
        if data is not None and data != zeros[:length]:
            ranges.append((offset, length))

    size = _walk(path, chunk, visit)
    return PagePlan(size, digest.digest() if md5 else b"", tuple(ranges))
