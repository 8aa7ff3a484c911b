"""The blocks of a raw disk image as the EBS direct APIs take them (pure logic, no SDK).

An EBS snapshot is written in blocks of 512 KiB (``BlockIndex`` = offset / 524288). Only blocks holding a
non-zero byte are sent: a new snapshot reads as zeroes where nothing was written. The last block of an image
whose size is not a multiple of 512 KiB is padded with zeroes, since every ``PutSnapshotBlock`` carries exactly
one block.

Each block carries the base64 SHA-256 of its bytes; ``CompleteSnapshot`` carries the LINEAR aggregate: the
SHA-256 of the blocks' raw (not base64) digests concatenated in ascending block index, base64 encoded
(AWS EBS user guide, "Use EBS direct APIs checksums to validate snapshot data").
"""

from __future__ import annotations

import base64
import errno
import hashlib
import os
from collections.abc import Iterable, Iterator
from typing import BinaryIO, NamedTuple

#: the EBS direct APIs' block size (bytes)
BLOCK_SIZE = 512 * 1024
GIB = 1024**3
_ZERO = bytes(BLOCK_SIZE)


class Block(NamedTuple):
    """One non-zero block: its index, its exact 512 KiB of data and the raw SHA-256 of that data."""

    block_index: int
    data: bytes
    digest: bytes

    @property
    def checksum(self) -> str:
        """The base64 SHA-256 ``PutSnapshotBlock`` wants in ``x-amz-Checksum``."""
        return base64.b64encode(self.digest).decode("ascii")


def volume_size_gib(image_bytes: int) -> int:
    """``StartSnapshot``'s ``VolumeSize``: the image's size in GiB, rounded up, at least 1."""
    return max(1, -(-image_bytes // GIB))


def block_count(image_bytes: int) -> int:
    """How many 512 KiB blocks cover ``image_bytes`` (the last one may be partial)."""
    return -(-image_bytes // BLOCK_SIZE)


def make_block(index: int, data: bytes) -> Block:
    """``data`` (at most one block) padded with zeroes to a whole block, with its digest."""
    if len(data) > BLOCK_SIZE:
        raise ValueError(f"a block holds at most {BLOCK_SIZE} bytes, not {len(data)}")
    if len(data) < BLOCK_SIZE:
        data = data + bytes(BLOCK_SIZE - len(data))
    return Block(index, data, hashlib.sha256(data).digest())


def _data_start(fd: int, offset: int, end: int) -> int:
    """The first offset at or after ``offset`` that may hold data (``SEEK_DATA``: holes of a sparse file are
    skipped without reading them), or ``end`` when only a hole follows."""
    seek_data = getattr(os, "SEEK_DATA", None)
    if seek_data is None:
        return offset
    try:
        return min(os.lseek(fd, offset, seek_data), end)
    except OSError as exc:
        # ENXIO: nothing but a hole after offset; anything else: the file system cannot say, read it all
        return end if exc.errno == errno.ENXIO else offset


def iter_blocks(fh: BinaryIO, size: int) -> Iterator[tuple[int, Block | None]]:
    """Walk the first ``size`` bytes of ``fh`` block by block: yields ``(bytes covered, block)`` where
    ``block`` is None for a run of zero blocks (``bytes covered`` then counts the whole run). One block is in
    memory at a time; holes of a sparse file are skipped with ``SEEK_DATA``."""
    fd = fh.fileno()
    offset = 0
    while offset < size:
        start = _data_start(fd, offset, size) // BLOCK_SIZE * BLOCK_SIZE
        if start > offset:
            yield start - offset, None
            offset = start
            continue
        want = min(BLOCK_SIZE, size - offset)
        data = os.pread(fd, want, offset)
        if len(data) < want:
            raise OSError(f"short read at offset {offset}: {len(data)} of {want} bytes (file truncated?)")
        index = offset // BLOCK_SIZE
        offset += want
        if data == _ZERO[:want]:
            yield want, None
        else:
            yield want, make_block(index, data)


def aggregate_checksum(digests: Iterable[tuple[int, bytes]]) -> str:
    """The LINEAR aggregate for ``CompleteSnapshot``: SHA-256 over the raw digests of the written blocks in
    ascending block index, base64."""
    total = hashlib.sha256()
    for _, digest in sorted(digests):
        total.update(digest)
    return base64.b64encode(total.digest()).decode("ascii")
