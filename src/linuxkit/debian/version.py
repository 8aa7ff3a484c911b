"""Debian version comparison, following dpkg's rules (``deb-version(7)``)."""

from __future__ import annotations

from functools import lru_cache

from ..errors import UserError


def _order(c: str) -> int:
    # dpkg: "~" sorts before everything (even the end of the string), letters before non-letters.
    if c == "~":
        return -1
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _compare_part(a: str, b: str) -> int:
    """Compare an upstream version or a revision: alternating non-digit and digit runs."""
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            bc = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ac != bc:
                return -1 if ac < bc else 1
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return -1 if first_diff < 0 else 1
    return 0


@lru_cache(maxsize=65536)
def split_version(version: str) -> tuple[int, str, str]:
    """``[epoch:]upstream[-revision]`` → (epoch, upstream, revision); a missing revision is ``""``."""
    text = version.strip()
    epoch = 0
    if ":" in text:
        head, text = text.split(":", 1)
        if not head.isdigit():
            raise UserError(f"invalid Debian version {version!r}: epoch {head!r} is not a number")
        epoch = int(head)
    upstream, sep, revision = text.rpartition("-")
    if not sep:
        upstream, revision = text, ""
    if not upstream:
        raise UserError(f"invalid Debian version {version!r}", hint="a version looks like [epoch:]1.2[-3]")
    return epoch, upstream, revision


@lru_cache(maxsize=262144)
def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as Debian version ``a`` sorts before, equal to or after ``b``."""
    if a == b:
        return 0
    ea, ua, ra = split_version(a)
    eb, ub, rb = split_version(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


def satisfies(version: str, op: str | None, wanted: str | None) -> bool:
    """Whether ``version`` meets the constraint ``op wanted`` (no constraint: always)."""
    if op is None or wanted is None:
        return True
    c = compare_versions(version, wanted)
    if op == "<<":
        return c < 0
    if op == "<=":
        return c <= 0
    if op == "=":
        return c == 0
    if op == ">=":
        return c >= 0
    if op == ">>":
        return c > 0
    raise ValueError(f"unknown version operator {op!r}")
