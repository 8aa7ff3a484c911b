"""pytest imports test files by base name (tests/unit and tests/integration are not packages): two
files with one name in both folders stop the whole run at collection."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_test_file_name_is_used_twice() -> None:
    names = [p.name for p in TESTS.rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
