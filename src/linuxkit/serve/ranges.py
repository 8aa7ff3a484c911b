"""The ``Range`` request header (RFC 9110 section 14): one byte range answered with 206, anything else
with the whole file.

A syntactically invalid header is ignored (the whole file, 200), as the RFC asks. Several ranges are
answered with the whole file too (the RFC lets a server ignore ``Range``): boot loaders and download
tools ask for one range at a time, and a ``multipart/byteranges`` body is more code for no client we
serve. A valid range that starts at or past the end is unsatisfiable (416).
"""

from __future__ import annotations

from typing import NamedTuple


class ByteRange(NamedTuple):
    """``length`` bytes from ``start`` (inclusive); ``end`` is the last byte's offset."""

    start: int
    length: int

    @property
    def end(self) -> int:
        return self.start + self.length - 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


class Unsatisfiable(Exception):
    """The range does not overlap the file (answer 416 with ``Content-Range: bytes */SIZE``)."""


def _spec(spec: str, size: int) -> ByteRange | None:
    """One ``first-last``, ``first-`` or ``-suffix`` spec; None when its syntax is invalid. Raises
    :class:`Unsatisfiable` when it is valid but selects nothing of a ``size``-byte file."""
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if not first.isascii() or not last.isascii():  # str.isdigit() accepts other scripts' digits
        return None
    if first == "":
        if last == "":
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable(spec)
        start = max(0, size - suffix)
        return ByteRange(start, size - start)
    start = int(first)
    if last != "" and int(last) < start:
        return None
    if start >= size:
        raise Unsatisfiable(spec)
    end = size - 1 if last == "" else min(int(last), size - 1)
    return ByteRange(start, end - start + 1)


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range of ``header`` for a ``size``-byte file, or None to send the whole file (no header, an
    invalid one, another unit, several ranges). Raises :class:`Unsatisfiable` (416)."""
    if header is None:
        return None
    unit, eq, specs = header.partition("=")
    if not eq or unit.strip().lower() != "bytes":
        return None
    parts = specs.split(",")
    if len(parts) != 1:
        # several ranges: the whole file (valid or not, the RFC lets us ignore them)
        return None
    return _spec(parts[0], size)
