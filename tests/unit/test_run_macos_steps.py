"""The in-process steps the macOS backends' plans call (linuxkit.run.macos), run for real on files: raw disks
created and grown as the hyperkit library does, kernel decompression, waiting for a program's sockets."""

from __future__ import annotations

import gzip
import socket
from pathlib import Path

import pytest

from linuxkit.errors import UserError
from linuxkit.run import macos

MIB = 1024 * 1024


def test_raw_disk_is_created_sparse_and_grown_in_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    disk = tmp_path / "disk.raw"
    sizes: list[int] = []
    real_truncate = macos.os.truncate

    def truncate(path: str, size: int) -> None:
        sizes.append(size // MIB)
        real_truncate(path, size)

    monkeypatch.setattr(macos.os, "truncate", truncate)
    macos.ensure_raw_disk({"path": str(disk), "size_mb": 2500, "step_mb": 1000})
    assert sizes == [1000, 2000, 2500]  # RawDisk.resize: 1000 MiB at a time (APFS)
    assert disk.stat().st_size == 2500 * MIB and disk.stat().st_blocks == 0
    sizes.clear()
    macos.ensure_raw_disk({"path": str(disk), "size_mb": 3000, "step_mb": 1000})  # a bigger size: grown
    assert sizes == [3000] and disk.stat().st_size == 3000 * MIB
    sizes.clear()
    macos.ensure_raw_disk({"path": str(disk), "size_mb": 100, "step_mb": 1000})  # never shrunk
    assert sizes == [] and disk.stat().st_size == 3000 * MIB


def test_gunzip_writes_the_kernel_or_says_why_not(tmp_path: Path) -> None:
    (tmp_path / "k.gz").write_bytes(gzip.compress(b"Image" * 1000))
    macos.gunzip({"src": str(tmp_path / "k.gz"), "dst": str(tmp_path / "k")})
    assert (tmp_path / "k").read_bytes() == b"Image" * 1000
    assert macos.is_gzip(str(tmp_path / "k.gz")) and not macos.is_gzip(str(tmp_path / "k"))
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"Image" * 1000)[:40])
    with pytest.raises(UserError, match="unable to decompress kernel file"):
        macos.gunzip({"src": str(tmp_path / "bad.gz"), "dst": str(tmp_path / "bad")})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.gz", "k", "k.gz"]  # no temporary file left


def test_sockets_are_waited_for_then_a_timeout_names_the_missing_one(tmp_path: Path) -> None:
    bound = tmp_path / "eth.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(bound))
        macos.wait_for_sockets({"paths": [str(bound)], "timeout": 1})
        macos.remove_sockets({"paths": [str(bound), str(tmp_path / "absent.sock")]})
    assert not bound.exists()
    with pytest.raises(UserError, match=r"absent\.sock did not appear within 0 s"):
        macos.wait_for_sockets({"paths": [str(tmp_path / "absent.sock")], "timeout": 0})


def test_user_data_rules() -> None:
    assert macos.user_data("", "") is None
    assert macos.user_data("hello", "") == b"hello"
    with pytest.raises(UserError, match="cannot read user data from path /nonexistent"):
        macos.user_data("", "/nonexistent")
