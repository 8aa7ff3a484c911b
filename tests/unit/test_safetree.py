"""The one safe tree writer: crafted entries never reach outside the root (every rule on its own),
and a hypothesis generator of tar entry sequences checks the invariant "nothing outside the tree
changes, and everything inside is a plain file, directory or link the plan placed"."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linuxkit.errors import BuildError
from linuxkit.formats.rootimage import filtered_tar
from linuxkit.rootfs.flatten import flatten
from linuxkit.safetree import SafeTree, TreePlan, clean_name, create_file
from linuxkit.tar.header import DIR, FIFO, LINK, REG, SYMLINK, Header
from linuxkit.tar.reader import read_entries
from linuxkit.tar.writer import TarWriter, copy_data


def _hdr(name: str, kind: str = REG, link: str = "", size: int = 0, mode: int = 0o644, uid: int = 0) -> Header:
    return Header(name=name, typeflag=kind, linkname=link, size=size, mode=mode, uid=uid)


def _walk(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(dirpath) / name
            st_ = path.lstat()
            if stat.S_ISLNK(st_.st_mode):
                what = "-> " + os.readlink(path)
            elif stat.S_ISREG(st_.st_mode):
                what = path.read_bytes().decode(errors="replace")
            else:
                what = stat.filemode(st_.st_mode)[0]
            out[str(path.relative_to(root))] = what
    return out


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Path]:
    outside = tmp_path / "host"
    (outside / "dir").mkdir(parents=True)
    (outside / "file").write_text("host file")
    (outside / "dir" / "secret").write_text("secret")
    yield outside


def _write(root: Path, entries: list[tuple[Header, bytes]]) -> None:
    with SafeTree(root, 1000, source="test", owners=False, devices=False, xattrs=False) as tree:
        for hdr, data in entries:
            tree.add(hdr.copy(size=len(data)) if hdr.typeflag == REG else hdr, io.BytesIO(data))
        tree.finish()


def test_nothing_is_written_through_or_below_a_symlink(tmp_path: Path, host: Path) -> None:
    before = _walk(host)
    root = tmp_path / "root"
    _write(
        root,
        [
            (_hdr("etc", SYMLINK, str(host / "dir")), b""),
            (_hdr("etc/hosts"), b"pwned"),  # below the link: dropped
            (_hdr("f", SYMLINK, str(host / "file")), b""),
            (_hdr("f"), b"replaced"),  # replaces the link itself
            (_hdr("up", SYMLINK, "../.."), b""),
            (_hdr("up/x", DIR), b""),
            (_hdr("../escape"), b"pwned"),
            (_hdr("/abs"), b"inside"),  # made relative
        ],
    )
    assert _walk(host) == before
    assert _walk(root) == {"etc": f"-> {host / 'dir'}", "f": "replaced", "up": "-> ../..", "abs": "inside"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["host", "root"]


def test_a_later_directory_replaces_a_symlink_and_a_file_never_replaces_a_directory(tmp_path: Path, host: Path) -> None:
    root = tmp_path / "root"
    _write(
        root,
        [
            (_hdr("evil", SYMLINK, str(host / "dir")), b""),
            (_hdr("evil", DIR, mode=0o750), b""),
            (_hdr("evil/inside"), b"in"),
            (_hdr("evil"), b"a file over a directory is dropped"),
        ],
    )
    assert _walk(root) == {"evil": "d", "evil/inside": "in"}
    assert stat.S_IMODE((root / "evil").stat().st_mode) == 0o750
    assert _walk(host) == {"dir": "d", "file": "host file", "dir/secret": "secret"}


def test_hard_links_only_to_files_the_tree_placed(tmp_path: Path, host: Path) -> None:
    root = tmp_path / "root"
    _write(
        root,
        [
            (_hdr("hs", SYMLINK, str(host / "dir")), b""),
            (_hdr("leak", LINK, "hs/secret"), b""),  # through a symlink: dropped
            (_hdr("shadow", LINK, "/etc/shadow"), b""),  # dangling: dropped
            (_hdr("d", DIR), b""),
            (_hdr("dl", LINK, "d"), b""),  # to a directory: dropped
            (_hdr("a"), b"data"),
            (_hdr("b", LINK, "./a"), b""),
            (_hdr("sl", LINK, "hs"), b""),  # to the symlink itself: a second name of the link
        ],
    )
    assert _walk(root) == {"hs": f"-> {host / 'dir'}", "d": "d", "a": "data", "b": "data", "sl": f"-> {host / 'dir'}"}
    assert (root / "a").stat().st_ino == (root / "b").stat().st_ino


def test_owner_ids_beyond_what_linux_stores_are_a_build_error(tmp_path: Path) -> None:
    with SafeTree(tmp_path / "root", 0, source="img") as tree, pytest.raises(BuildError, match="has owner"):
        tree.add(_hdr("x", uid=1 << 40), io.BytesIO(b""))


def test_names_longer_than_path_max_are_a_build_error() -> None:
    with pytest.raises(BuildError, match="limit is 4096"):
        TreePlan("img").place(_hdr("a/" * 3000))


# ---------------------------------------------------------------------------- generated streams

_COMPONENTS = st.sampled_from(["a", "b", "etc", "..", ".", "", "HOST", "x"])


def _names() -> st.SearchStrategy[str]:
    return st.builds(
        lambda lead, parts: lead + "/".join(parts),
        st.sampled_from(["", "/", "./", "../"]),
        st.lists(_COMPONENTS, min_size=1, max_size=4),
    )


def _entries(host: str) -> st.SearchStrategy[list[tuple[str, str, str]]]:
    targets = st.one_of(_names(), st.sampled_from([host, host + "/dir", host + "/file", "/", "../../..", "/etc"]))
    entry = st.tuples(st.sampled_from([REG, DIR, SYMLINK, LINK, FIFO]), _names(), targets)
    return st.lists(entry, max_size=25)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_generated_streams_never_change_anything_outside(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    base = tmp_path_factory.mktemp("gen")
    host = base / "host"
    (host / "dir").mkdir(parents=True)
    (host / "file").write_text("host file")
    before = _walk(host)
    stream = data.draw(_entries(str(host)))
    entries = []
    for kind, name, target in stream:
        name = name.replace("HOST", str(host).lstrip("/"))
        hdr = _hdr(name, kind, target if kind in (SYMLINK, LINK) else "", mode=0o755 if kind == DIR else 0o644)
        entries.append((hdr, b"data" if kind == REG else b""))
    root = base / "root"
    _write(root, entries)
    assert _walk(host) == before
    assert sorted(p.name for p in base.iterdir()) == ["host", "root"]
    # inside: only what a plan can place, and every directory on the way is a real directory
    for dirpath, _dirs, files in os.walk(root):
        assert not Path(dirpath).is_symlink()
        for name in files:
            mode = (Path(dirpath) / name).lstat().st_mode
            assert stat.S_ISREG(mode) or stat.S_ISLNK(mode) or stat.S_ISFIFO(mode)


class _LayerSource:
    """One generated layer as an image (what the flattener reads)."""

    ref, digest = "generated", ""
    config: dict[str, object] = {}  # noqa: RUF012

    def __init__(self, data: bytes) -> None:
        self.data = data

    def layer_count(self) -> int:
        return 1

    def open_layer(self, index: int) -> io.BytesIO:
        return io.BytesIO(self.data)


def _layer(stream: list[tuple[str, str, str]]) -> bytes:
    kinds = {REG: tarfile.REGTYPE, DIR: tarfile.DIRTYPE, SYMLINK: tarfile.SYMTYPE, LINK: tarfile.LNKTYPE}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for kind, name, target in stream:
            info = tarfile.TarInfo(name or ".")
            info.type = kinds.get(kind, tarfile.FIFOTYPE)
            info.linkname = target if kind in (SYMLINK, LINK) else ""
            data = b"data" if kind == REG else b""
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_generated_layers_stay_inside_through_flatten_and_the_squashfs_tar(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """A generated layer, flattened, assembled into a rootfs tar and normalised for tar2sqfs: no name
    or hard-link target escapes at any step, and the normalised tar holds each path once, parents
    first, hard links only to files before them."""
    work = tmp_path_factory.mktemp("layers")
    stream = data.draw(_entries("/host"))
    rootfs = work / "rootfs.tar"
    with open(rootfs, "wb") as out:
        writer = TarWriter(out)
        for entry in flatten(_LayerSource(_layer(stream))):  # each entry's data is read before the next
            assert clean_name(entry.header.name) is not None and not entry.header.name.startswith("/")
            if entry.header.typeflag == LINK:
                assert clean_name(entry.header.linkname) is not None
            writer.write_header(entry.header)
            if entry.header.has_data:
                copy_data(writer, entry.data, entry.header.size)
        writer.close()
    _kernel, _cmdline, normal = filtered_tar(rootfs, work, 0)
    seen: dict[str, str] = {"": DIR}
    with open(normal, "rb") as src:
        for entry in read_entries(src):
            name = clean_name(entry.header.name)
            assert name is not None and name not in seen, entry.header.name
            parent = name.rpartition("/")[0]
            assert seen.get(parent) == DIR, (name, seen)
            if entry.header.typeflag == LINK:
                assert seen.get(clean_name(entry.header.linkname) or "") not in (None, DIR)
            seen[name] = entry.header.typeflag


def test_create_file_writes_nothing_through_symlinks(tmp_path: Path, host: Path) -> None:
    root = tmp_path / "stage"
    root.mkdir()
    (root / "link").symlink_to(host / "dir")
    (root / "flink").symlink_to(host / "file")
    before = _walk(host)
    for name in ("link/secret", "flink", "link/new/file", "../x", ""):
        with pytest.raises(BuildError, match="cannot write"):
            create_file(root, name).close()
    assert _walk(host) == before
    with create_file(root, "/usr/./bin//tool") as out:
        out.write(b"ok")
    assert (root / "usr" / "bin" / "tool").read_bytes() == b"ok"


def test_names_no_file_system_takes_are_dropped(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _write(root, [(_hdr("empty", SYMLINK, ""), b""), (_hdr("nul\0name"), b"x"), (_hdr("l", SYMLINK, "a\0b"), b"")])
    assert _walk(root) == {}
