"""Flattening layers: upstream's order and whiteouts, opaque whiteouts, hard links, path safety."""

from __future__ import annotations

import io
import posixpath
import tarfile

from hypothesis import given, settings
from hypothesis import strategies as st
from rootfs_fakes import FakeSource, Item, directory, file, hardlink, layer, opaque, symlink, whiteout

from linuxkit.gocompat.path import go_clean
from linuxkit.rootfs.flatten import flatten, safe_relative, write_flattened


def _flat(*layers: bytes) -> list[tarfile.TarInfo]:
    out = io.BytesIO()
    write_flattened(FakeSource("x", list(layers)), out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        return tar.getmembers()


def _contents(*layers: bytes) -> dict[str, tuple[str, str]]:
    out = io.BytesIO()
    write_flattened(FakeSource("x", list(layers)), out)
    out.seek(0)
    result: dict[str, tuple[str, str]] = {}
    with tarfile.open(fileobj=out) as tar:
        for m in tar.getmembers():
            if m.isreg():
                handle = tar.extractfile(m)
                assert handle is not None
                result[m.name] = ("f", handle.read().decode())
            elif m.isdir():
                result[m.name] = ("d", "")
            elif m.issym():
                result[m.name] = ("l", m.linkname)
            elif m.islnk():
                result[m.name] = ("h", m.linkname)
    return result


def test_order_is_top_layer_first_first_occurrence_wins() -> None:
    low = layer(directory("./etc/"), file("etc/a", "low"), file("etc/b", "low"))
    high = layer(file("etc/a", "high"), file("./c", "c"))
    assert [m.name for m in _flat(low, high)] == ["etc/a", "c", "etc", "etc/b"]
    assert _contents(low, high)["etc/a"] == ("f", "high")


def test_whiteouts_of_files_and_directories() -> None:
    low = layer(directory("d"), file("d/x", "x"), file("f", "f"), file("keep", "k"))
    high = layer(whiteout("d"), whiteout("f"))
    assert _contents(low, high) == {"keep": ("f", "k")}


def test_opaque_whiteout_hides_lower_children_only() -> None:
    low = layer(directory("d"), file("d/old", "o"), file("d2", "x"))
    high = layer(directory("d"), opaque("d"), file("d/new", "n"))
    assert _contents(low, high) == {"d": ("d", ""), "d/new": ("f", "n"), "d2": ("f", "x")}


def test_file_over_directory_hides_children() -> None:
    low = layer(directory("d"), file("d/x", "x"))
    high = layer(file("d", "now a file"))
    assert _contents(low, high) == {"d": ("f", "now a file")}


def test_hardlink_in_same_layer_is_kept_byte_for_byte() -> None:
    members = _flat(layer(file("bin/busybox", "bb"), hardlink("bin/sh", "./bin/busybox")))
    assert members[1].islnk() and members[1].linkname == "./bin/busybox"


def test_hardlink_to_whited_out_file_becomes_a_copy() -> None:
    low = layer(file("a", "content"), hardlink("b", "a"))
    high = layer(whiteout("a"))
    assert _contents(low, high) == {"b": ("f", "content")}


def test_hardlink_to_file_replaced_above_keeps_old_content() -> None:
    low = layer(file("a", "old"), hardlink("b", "a"))
    high = layer(file("a", "new"))
    assert _contents(low, high) == {"a": ("f", "new"), "b": ("f", "old")}


def test_hardlink_to_lower_layer_and_chains() -> None:
    low = layer(file("a", "A"), hardlink("a2", "a"))
    high = layer(hardlink("b", "a2"))
    got = _contents(low, high)
    assert got["b"] == ("f", "A") and got["a2"] == ("h", "a")


def test_dangling_and_escaping_hardlinks_are_dropped() -> None:
    assert _contents(layer(hardlink("b", "missing"), hardlink("c", "../../etc/passwd"))) == {}


def test_absolute_names_made_relative_and_escapes_dropped() -> None:
    got = _contents(layer(file("/abs", "a"), file("../up", "u"), file("a/../../up2", "u"), file("ok/../fine", "f")))
    assert got == {"abs": ("f", "a"), "fine": ("f", "f")}


def test_nothing_below_a_symlink() -> None:
    same_layer = layer(symlink("lib", "/etc"), file("lib/passwd", "x"))
    assert _contents(same_layer) == {"lib": ("l", "/etc")}
    child_first = layer(file("lib/passwd", "x"), symlink("lib", "/etc"))
    assert _contents(child_first) == {"lib/passwd": ("f", "x")}
    lower_link = layer(symlink("lib", "/etc"))
    upper_child = layer(file("lib/passwd", "x"))
    assert _contents(lower_link, upper_child) == {"lib/passwd": ("f", "x")}


def test_flatten_reopens_layers_only_for_copies() -> None:
    source = FakeSource("x", [layer(file("a", "A")), layer(file("b", "B"))])
    assert [e.header.name for e in flatten(source)] == ["b", "a"]
    assert source.opened == 2


def test_safe_relative() -> None:
    assert safe_relative("/a/./b/") == "a/b"
    assert safe_relative("/../x") == "x"
    assert safe_relative("a/../../x") is None
    assert safe_relative("/") == "."
    assert go_clean("//a//b/..") == "/a"


# ---------------------------------------------------------------- properties

_SEG = st.sampled_from(["a", "b", "c"])
_PATH = st.lists(_SEG, min_size=1, max_size=3).map("/".join)


@st.composite
def _layer_model(draw: st.DrawFn) -> list[tuple[str, str, str]]:
    """One layer as (kind, path, payload): a consistent tree plus whiteouts and opaque markers."""
    entries: dict[str, tuple[str, str]] = {}
    for path in draw(st.lists(_PATH, max_size=6, unique=True)):
        if any(a in entries and entries[a][0] != "d" for a in _ancestors(path)):
            continue
        if any(p.startswith(path + "/") for p in entries):
            kind = "d"
        else:
            kind = draw(st.sampled_from(["f", "d", "l", "w", "o"]))
        if kind in ("w", "o") and any(a not in entries for a in _ancestors(path)):
            kind = "f"
        entries[path] = (kind, draw(st.sampled_from(["1", "2", "3"])))
    out = []
    for path, (kind, payload) in entries.items():
        out.append((kind, path, payload))
    return out


def _ancestors(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _items(model: list[tuple[str, str, str]]) -> list[Item]:
    items = []
    for kind, path, payload in model:
        if kind == "f":
            items.append(file(path, payload))
        elif kind == "d":
            items.append(directory(path))
        elif kind == "l":
            items.append(symlink(path, payload))
        elif kind == "w":
            items.append(whiteout(path))
        else:
            items.append(directory(path))
            items.append(opaque(path))
    return items


def _apply(layers: list[list[tuple[str, str, str]]]) -> dict[str, tuple[str, str]]:
    """The filesystem after applying ``layers`` bottom to top (overlayfs semantics)."""
    fs: dict[str, tuple[str, str]] = {}

    def drop_below(path: str) -> None:
        for p in [p for p in fs if p.startswith(path + "/")]:
            del fs[p]

    for model in layers:
        for kind, path, _ in model:
            if kind == "w":
                fs.pop(path, None)
                drop_below(path)
            elif kind == "o":
                drop_below(path)
        for kind, path, payload in model:
            if kind == "w":
                continue
            for a in _ancestors(path):
                if a in fs and fs[a][0] != "d":
                    del fs[a]
            if kind in ("f", "l"):
                drop_below(path)
                fs[path] = ("f", payload) if kind == "f" else ("l", payload)
            else:
                fs[path] = ("d", "")
    return fs


@settings(max_examples=200, deadline=None)
@given(st.lists(_layer_model(), min_size=1, max_size=4))
def test_flatten_equals_applying_layers(layers: list[list[tuple[str, str, str]]]) -> None:
    raws = [layer(*_items(model)) for model in layers]
    assert _contents(*raws) == _apply(layers)


_NASTY = st.lists(st.sampled_from(["a", "b", "..", ".", ""]), min_size=1, max_size=4).map("/".join)


@st.composite
def _nasty_item(draw: st.DrawFn) -> Item:
    name = draw(st.sampled_from(["", "/"])) + draw(_NASTY)
    if not name.strip("/") or name.endswith("/"):
        name = name.rstrip("/") + "/x"
    kind = draw(st.sampled_from(["f", "d", "l", "h"]))
    target = draw(st.sampled_from(["", "/"])) + draw(_NASTY)
    if kind == "f":
        return file(name, "x")
    if kind == "d":
        return directory(name)
    if kind == "l":
        return symlink(name, target or "x")
    return hardlink(name, target or "x")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_nasty_item(), max_size=8), min_size=1, max_size=3))
def test_no_entry_escapes(layers: list[list[Item]]) -> None:
    members = _flat(*[layer(*items) for items in layers])
    seen: dict[str, bool] = {}
    for m in members:
        name = posixpath.normpath(m.name)
        assert not name.startswith("/") and name != ".." and not name.startswith("../")
        if m.islnk():
            target = posixpath.normpath(m.linkname)
            assert seen.get(target) is False, f"hard link {m.name} -> {m.linkname} not to an earlier file"
        seen[name] = m.isdir()
    non_dirs = {posixpath.normpath(m.name) for m in members if not m.isdir()}
    for m in members:
        for a in _ancestors(posixpath.normpath(m.name)):
            assert a not in non_dirs, f"{m.name} is below non-directory {a}"
