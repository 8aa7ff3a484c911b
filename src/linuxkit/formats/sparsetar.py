"""One sparse file as an old-GNU sparse tar member (``tar --format=oldgnu -S``), the layout Google Compute
Engine documents for importing ``disk.raw`` in a ``.tar.gz``.

Only the data extents of the file are stored (found with ``SEEK_DATA``/``SEEK_HOLE``), so a 1 GiB disk
holding a few MiB costs a few MiB to read and compress. Headers hold fixed owner (0:0, no names) and
the given mtime, so the bytes depend on the content only.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..errors import BuildError
from .cpio import Writable

BLOCK = 512
_CHUNK = 1 << 20
_IN_HEADER = 4  # sparse entries in the main header
_PER_EXTENSION = 21  # sparse entries per extension block


def data_extents(fh: IO[bytes], size: int) -> list[tuple[int, int]]:
    """``(offset, length)`` of each data extent of an open file (the whole file when the file system
    cannot tell holes)."""
    fd = fh.fileno()
    out: list[tuple[int, int]] = []
    pos = 0
    try:
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # only a hole is left
                    break
                raise
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            out.append((start, end - start))
            pos = end
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
        return [(0, size)] if size else []
    return out


def gnu_number(value: int, width: int) -> bytes:
    """A numeric header field: octal with a NUL, or GNU base-256 when it does not fit."""
    if value < 0:
        raise BuildError(f"tar header field cannot hold {value}")
    text = format(value, "o")
    if len(text) < width:
        return text.rjust(width - 1, "0").encode() + b"\0"
    return bytes([0x80]) + value.to_bytes(width - 1, "big")


def _entries(extents: list[tuple[int, int]]) -> bytes:
    return b"".join(gnu_number(off, 12) + gnu_number(n, 12) for off, n in extents)


def sparse_headers(name: str, real_size: int, extents: list[tuple[int, int]], mtime: int, mode: int = 0o644) -> bytes:
    """The header block and extension blocks of an old-GNU sparse member (typeflag ``S``)."""
    # A file ending in a hole ends its map with an empty extent at its size, as GNU tar writes it.
    if not extents or sum(extents[-1]) < real_size:
        extents = [*extents, (real_size, 0)]
    stored = sum(n for _, n in extents)
    encoded = name.encode()
    if len(encoded) > 100:
        raise BuildError(f"tar member name {name!r} is longer than 100 bytes")
    first, rest = extents[:_IN_HEADER], extents[_IN_HEADER:]
    hdr = bytearray(BLOCK)
    hdr[0 : len(encoded)] = encoded
    hdr[100:108] = gnu_number(mode, 8)
    hdr[108:116] = gnu_number(0, 8)
    hdr[116:124] = gnu_number(0, 8)
    hdr[124:136] = gnu_number(stored, 12)
    hdr[136:148] = gnu_number(mtime, 12)
    hdr[156:157] = b"S"
    hdr[257:265] = b"ustar  \0"  # old GNU magic + version
    sparse = _entries(first)
    hdr[386 : 386 + len(sparse)] = sparse
    hdr[482] = 1 if rest else 0
    hdr[483:495] = gnu_number(real_size, 12)
    hdr[148:156] = b" " * 8
    hdr[148:156] = format(sum(hdr), "06o").encode() + b"\0 "
    blocks = [bytes(hdr)]
    for i in range(0, len(rest), _PER_EXTENSION):
        part = rest[i : i + _PER_EXTENSION]
        ext = bytearray(BLOCK)
        data = _entries(part)
        ext[0 : len(data)] = data
        ext[504] = 1 if i + _PER_EXTENSION < len(rest) else 0
        blocks.append(bytes(ext))
    return b"".join(blocks)


def _extent_data(fh: IO[bytes], extents: list[tuple[int, int]]) -> Iterator[bytes]:
    for offset, length in extents:
        fh.seek(offset)
        left = length
        while left:
            chunk = fh.read(min(left, _CHUNK))
            if not chunk:
                raise BuildError("sparse file shrank while it was archived")
            yield chunk
            left -= len(chunk)


def write_sparse_tar(out: Writable, source: Path, name: str, mtime: int) -> None:
    """A tar archive holding ``source`` as the sparse member ``name`` (data padded, two end blocks)."""
    with open(source, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        extents = data_extents(fh, size)
        out.write(sparse_headers(name, size, extents, mtime))
        stored = 0
        for chunk in _extent_data(fh, extents):
            out.write(chunk)
            stored += len(chunk)
    out.write(bytes(-stored % BLOCK) + bytes(2 * BLOCK))
