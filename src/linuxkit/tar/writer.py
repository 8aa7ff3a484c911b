"""A tar writer whose bytes match Go's ``archive/tar.Writer`` (the one upstream writes with).

Python's :mod:`tarfile` cannot be used here: it formats numeric fields differently (no
zero-filled device numbers for ordinary files), names PAX headers ``././@PaxHeader`` instead
of ``DIR/PaxHeaders.0/NAME``, orders records differently and picks formats by other rules.
So headers are encoded by hand, following :func:`~linuxkit.tar.header.plan_header`.
"""

from __future__ import annotations

from typing import IO, Protocol

from ..errors import BuildError
from ..gocompat.path import go_join
from .header import (
    DIR,
    GNU,
    PAX,
    REG,
    REGA,
    USTAR,
    XHEADER,
    Header,
    Readable,
    Writable,
    enc,
    fits_octal,
    plan_header,
    split_ustar_path,
    to_ascii,
)

BLOCK = 512
_ZERO = bytes(BLOCK)
_MAX_SPECIAL = 1 << 20
_CHUNK = 1 << 20


class TarSink(Protocol):
    """Where tar entries go: a header, then exactly ``size`` data bytes for data-carrying types."""

    def write_header(self, hdr: Header) -> None: ...

    def write(self, data: bytes) -> None: ...


def copy_data(sink: Writable, src: Readable, size: int) -> None:
    """Copy exactly ``size`` bytes from ``src`` to ``sink`` (e.g. the current entry of a tar or cpio writer)."""
    left = size
    while left > 0:
        chunk = src.read(min(left, _CHUNK))
        if not chunk:
            raise BuildError(f"tar data ended {left} bytes early")
        sink.write(chunk)
        left -= len(chunk)


def _put_string(block: bytearray, offset: int, width: int, raw: bytes) -> None:
    """Go's ``formatter.formatString``: copy, NUL-terminate when room, no trailing ``/`` if cut."""
    block[offset : offset + min(width, len(raw))] = raw[:width]
    if len(raw) < width:
        block[offset + len(raw)] = 0
    if len(raw) > width and block[offset + width - 1] == ord("/"):
        n = len(raw[: width - 1].rstrip(b"/"))
        block[offset + n] = 0


def _put_octal(block: bytearray, offset: int, width: int, value: int) -> None:
    if not fits_octal(width, value):
        value = 0
    digits = format(value, "o")
    pad = width - len(digits) - 1
    if pad > 0:
        digits = "0" * pad + digits
    _put_string(block, offset, width, digits.encode())


def _finish(block: bytearray) -> bytes:
    """Set the USTAR/PAX magic and the checksum."""
    block[257:263] = b"ustar\x00"
    block[263:265] = b"00"
    block[148:156] = b"        "
    _put_octal(block, 148, 7, sum(block))
    block[155] = ord(" ")
    return bytes(block)


def encode_main_block(hdr: Header, *, ascii_only: bool, prefix: bytes = b"") -> bytes:
    """Go's ``templateV7Plus`` plus magic and checksum (USTAR when ``ascii_only`` is false)."""
    fix = to_ascii if ascii_only else (lambda raw: raw)
    block = bytearray(BLOCK)
    mtime = hdr.mtime[0] if hdr.mtime is not None else 0
    block[156] = ord(hdr.typeflag)
    _put_string(block, 0, 100, fix(enc(hdr.name)))
    _put_string(block, 157, 100, fix(enc(hdr.linkname)))
    _put_octal(block, 100, 8, hdr.mode)
    _put_octal(block, 108, 8, hdr.uid)
    _put_octal(block, 116, 8, hdr.gid)
    _put_octal(block, 124, 12, hdr.size)
    _put_octal(block, 136, 12, mtime)
    _put_string(block, 265, 32, fix(enc(hdr.uname)))
    _put_string(block, 297, 32, fix(enc(hdr.gname)))
    _put_octal(block, 329, 8, hdr.devmajor)
    _put_octal(block, 337, 8, hdr.devminor)
    if prefix:
        _put_string(block, 345, 155, prefix)
    return _finish(block)


def format_pax_record(key: str, value: str) -> bytes:
    body = enc(key) + b"=" + enc(value) + b"\n"
    size = len(body) + 1
    size += len(str(size))
    record = str(size).encode() + b" " + body
    if len(record) != size:
        record = str(len(record)).encode() + b" " + body
    return record


def _go_join_pax_name(name: str) -> str:
    """Go's ``path.Join(path.Split(name)[0], "PaxHeaders.0", path.Split(name)[1])``."""
    split = name.rfind("/") + 1
    return go_join(name[:split], "PaxHeaders.0", name[split:])


def encode_header(hdr: Header) -> bytes:
    """All the blocks Go writes for ``hdr`` (an optional PAX extended header, then the header)."""
    if hdr.typeflag == REGA:
        hdr = hdr.copy(typeflag=DIR if hdr.name.endswith("/") else REG)
    if not hdr.want_pax:
        # Go rounds the time and drops atime/ctime when no format is requested.
        mtime = hdr.mtime
        if mtime is not None:
            mtime = (mtime[0] + (1 if mtime[1] >= 500_000_000 else 0), 0)
        hdr = hdr.copy(mtime=mtime, atime=None, ctime=None)
    choice, records = plan_header(hdr)
    if choice == USTAR:
        raw = enc(hdr.name)
        split = split_ustar_path(raw)
        if split is not None:
            return encode_main_block(hdr.copy(name=split[1].decode("ascii")), ascii_only=False, prefix=split[0])
        return encode_main_block(hdr, ascii_only=False)
    if choice == GNU:
        raise BuildError(f"tar entry {hdr.name!r} would need the GNU format, which upstream never writes")
    assert choice == PAX
    out = b""
    if records:
        data = b"".join(format_pax_record(k, records[k]) for k in sorted(records, key=enc))
        if len(data) > _MAX_SPECIAL:
            raise BuildError(f"tar entry {hdr.name!r}: PAX records too long")
        name = to_ascii(enc(_go_join_pax_name(hdr.name)))[:100].rstrip(b"/")
        block = bytearray(BLOCK)
        block[156] = ord(XHEADER)
        _put_string(block, 0, 100, name)
        for offset, width in ((100, 8), (108, 8), (116, 8), (124, 12), (136, 12)):
            _put_octal(block, offset, width, len(data) if offset == 124 else 0)
        out = _finish(block) + data + bytes(-len(data) % BLOCK)
    return out + encode_main_block(hdr, ascii_only=True)


class TarWriter:
    """Streams entries to ``out`` exactly as Go's ``tar.Writer`` would."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._left = 0
        self._pad = 0
        self._closed = False

    def _flush(self) -> None:
        if self._left:
            raise BuildError(f"tar entry is missing {self._left} bytes of data")
        if self._pad:
            self._out.write(_ZERO[: self._pad])
            self._pad = 0

    def write_header(self, hdr: Header) -> None:
        if self._closed:
            raise BuildError("tar writer already closed")
        self._flush()
        self._out.write(encode_header(hdr))
        size = hdr.size if hdr.has_data else 0
        self._left = size
        self._pad = -size % BLOCK

    def write(self, data: bytes) -> None:
        if len(data) > self._left:
            raise BuildError("tar entry data longer than its header says")
        self._out.write(data)
        self._left -= len(data)

    def close(self) -> None:
        """Finish the last entry and write the two zero blocks that end the archive."""
        if self._closed:
            return
        self._flush()
        self._out.write(_ZERO + _ZERO)
        self._closed = True
