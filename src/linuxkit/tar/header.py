"""A tar entry header modelled on Go's ``archive/tar.Header``, and Go's choice of header format.

Upstream streams its rootfs through Go's tar reader and writer, so the bytes it produces depend
on Go's rules: which of USTAR, PAX or GNU a header is written in, and which PAX records go with
it. :func:`plan_header` reproduces those rules (``Header.allowedFormats`` in Go) so that our
output is byte-identical. Names are ``str`` decoded from UTF-8 with ``surrogateescape`` so any
byte string round-trips; lengths and ASCII tests are done on the encoded bytes, as Go does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Protocol

from ..errors import BuildError

# Type flags (one character each, as in the tar header).
REG = "0"
REGA = "\x00"
LINK = "1"
SYMLINK = "2"
CHAR = "3"
BLOCKDEV = "4"
DIR = "5"
FIFO = "6"
XHEADER = "x"
XGLOBAL = "g"
GNU_LONGNAME = "L"
GNU_LONGLINK = "K"
GNU_SPARSE = "S"

HEADER_ONLY = frozenset({LINK, SYMLINK, CHAR, BLOCKDEV, DIR, FIFO})

#: Seconds and nanoseconds since the epoch, nanoseconds in ``[0, 1e9)`` (Go's ``time.Unix`` view).
GoTime = tuple[int, int]

#: Upstream's fixed timestamp for everything it creates: 2017-04-18T16:30:00Z.
DEFAULT_MTIME: GoTime = (1492533000, 0)

PAX_SOURCE = "LINUXKIT.source"
PAX_LOCATION = "LINUXKIT.location"

_BASIC_KEYS = frozenset({"path", "linkpath", "size", "uid", "gid", "uname", "gname", "mtime", "atime", "ctime"})

USTAR, PAX, GNU = 2, 4, 8


def enc(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def dec(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class Readable(Protocol):
    """Anything with ``read(n)``: a file, a tar entry's data."""

    def read(self, n: int = -1, /) -> bytes: ...


class Writable(Protocol):
    """Anything with ``write(data)``: a file, a tar or cpio writer."""

    def write(self, data: bytes, /) -> object: ...


@dataclass
class Header:
    """One tar entry. ``mtime``/``atime``/``ctime`` of ``None`` is Go's zero time (unset)."""

    name: str
    typeflag: str = REG
    linkname: str = ""
    size: int = 0
    mode: int = 0
    uid: int = 0
    gid: int = 0
    uname: str = ""
    gname: str = ""
    mtime: GoTime | None = None
    atime: GoTime | None = None
    ctime: GoTime | None = None
    devmajor: int = 0
    devminor: int = 0
    pax: dict[str, str] | None = field(default=None)
    #: Go's ``Header.Format``: True for ``FormatPAX``, False for ``FormatUnknown``.
    want_pax: bool = True

    def copy(self, **changes: object) -> Header:
        """A copy with ``changes`` applied (its own ``pax`` dict). Done by hand: ``dataclasses.replace``
        was a tenth of a build's time for a rootfs of small files."""
        unknown = changes.keys() - _FIELDS
        if unknown:
            raise TypeError(f"Header has no field {sorted(unknown)[0]!r}")
        out = object.__new__(Header)
        attrs = dict(self.__dict__)
        attrs.update(changes)
        if "pax" not in changes and self.pax is not None:
            attrs["pax"] = dict(self.pax)
        out.__dict__.update(attrs)
        return out

    @property
    def has_data(self) -> bool:
        return self.typeflag not in HEADER_ONLY


_FIELDS = frozenset(f.name for f in fields(Header))
_NOT_ASCII = bytes([0, *range(0x80, 0x100)])  # what Go's ASCII test rejects: NUL and bytes >= 0x80


def is_ascii(raw: bytes) -> bool:
    return raw.isascii() and b"\x00" not in raw


def to_ascii(raw: bytes) -> bytes:
    return raw.translate(None, _NOT_ASCII)


def fits_octal(width: int, value: int) -> bool:
    return value >= 0 and (width >= 22 or value < 1 << ((width - 1) * 3))


def fits_base256(width: int, value: int) -> bool:
    bits = (width - 1) * 8
    return width >= 9 or -(1 << bits) <= value < 1 << bits


def format_pax_time(ts: GoTime) -> str:
    secs, nsecs = ts
    if nsecs == 0:
        return str(secs)
    sign = ""
    if secs < 0:
        sign = "-"
        secs = -(secs + 1)
        nsecs = 1_000_000_000 - nsecs
    return f"{sign}{secs}.{nsecs:09d}".rstrip("0")


def valid_pax_record(key: str, value: str) -> bool:
    if not key or "=" in key:
        return False
    if key in ("path", "linkpath", "uname", "gname"):
        return "\x00" not in value
    return "\x00" not in key


def split_ustar_path(raw: bytes) -> tuple[bytes, bytes] | None:
    """Go's ``splitUSTARPath``: a ``(prefix, name)`` split of a long ASCII name, or ``None``."""
    length = len(raw)
    if length <= 100 or not is_ascii(raw):
        return None
    if length > 156:
        length = 156
    elif raw[length - 1 : length] == b"/":
        length -= 1
    i = raw.rfind(b"/", 0, length)
    nlen = len(raw) - i - 1
    if i <= 0 or nlen > 100 or nlen == 0 or i > 155:
        return None
    return raw[:i], raw[i + 1 :]


@dataclass
class _Plan:
    formats: int = USTAR | PAX | GNU
    records: dict[str, str] = field(default_factory=dict)
    prefer_pax: bool = False


def plan_header(hdr: Header) -> tuple[int, dict[str, str]]:
    """Go's format choice for ``hdr``: ``(USTAR|PAX|GNU chosen, PAX records to write)``.

    Raises :class:`BuildError` when Go's writer would refuse the header.
    """
    # Called twice per rootfs entry: the common cases (short ASCII strings, numbers that fit
    # every format) take a fast path that only looks for a matching record in ``given``.
    plan = _Plan()
    given = hdr.pax or {}

    def string(value: str, size: int, key: str) -> None:
        raw = enc(value)
        too_long = len(raw) > size
        if not too_long and raw.isascii() and b"\x00" not in raw:
            if key in given and given[key] == value:
                plan.records[key] = value
            return
        if b"\x00" in raw or (too_long and key not in ("path", "linkpath")):
            plan.formats &= ~GNU
        if not is_ascii(raw) or too_long:
            if not (key == "path" and split_ustar_path(raw) is not None):
                plan.formats &= ~USTAR
            if not key:
                plan.formats &= ~PAX
            else:
                plan.records[key] = value
        if key and given.get(key) == value:
            plan.records[key] = value

    def number(value: int, size: int, key: str) -> None:
        if 0 <= value < 1 << ((size - 1) * 3):  # fits octal, hence base-256 too
            if key and key in given and given[key] == str(value):
                plan.records[key] = str(value)
            return
        if not fits_base256(size, value):
            plan.formats &= ~GNU
        if not fits_octal(size, value):
            plan.formats &= ~USTAR
            if not key:
                plan.formats &= ~PAX
            else:
                plan.records[key] = str(value)
        if key and given.get(key) == str(value):
            plan.records[key] = str(value)

    def when(ts: GoTime | None, key: str) -> None:
        if ts is None:
            return
        is_mtime = key == "mtime"
        octal = fits_octal(12, ts[0])
        if (is_mtime and not octal) or not is_mtime:
            plan.formats &= ~USTAR
        if not is_mtime or not octal or ts[1] != 0:
            plan.prefer_pax = True
            plan.records[key] = format_pax_time(ts)
        if key in given and given[key] == format_pax_time(ts):
            plan.records[key] = format_pax_time(ts)

    string(hdr.name, 100, "path")
    string(hdr.linkname, 100, "linkpath")
    string(hdr.uname, 32, "uname")
    string(hdr.gname, 32, "gname")
    number(hdr.mode, 8, "")
    number(hdr.uid, 8, "uid")
    number(hdr.gid, 8, "gid")
    number(hdr.size, 12, "size")
    number(hdr.devmajor, 8, "")
    number(hdr.devminor, 8, "")
    when(hdr.mtime, "mtime")
    when(hdr.atime, "atime")
    when(hdr.ctime, "ctime")

    if hdr.typeflag in (REG, CHAR, BLOCKDEV, FIFO, GNU_SPARSE) and hdr.name.endswith("/"):
        raise BuildError(f"tar entry {hdr.name!r}: filename may not have trailing slash")
    if hdr.typeflag in (XHEADER, XGLOBAL, GNU_LONGNAME, GNU_LONGLINK):
        raise BuildError(f"tar entry {hdr.name!r}: cannot write a special header type {hdr.typeflag!r}")
    if hdr.has_data and hdr.size < 0:
        raise BuildError(f"tar entry {hdr.name!r}: negative size")
    if given:
        for key, value in given.items():
            if key in plan.records:
                continue
            if key not in _BASIC_KEYS and not key.startswith("GNU.sparse."):
                plan.records[key] = value
        plan.formats &= PAX
    for key, value in plan.records.items():
        if not valid_pax_record(key, value):
            raise BuildError(f"tar entry {hdr.name!r}: invalid PAX record {key!r}")
    if hdr.want_pax:
        wanted = PAX if plan.prefer_pax else PAX | USTAR
        plan.formats &= wanted
    for choice in (USTAR, PAX, GNU):
        if plan.formats & choice:
            return choice, plan.records
    raise BuildError(f"tar entry {hdr.name!r} cannot be encoded in the PAX format")
