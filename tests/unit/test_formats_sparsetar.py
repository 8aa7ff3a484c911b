"""The old-GNU sparse tar writer used by ``gcp``: read back by Python's tarfile and GNU tar."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from linuxkit.formats.sparsetar import BLOCK, data_extents, gnu_number, sparse_headers, write_sparse_tar


def _sparse_file(path: Path, size: int, chunks: list[int]) -> Path:
    with open(path, "wb") as fh:
        fh.truncate(size)
        for i, offset in enumerate(chunks):
            fh.seek(offset)
            fh.write(bytes([i + 1]) * (3000 + i))
    return path


def _sha(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def test_gnu_number_octal_and_base256() -> None:
    assert gnu_number(0o644, 8) == b"0000644\0"
    assert gnu_number(1 << 30, 12) == b"10000000000\0"
    big = gnu_number(1 << 40, 12)
    assert big[0] == 0x80 and int.from_bytes(big[1:], "big") == 1 << 40


def test_headers_checksum_and_extension_blocks() -> None:
    extents = [(i * 8192, 4096) for i in range(10)]
    blob = sparse_headers("disk.raw", 1 << 20, extents, 1700000000)
    # 10 data extents + the closing empty one: 4 in the header, 7 in one extension block
    assert len(blob) == 2 * BLOCK and blob[482] == 1 and blob[BLOCK + 504] == 0
    hdr = bytearray(blob[:BLOCK])
    stored = int(hdr[148:154], 8)
    hdr[148:156] = b" " * 8
    assert stored == sum(hdr) and blob[156:157] == b"S" and blob[257:265] == b"ustar  \0"
    assert int(blob[124:135], 8) == 10 * 4096  # only the data is stored


@pytest.mark.parametrize("chunks", [[], [0], [5 << 20, 9 << 20], [i << 20 for i in range(0, 30, 3)]])
def test_round_trip_through_tarfile_and_gnu_tar(tmp_path: Path, chunks: list[int]) -> None:
    size = 32 << 20
    src = _sparse_file(tmp_path / "disk.raw", size, chunks)
    with open(src, "rb") as fh:
        extents = data_extents(fh, size)
    assert sum(n for _, n in extents) < size or not chunks  # holes are found (tmpfs/ext4 report them)
    out = io.BytesIO()
    write_sparse_tar(out, src, "disk.raw", 1700000000)
    assert len(out.getvalue()) < (1 << 20) + 20 * BLOCK
    archive = tmp_path / "o.tar"
    archive.write_bytes(out.getvalue())
    with tarfile.open(archive) as tf:
        (member,) = tf.getmembers()
        assert (member.name, member.size, member.mtime, member.uid, member.uname) == (
            "disk.raw",
            size,
            1700000000,
            0,
            "",
        )
        tf.extract(member, tmp_path / "py", filter="data")
    assert _sha(tmp_path / "py" / "disk.raw") == _sha(src)
    if shutil.which("tar"):
        (tmp_path / "gnu").mkdir()
        subprocess.run(["tar", "-xSf", archive, "-C", tmp_path / "gnu"], check=True)
        assert _sha(tmp_path / "gnu" / "disk.raw") == _sha(src)
        assert os.stat(tmp_path / "gnu" / "disk.raw").st_blocks * 512 < size or not chunks
