"""Debian version ordering (dpkg rules) and relation parsing."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from linuxkit.debian.model import Relation, parse_relation, parse_relations
from linuxkit.debian.version import compare_versions, satisfies, split_version
from linuxkit.errors import UserError

# (a, b, expected sign of compare(a, b))
TABLE = [
    ("1.0", "1.0", 0),
    ("1.0", "1.1", -1),
    ("1.10", "1.9", 1),
    ("1.2.10", "1.2.9", 1),
    ("1.0~rc1", "1.0", -1),
    ("1.0~rc1", "1.0~rc2", -1),
    ("1.0~~", "1.0~", -1),
    ("1.0~", "1.0", -1),
    ("1.0", "1.0+b1", -1),
    ("1.0a", "1.0", 1),
    ("1.0a", "1.0+", -1),  # letters sort before non-letters
    ("1.0.", "1.0", 1),
    ("1:0.1", "2.0", 1),
    ("0:1.0", "1.0", 0),
    ("2:1.0", "10:0.1", -1),
    ("1.0-1", "1.0-2", -1),
    ("1.0-10", "1.0-9", 1),
    ("1.0", "1.0-0", 0),
    ("1.0-1~bpo12+1", "1.0-1", -1),
    ("2.36-9+deb12u10", "2.36-9+deb12u9", 1),
    ("1:1.35.0-4+deb12u1+b1", "1:1.35.0-4+deb12u1", 1),
    ("6.1.192-3", "6.1.176-1", 1),
    ("1.2-3-4", "1.2-3-5", -1),  # the revision is after the last hyphen
    ("001", "1", 0),
    ("1.1.0", "1.1", 1),
]


@pytest.mark.parametrize(("a", "b", "expected"), TABLE)
def test_compare_versions(a: str, b: str, expected: int) -> None:
    assert compare_versions(a, b) == expected
    assert compare_versions(b, a) == -expected


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg not installed")
def test_table_agrees_with_dpkg() -> None:
    for a, b, expected in TABLE:
        op = {-1: "lt", 0: "eq", 1: "gt"}[expected]
        ok = subprocess.run(["dpkg", "--compare-versions", a, op, b], check=False).returncode == 0
        assert ok, (a, op, b)


def test_split_version() -> None:
    assert split_version("1:2.3-4-5") == (1, "2.3-4", "5")
    assert split_version("2.3") == (0, "2.3", "")
    with pytest.raises(UserError):
        split_version("x:1.0")
    with pytest.raises(UserError):
        split_version("-1")


@pytest.mark.parametrize(
    ("version", "op", "wanted", "expected"),
    [
        ("2.36-9", ">=", "2.34", True),
        ("2.33", ">=", "2.34", False),
        ("1.0", "<<", "1.0", False),
        ("1.0~", "<<", "1.0", True),
        ("1.0", "<=", "1.0", True),
        ("1.0", "=", "1.0-0", True),
        ("1.1", ">>", "1.0", True),
        ("1.0", ">>", "1.0", False),
        ("0.1", None, None, True),
    ],
)
def test_satisfies(version: str, op: str | None, wanted: str | None, expected: bool) -> None:
    assert satisfies(version, op, wanted) is expected


def test_satisfies_rejects_unknown_operator() -> None:
    with pytest.raises(ValueError):
        satisfies("1", "~=", "1")


@pytest.mark.parametrize(
    ("text", "relation"),
    [
        ("libc6 (>= 2.34)", Relation("libc6", ">=", "2.34")),
        ("libc6(>=2.34)", Relation("libc6", ">=", "2.34")),
        ("awk", Relation("awk", None, None)),
        ("python3:any", Relation("python3", None, None, "any")),
        ("perl:any (>= 5.10)", Relation("perl", ">=", "5.10", "any")),
        ("foo (< 1)", Relation("foo", "<=", "1")),  # obsolete spelling
        ("foo (> 1)", Relation("foo", ">=", "1")),
        ("libstdc++6 (>= 1:12) [amd64] <!nocheck>", Relation("libstdc++6", ">=", "1:12")),
    ],
)
def test_parse_relation(text: str, relation: Relation) -> None:
    assert parse_relation(text) == relation


def test_parse_relation_errors() -> None:
    for bad in ("", "Foo", "foo (>= )", "foo (~ 1)"):
        with pytest.raises(UserError):
            parse_relation(bad)


def test_parse_relations_groups_and_str() -> None:
    groups = parse_relations("libc6 (>= 2.34), mawk | awk,  , debconf (>= 0.5) | debconf-2.0")
    assert [[str(r) for r in g] for g in groups] == [
        ["libc6 (>= 2.34)"],
        ["mawk", "awk"],
        ["debconf (>= 0.5)", "debconf-2.0"],
    ]
    assert str(Relation("perl", None, None, "any")) == "perl:any"
