"""``Range`` headers of ``linuxkit serve`` (RFC 9110 section 14): pure parsing, no server."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linuxkit.serve.ranges import ByteRange, Unsatisfiable, parse_range


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-9", 100, ByteRange(0, 10)),
        ("bytes=10-", 100, ByteRange(10, 90)),
        ("bytes=-10", 100, ByteRange(90, 10)),
        ("bytes=-1000", 100, ByteRange(0, 100)),  # a suffix longer than the file: all of it
        ("bytes=90-1000", 100, ByteRange(90, 10)),  # a last byte past the end is clipped
        ("bytes=99-99", 100, ByteRange(99, 1)),
        ("Bytes = 5-6", 100, ByteRange(5, 2)),
    ],
)
def test_one_range(header: str, size: int, expected: ByteRange) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "bytes",
        "bytes=",
        "bytes=-",
        "bytes=a-b",
        "bytes=5-4",  # last before first: invalid, so ignored
        "bytes=0-1,5-6",  # several ranges: the whole file
        "items=0-1",
        "bytes=١-٢",  # Arabic-Indic digits are digits to str.isdigit(), not to HTTP
    ],
)
def test_whole_file(header: str | None) -> None:
    assert parse_range(header, 100) is None


@pytest.mark.parametrize(
    ("header", "size"),
    [("bytes=100-", 100), ("bytes=100-200", 100), ("bytes=-0", 100), ("bytes=0-", 0), ("bytes=-5", 0)],
)
def test_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, size)


def test_content_range() -> None:
    assert ByteRange(90, 10).content_range(100) == "bytes 90-99/100"


@given(st.integers(0, 10_000), st.integers(0, 10_000), st.integers(1, 10_000))
def test_any_first_last_stays_in_the_file(first: int, last: int, size: int) -> None:
    header = f"bytes={first}-{last}"
    if last < first:
        assert parse_range(header, size) is None
        return
    if first >= size:
        with pytest.raises(Unsatisfiable):
            parse_range(header, size)
        return
    got = parse_range(header, size)
    assert got is not None
    assert got.start == first and got.length > 0 and got.end <= size - 1 and got.end == min(last, size - 1)
