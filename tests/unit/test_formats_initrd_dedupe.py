"""The initrd stores a regular file's data once: equal files (content, mode, owner, mtime) of 64 KiB-16 MiB
become hard links that the kernel's unpacker and GNU cpio both make; everything else is as before."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from linuxkit.errors import BuildError
from linuxkit.formats.initrd import InitrdSplitter, _Dedupe
from linuxkit.tar.header import REG, Header

BIG = bytes(range(256)) * 400  # 100 KiB
OTHER = bytes(reversed(range(256))) * 400
SMALL = b"s" * 4096


def split(entries: list[tuple[str, bytes, int, int]], tmp_path: Path, chunk: int = 30000) -> bytes:
    """The decompressed cpio of ENTRIES (name, data, mode, mtime), data written in CHUNK-byte pieces."""
    out = io.BytesIO()
    with InitrdSplitter(out, tmp_path) as splitter:
        for name, data, mode, mtime in entries:
            splitter.write_header(Header(name=name, typeflag=REG, mode=mode, size=len(data), mtime=(mtime, 0)))
            for i in range(0, len(data), chunk):
                splitter.write(data[i : i + chunk])
        splitter.close()
    return gzip.decompress(out.getvalue())


def parse(cpio: bytes) -> dict[str, tuple[int, int, bytes]]:
    """name → (inode, nlink, data) of each newc entry."""
    found: dict[str, tuple[int, int, bytes]] = {}
    pos = 0
    while True:
        fields = [int(cpio[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        namesize, size = fields[11], fields[6]
        name = cpio[pos + 110 : pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        if name == "TRAILER!!!":
            return found
        found[name] = (fields[0], fields[4], cpio[pos : pos + size])
        pos += size + (-size % 4)


def test_equal_files_are_stored_once_as_hard_links(tmp_path: Path) -> None:
    cpio = split(
        [
            ("a/busybox", BIG, 0o755, 0),
            ("b/busybox", BIG, 0o755, 0),
            ("c/other", OTHER, 0o755, 0),
            ("d/busybox-mode", BIG, 0o644, 0),  # another mode: its own inode
            ("e/busybox-mtime", BIG, 0o755, 5),  # another mtime: its own inode
            ("f/small", SMALL, 0o644, 0),
            ("g/small", SMALL, 0o644, 0),  # below the threshold: not worth a hash
            ("h/busybox", BIG, 0o755, 0),
        ],
        tmp_path,
    )
    entries = parse(cpio)
    ino_a, nlink_a, data_a = entries["a/busybox"]
    assert (nlink_a, data_a) == (2, BIG)
    for later in ("b/busybox", "h/busybox"):
        assert entries[later] == (ino_a, 2, b"")
    assert entries["c/other"][2] == OTHER
    assert entries["d/busybox-mode"][0] != ino_a and entries["d/busybox-mode"][2] == BIG
    assert entries["e/busybox-mtime"][0] != ino_a and entries["e/busybox-mtime"][2] == BIG
    assert entries["f/small"][1:] == (1, SMALL) and entries["g/small"][1:] == (1, SMALL)
    assert len({e[0] for name, e in entries.items() if name not in ("b/busybox", "h/busybox")}) == 6
    # the same bytes however the data arrives
    pair = [("a/busybox", BIG, 0o755, 0), ("b/busybox", BIG, 0o755, 0)]
    assert split(pair, tmp_path, 7) == split(pair, tmp_path, 65536)


@pytest.mark.skipif(shutil.which("cpio") is None, reason="GNU cpio (Debian package cpio) is not installed")
def test_gnu_cpio_extracts_the_links_with_their_data(tmp_path: Path) -> None:
    cpio = split([("a/busybox", BIG, 0o755, 0), ("b/busybox", BIG, 0o755, 0), ("c/x", OTHER, 0o644, 0)], tmp_path)
    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet"], input=cpio, cwd=dest, check=True)
    assert (dest / "b/busybox").read_bytes() == BIG == (dest / "a/busybox").read_bytes()
    assert os.path.samefile(dest / "a/busybox", dest / "b/busybox")
    assert (dest / "c/x").read_bytes() == OTHER


def test_files_above_the_limit_pass_through_unheld(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_Dedupe, "MAX", 80 << 10)
    entries = parse(split([("a/big", BIG, 0o755, 0), ("b/big", BIG, 0o755, 0)], tmp_path))
    assert entries["a/big"][1:] == (1, BIG) and entries["b/big"][1:] == (1, BIG)


def test_held_entries_still_check_their_length(tmp_path: Path) -> None:
    out = io.BytesIO()
    with InitrdSplitter(out, tmp_path) as splitter:
        splitter.write_header(Header(name="a", typeflag=REG, mode=0o644, size=len(BIG), mtime=(0, 0)))
        with pytest.raises(BuildError, match="longer"):
            splitter.write(BIG + b"x")
    with InitrdSplitter(io.BytesIO(), tmp_path) as splitter:
        splitter.write_header(Header(name="a", typeflag=REG, mode=0o644, size=len(BIG), mtime=(0, 0)))
        splitter.write(BIG[:-1])
        with pytest.raises(BuildError, match="missing 1 bytes"):
            splitter.close()
