"""A streaming writer of ``newc`` (SVR4, magic ``070701``) cpio archives, byte-compatible with the
writer upstream uses (``github.com/surma/gocpio``).

That writer's choices, kept here because the initrd must match upstream byte for byte once
decompressed: inode numbers count up from 721, one per entry (the trailer included); directories
say two links, everything else one; the archive's own device is 3:1; the checksum is 0; header and
name are padded to 4 bytes, data is padded when the next header starts; the trailer is padded to a
multiple of 512 bytes. Numbers are printed as Go's ``%08x`` does (so a negative mtime shows a
minus sign). Nothing is buffered beyond a small write buffer.
"""

from __future__ import annotations

from typing import Protocol

from ..errors import BuildError
from ..tar.header import Readable
from ..tar.writer import copy_data

# File types as stored in the high bits of the mode (``(type & 0xF) << 12``).
TYPE_FIFO = 0o01
TYPE_CHAR = 0o02
TYPE_DIR = 0o04
TYPE_BLK = 0o06
TYPE_REG = 0o10
TYPE_SYMLINK = 0o12
TYPE_SOCK = 0o14

FIRST_INODE = 721
TRAILER = "TRAILER!!!"
_FLUSH_AT = 256 << 10
#: The header when every field fits 8 hex digits (``go_hex8`` is only needed otherwise).
_HEADER = b"070701" + b"%08x" * 13
_CHUNK = 1 << 20


def go_hex8(value: int) -> str:
    """``fmt.Sprintf("%08x", value)`` in Go: zero padding to 8 characters, sign included."""
    if value < 0:
        return "-" + format(-value, "x").rjust(7, "0")
    return format(value, "08x")


class Writable(Protocol):
    def write(self, data: bytes | bytearray | memoryview, /) -> object: ...


class CpioWriter:
    """Writes entries to ``out``: a header, then exactly ``size`` data bytes; :meth:`close` adds the
    trailer. ``out`` is not closed."""

    def __init__(self, out: Writable) -> None:
        self._out = out
        self._buf = bytearray()
        self._length = 0  # bytes written so far, for padding
        self._inode = FIRST_INODE
        self._left = 0
        self._closed = False

    # -- low level -------------------------------------------------------------------------------

    def _put(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data
        self._length += len(data)
        if len(self._buf) >= _FLUSH_AT:
            self._out.write(self._buf)
            self._buf.clear()

    def _pad(self, mod: int) -> None:
        self._put(bytes(-self._length % mod))

    def write_header(
        self,
        name: bytes,
        *,
        kind: int,
        mode: int = 0,
        uid: int = 0,
        gid: int = 0,
        mtime: int = 0,
        size: int = 0,
        devmajor: int = 0,
        devminor: int = 0,
        nlink: int = 0,
        ino: int = 0,
    ) -> int:
        """Start an entry named ``name`` (bytes, as stored); ``size`` data bytes must follow. ``nlink``
        (default: 2 for a directory, else 1) and ``ino`` (default: the next inode number) are for hard
        links: the kernel links an entry to an earlier one with the same ``ino`` whose ``nlink`` was at
        least 2. Returns the entry's inode number."""
        if self._closed:
            raise BuildError("cpio writer already closed")
        if self._left:
            # gocpio zero-fills a short entry; we refuse it: a short copy is a bug upstream of us.
            raise BuildError(f"cpio entry is missing {self._left} bytes of data")
        self._pad(4)
        inode = ino or self._inode
        fields = (
            inode,
            (mode & 0xFFF) | ((kind & 0xF) << 12),
            uid,
            gid,
            nlink or (2 if kind == TYPE_DIR else 1),
            mtime,
            size,
            3,  # device of the archive itself: gocpio's constant
            1,
            devmajor,
            devminor,
            len(name) + 1,
            0,  # checksum (unused in newc)
        )
        if all(0 <= v <= 0xFFFFFFFF for v in fields):
            self._put(_HEADER % fields)  # the usual case, formatted in one go
        else:
            self._put(("070701" + "".join(go_hex8(v) for v in fields)).encode("ascii"))
        self._put(name + b"\x00")
        self._pad(4)
        if not ino:
            self._inode += 1
        self._left = size
        return inode

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if len(data) > self._left:
            raise BuildError("cpio entry data longer than its header says")
        self._left -= len(data)
        if len(data) >= _FLUSH_AT:
            self._out.write(self._buf)
            self._buf.clear()
            self._out.write(data)
            self._length += len(data)
        else:
            self._put(data)

    def copy_from(self, src: Readable, size: int) -> None:
        """Copy exactly ``size`` bytes of ``src`` as the current entry's data."""
        copy_data(self, src, size)

    def close(self) -> None:
        """Write the trailer, pad to 512 bytes and flush (``out`` stays open)."""
        if self._closed:
            return
        self.write_header(TRAILER.encode(), kind=0)
        self._pad(512)
        self._out.write(self._buf)
        self._buf.clear()
        self._closed = True

    # -- conveniences ----------------------------------------------------------------------------

    def add_dir(self, name: bytes, *, mode: int = 0o755, uid: int = 0, gid: int = 0, mtime: int = 0) -> None:
        self.write_header(name, kind=TYPE_DIR, mode=mode, uid=uid, gid=gid, mtime=mtime)

    def add_file(
        self, name: bytes, data: bytes, *, mode: int = 0o644, uid: int = 0, gid: int = 0, mtime: int = 0
    ) -> None:
        self.write_header(name, kind=TYPE_REG, mode=mode, uid=uid, gid=gid, mtime=mtime, size=len(data))
        self.write(data)

    def add_symlink(
        self, name: bytes, target: bytes, *, mode: int = 0o777, uid: int = 0, gid: int = 0, mtime: int = 0
    ) -> None:
        self.write_header(name, kind=TYPE_SYMLINK, mode=mode, uid=uid, gid=gid, mtime=mtime, size=len(target))
        self.write(target)

    def add_device(
        self,
        name: bytes,
        *,
        kind: int,
        major: int,
        minor: int,
        mode: int = 0o600,
        uid: int = 0,
        gid: int = 0,
        mtime: int = 0,
    ) -> None:
        """A character (``TYPE_CHAR``), block (``TYPE_BLK``) device or fifo (``TYPE_FIFO``)."""
        self.write_header(name, kind=kind, mode=mode, uid=uid, gid=gid, mtime=mtime, devmajor=major, devminor=minor)
