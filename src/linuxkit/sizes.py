"""Disk sizes as upstream writes them: ``1024M``, ``1G``, ``512`` (MB)."""

from __future__ import annotations

import re

from .errors import UserError

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kKmMgGtT]?)[bB]?\s*$")
_FACTORS_MB = {"k": 1 / 1024, "": 1, "m": 1, "g": 1024, "t": 1024 * 1024}


def parse_size_mb(text: str, *, default_unit: str = "G") -> int:
    """Parse ``text`` into whole MiB; a number without unit means ``default_unit`` (upstream: GiB)."""
    match = _SIZE_RE.match(text)
    if match is None:
        raise UserError(f"unable to parse disk size {text!r}", hint="use a number with an optional unit: 512M, 2G")
    number, unit = int(match.group(1)), match.group(2).lower() or default_unit.lower()
    mb = number * _FACTORS_MB[unit]
    if mb < 1:
        raise UserError(f"disk size {text!r} is smaller than 1 MiB")
    return int(mb)
