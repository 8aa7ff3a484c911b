"""A streaming tar reader that yields headers the way Go's ``archive/tar.Reader`` does.

Upstream reads every image layer with Go's reader and passes the headers on, so what it writes
depends on how Go fills a ``Header``: PAX records kept verbatim in ``PAXRecords``, GNU long
names, GNU atime/ctime, USTAR prefixes, legacy ``'\\0'`` type flags. This reader reproduces
that. Entry data is read straight from the underlying stream (nothing is buffered).
GNU sparse files and PAX global headers are rejected / skipped (see ``docs/compatibility.md``).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import BuildError
from .header import (
    DIR,
    GNU,
    GNU_LONGLINK,
    GNU_LONGNAME,
    GNU_SPARSE,
    HEADER_ONLY,
    PAX,
    REG,
    REGA,
    XGLOBAL,
    XHEADER,
    GoTime,
    Header,
    Readable,
    dec,
    plan_header,
    valid_pax_record,
)
from .writer import encode_header, format_pax_record

_BLOCK = 512
_MAX_SPECIAL = 1 << 20
#: Longest name or link target accepted, in bytes: Linux's ``PATH_MAX``. Nothing longer can be
#: created on any Linux file system, and an unbounded name makes path bookkeeping quadratic (a
#: 128 KB PAX ``path`` of ``a/a/a/...`` has 64 K ancestors).
MAX_NAME = 4096


class PathBudget:
    """Bounds the memory a reader of one untrusted tree spends remembering its paths: each name and
    each directory it implies costs its length plus ~100 bytes of Python overhead. Names are at
    most :data:`MAX_NAME` bytes, but distinct deep names each add all their ancestors, so a few
    kilobytes of gzip could otherwise ask for gigabytes. The limit is ~10 times what a 100 000-file
    image needs."""

    LIMIT = 128 << 20
    OVERHEAD = 100

    def __init__(self, what: str) -> None:
        self.what = what
        self.left = self.LIMIT

    def charge(self, name: str) -> None:
        self.left -= len(name) + self.OVERHEAD
        if self.left < 0:
            raise BuildError(
                f"{self.what}: its paths need more than {self.LIMIT >> 20} MB of bookkeeping (very many or "
                "very deep names): refused as malformed or hostile",
                hint="rebuild it, or leave it out",
            )


def check_name_lengths(hdr: Header, what: str = "tar") -> None:
    """Refuse a name or link target longer than :data:`MAX_NAME` bytes."""
    for label, value in (("name", hdr.name), ("link target", hdr.linkname)):
        if len(value) > MAX_NAME // 4 and len(value.encode("utf-8", "surrogateescape")) > MAX_NAME:
            raise BuildError(
                f"{what}: an entry's {label} is {len(value.encode('utf-8', 'surrogateescape'))} bytes long "
                f"(starting {value[:60]!r}); the limit is {MAX_NAME} bytes (PATH_MAX)",
                hint="the image or tar is malformed or hostile: rebuild it, or leave it out",
            )


class _Bounded:
    """At most ``size`` bytes of the underlying stream: one entry's data."""

    def __init__(self, raw: Readable, size: int) -> None:
        self._raw = raw
        self.left = size

    def read(self, n: int = -1, /) -> bytes:
        if n < 0 or n > self.left:
            n = self.left
        if n == 0:
            return b""
        data = self._raw.read(n)
        self.left -= len(data)
        if not data:
            raise BuildError("tar stream ended in the middle of an entry")
        return data

    def skip(self) -> None:
        while self.left:
            self.read(min(self.left, 1 << 20))


@dataclass
class Entry:
    """A header and a stream of exactly its data (empty for header-only types)."""

    header: Header
    data: Readable


def _read_exact(raw: Readable, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = raw.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def read_all(data: Readable, size: int) -> bytes:
    """Exactly ``size`` bytes of an entry's data (a small file such as ``boot/cmdline``)."""
    out = _read_exact(data, size)
    if len(out) != size:
        raise BuildError(f"tar data ended {size - len(out)} bytes early")
    return out


def _cstring(raw: bytes) -> bytes:
    nul = raw.find(b"\x00")
    return raw if nul < 0 else raw[:nul]


def _numeric(raw: bytes) -> int:
    if raw and raw[0] & 0x80:
        negative = bool(raw[0] & 0x40)
        value = 0
        for i, c in enumerate(raw):
            if negative:
                c ^= 0xFF
            if i == 0:
                c &= 0x7F
            value = (value << 8) | c
        if value >> 63:
            raise BuildError("tar header: numeric field overflows")
        return ~value if negative else value
    text = _cstring(raw.strip(b" \x00"))
    if not text:
        return 0
    try:
        if not text.isascii():
            raise ValueError("not ASCII")
        return int(text, 8)
    except ValueError as exc:
        raise BuildError(f"tar header: bad octal field {raw!r}") from exc


def parse_pax_time(text: str) -> GoTime:
    secs_text, _, frac = text.partition(".")
    try:
        secs = int(secs_text)
    except ValueError as exc:
        raise BuildError(f"bad PAX time {text!r}") from exc
    if not frac:
        return (secs, 0)
    if frac.strip("0123456789"):
        raise BuildError(f"bad PAX time {text!r}")
    nsecs = int((frac + "000000000")[:9])
    if secs_text.startswith("-"):
        nsecs = -nsecs
    secs += nsecs // 1_000_000_000
    return (secs, nsecs % 1_000_000_000)


def parse_pax(data: bytes) -> dict[str, str]:
    text = dec(data)
    records: dict[str, str] = {}
    while text:
        size_text, sep, _ = text.partition(" ")
        if not sep or not size_text.isdigit():
            raise BuildError("tar: malformed PAX record")
        size = int(size_text)
        if size < 5 or size > len(text.encode("utf-8", "surrogateescape")):
            raise BuildError("tar: malformed PAX record")
        raw = text.encode("utf-8", "surrogateescape")
        record, rest = raw[len(size_text) + 1 : size], raw[size:]
        if not record.endswith(b"\n") or b"=" not in record:
            raise BuildError("tar: malformed PAX record")
        key, _, value = dec(record[:-1]).partition("=")
        if not valid_pax_record(key, value):
            raise BuildError(f"tar: invalid PAX record {key!r}")
        if key in ("GNU.sparse.offset", "GNU.sparse.numbytes"):
            raise BuildError("tar: GNU sparse files are not supported")
        records[key] = value
        text = dec(rest)
    return records


def _merge_pax(hdr: Header, records: dict[str, str]) -> None:
    for key, value in records.items():
        if not value:
            continue
        try:
            if key == "path":
                hdr.name = value
            elif key == "linkpath":
                hdr.linkname = value
            elif key == "uname":
                hdr.uname = value
            elif key == "gname":
                hdr.gname = value
            elif key == "uid":
                hdr.uid = int(value)
            elif key == "gid":
                hdr.gid = int(value)
            elif key == "size":
                hdr.size = int(value)
            elif key in ("mtime", "atime", "ctime"):
                setattr(hdr, key, parse_pax_time(value))
        except ValueError as exc:
            raise BuildError(f"tar: bad PAX record {key}={value!r}") from exc
    hdr.pax = records
    if "GNU.sparse.major" in records or "GNU.sparse.map" in records:
        raise BuildError(f"tar entry {hdr.name!r}: GNU sparse files are not supported")


def _parse_block(block: bytes) -> Header:
    stored = _numeric(block[148:156])
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    # The signed sum (old writers) only differs when a byte is >= 0x80: each such byte counts 256 less.
    # Computed only on a mismatch: a per-byte Python loop was a tenth of a build's time.
    if stored != unsigned and stored != unsigned - 256 * sum(1 for b in block[:148] + block[156:] if b > 127):
        raise BuildError("tar: header checksum mismatch (not a tar stream?)")
    magic, version, trailer = block[257:263], block[263:265], block[508:512]
    hdr = Header(
        name=dec(_cstring(block[0:100])),
        typeflag=chr(block[156]),
        linkname=dec(_cstring(block[157:257])),
        size=_numeric(block[124:136]),
        mode=_numeric(block[100:108]),
        uid=_numeric(block[108:116]),
        gid=_numeric(block[116:124]),
        mtime=(_numeric(block[136:148]), 0),
    )
    prefix = b""
    if magic == b"ustar\x00" or (magic == b"ustar " and version == b" \x00"):
        hdr.uname = dec(_cstring(block[265:297]))
        hdr.gname = dec(_cstring(block[297:329]))
        hdr.devmajor = _numeric(block[329:337])
        hdr.devminor = _numeric(block[337:345])
        if magic == b"ustar\x00" and trailer == b"tar\x00":
            prefix = _cstring(block[345:476])
            hdr.atime = (_numeric(block[476:488]), 0)
            hdr.ctime = (_numeric(block[488:500]), 0)
        elif magic == b"ustar\x00":
            prefix = _cstring(block[345:500])
        else:
            try:
                if block[345]:
                    hdr.atime = (_numeric(block[345:357]), 0)
                if block[357]:
                    hdr.ctime = (_numeric(block[357:369]), 0)
            except BuildError:
                # Pre-Go-1.8 writers put a USTAR prefix here; Go falls back the same way.
                hdr.atime = hdr.ctime = None
                candidate = _cstring(block[345:500])
                if all(0 < b < 0x80 for b in candidate):
                    prefix = candidate
    if prefix:
        hdr.name = dec(prefix) + "/" + hdr.name
    return hdr


def read_entries(raw: Readable) -> Iterator[Entry]:
    """Each entry of the tar stream ``raw``; read an entry's data before asking for the next."""
    current: _Bounded | None = None
    pad = 0
    while True:
        if current is not None:
            current.skip()
            current = None
        if pad:
            _read_exact(raw, pad)
            pad = 0
        records: dict[str, str] | None = None
        long_name: str | None = None
        long_link: str | None = None
        while True:
            block = _read_exact(raw, _BLOCK)
            if not block:
                return
            if len(block) < _BLOCK:
                raise BuildError("tar stream ends in the middle of a header")
            if block == bytes(_BLOCK):
                second = _read_exact(raw, _BLOCK)
                if not second or second == bytes(_BLOCK):
                    return
                raise BuildError("tar: zero block followed by data")
            hdr = _parse_block(block)
            if hdr.typeflag in (XHEADER, XGLOBAL, GNU_LONGNAME, GNU_LONGLINK):
                if hdr.size > _MAX_SPECIAL:
                    raise BuildError("tar: special header too long")
                data = _read_exact(raw, hdr.size)
                if len(data) < hdr.size:
                    raise BuildError("tar stream ends in the middle of a header")
                _read_exact(raw, -hdr.size % _BLOCK)
                if hdr.typeflag == XHEADER:
                    records = parse_pax(data)
                elif hdr.typeflag == XGLOBAL:
                    parse_pax(data)  # validated, then ignored (see module docstring)
                elif hdr.typeflag == GNU_LONGNAME:
                    long_name = dec(_cstring(data))
                else:
                    long_link = dec(_cstring(data))
                continue
            break
        if hdr.typeflag == GNU_SPARSE:
            raise BuildError(f"tar entry {hdr.name!r}: GNU sparse files are not supported")
        if records is not None:
            _merge_pax(hdr, records)
        if long_name:
            hdr.name = long_name
        if long_link:
            hdr.linkname = long_link
        if hdr.typeflag == REGA:
            hdr.typeflag = DIR if hdr.name.endswith("/") else REG
        check_name_lengths(hdr)
        if hdr.typeflag in HEADER_ONLY:
            # directories, links and devices have no data, whatever size they declare (as Go's
            # reader); the declared size is dropped so no consumer pads or allocates for it
            hdr.size = 0
        size = hdr.size
        if size < 0:
            raise BuildError(f"tar entry {hdr.name!r}: negative size")
        current = _Bounded(raw, size)
        pad = -size % _BLOCK
        yield Entry(hdr, current)


def read_back(hdr: Header) -> Header:
    """``hdr`` as this reader reads it back after :class:`~.tarwriter.TarWriter` wrote it: what a
    consumer of the rootfs tar sees (times rounded, unset fields zero, ...), without the tar."""
    return next(read_entries(io.BytesIO(encode_header(hdr)))).header


def read_back_placement(hdr: Header) -> Header:
    """:func:`read_back` for the fields that place an entry (name, type, link name, size, mode,
    ids, mtime, device numbers), computed without writing and parsing the blocks (a tenth of the
    time); the result has no atime, ctime or PAX records. Raises as the writer would for a header
    it cannot write."""
    if hdr.typeflag == REGA:
        hdr = hdr.copy(typeflag=DIR if hdr.name.endswith("/") else REG)
    mtime = hdr.mtime
    if not hdr.want_pax and mtime is not None:
        # the writer rounds the time when no format is requested
        mtime = (mtime[0] + (1 if mtime[1] >= 500_000_000 else 0), 0)
        hdr = hdr.copy(mtime=mtime, atime=None, ctime=None)
    choice, records = plan_header(hdr)
    if choice == GNU:
        encode_header(hdr)  # raises the writer's error
    if choice == PAX and records:
        rough = sum(len(k) + len(v) for k, v in records.items())
        if 4 * rough + 32 * len(records) >= _MAX_SPECIAL and (
            sum(len(format_pax_record(k, v)) for k, v in records.items()) > _MAX_SPECIAL
        ):
            encode_header(hdr)  # raises the writer's error
    # Fields the writer cannot store as they are go into PAX records and read back unchanged;
    # the name and link name are rebuilt from a USTAR prefix or a record. Only an unset time
    # changes: the block holds 0.
    return Header(
        name=hdr.name,
        typeflag=hdr.typeflag,
        linkname=hdr.linkname,
        size=0 if hdr.typeflag in HEADER_ONLY else hdr.size,  # as the reader: such entries carry no data
        mode=hdr.mode,
        uid=hdr.uid,
        gid=hdr.gid,
        mtime=mtime if mtime is not None else (0, 0),
        devmajor=hdr.devmajor,
        devminor=hdr.devminor,
        want_pax=hdr.want_pax,
    )
