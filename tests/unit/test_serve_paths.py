"""``linuxkit serve``'s confinement (linuxkit.serve.paths): request targets decoded into segments, and
paths resolved on a real directory tree with symbolic links in and out of it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linuxkit.serve.paths import Refused, confine, inside, kind, open_file, request_parts


@pytest.mark.parametrize(
    ("target", "parts"),
    [
        ("/", []),
        ("/a/b", ["a", "b"]),
        ("//a///b/", ["a", "b"]),
        ("/./a/./b", ["a", "b"]),
        ("/a%20b?x=/../..#f", ["a b"]),
        ("/a%3Fb", ["a?b"]),
        ("/a%2Fb", ["a", "b"]),  # an encoded slash separates too
        ("http://host:8080/a/b?q", ["a", "b"]),  # absolute form
        ("/%ff", [os.fsdecode(b"\xff")]),  # any byte: file names need not be UTF-8
    ],
)
def test_request_parts(target: str, parts: list[str]) -> None:
    assert request_parts(target) == parts


@pytest.mark.parametrize("target", ["/..", "/a/../b", "/%2e%2e/x", "/a/..%2F..%2Fx", "/a%00", "*", "a/b", ""])
def test_bad_targets(target: str) -> None:
    with pytest.raises(Refused) as err:
        request_parts(target)
    assert err.value.status == 400


def test_inside() -> None:
    assert inside("/srv/d", "/srv/d") and inside("/srv/d", "/srv/d/x")
    assert not inside("/srv/d", "/srv/dx") and not inside("/srv/d", "/srv")
    assert inside("/", "/etc")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "d").mkdir(parents=True)
    (r / "f").write_text("f")
    (tmp_path / "out").write_text("outside")
    (r / "up").symlink_to("..")
    (r / "d" / "chain1").symlink_to("../chain2")
    (r / "chain2").symlink_to("../out")  # a chain of links whose end is outside
    (r / "d" / "loop").symlink_to("loop")
    (r / "abs-in").symlink_to(r / "f")
    return r.resolve()


def test_links(root: Path) -> None:
    assert confine(str(root), ["abs-in"]) == str(root / "f")
    for parts in (["up"], ["up", "out"], ["d", "chain1"], ["chain2"]):
        with pytest.raises(Refused) as err:
            confine(str(root), parts)
        assert err.value.status == 403
    assert kind(confine(str(root), ["nothing"])) == "missing"
    with pytest.raises(Refused):
        kind(confine(str(root), ["d", "loop"]))  # ELOOP: refused, not a crash


def test_open_file_refuses_a_file_outside(root: Path) -> None:
    fd, st = open_file(str(root), str(root / "f"))
    os.close(fd)
    assert st.st_size == 1
    with pytest.raises(Refused):
        open_file(str(root / "d"), str(root / "f"))  # opened, found outside the given root, closed
    with pytest.raises(Refused) as err:
        open_file(str(root), str(root / "d"))
    assert err.value.status == 403


SEGMENT = st.sampled_from(["..", ".", "", "%2e%2e", "%2E.", "..%2f", "%2f", "up", "d", "chain1", "f", "%00", "x"])


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=300)
@given(st.lists(SEGMENT, max_size=6))
def test_no_target_resolves_outside(root: Path, segments: list[str]) -> None:
    target = "/" + "/".join(segments)
    try:
        path = confine(str(root), request_parts(target))
    except Refused:
        return
    assert inside(str(root), path)
