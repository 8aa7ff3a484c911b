"""MBR/GPT writer: field layout, CRCs, seeded GUIDs; checked against sfdisk and sgdisk when present."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import uuid
import zlib
from pathlib import Path

import pytest

from linuxkit.formats.partition import (
    ESP_TYPE,
    GPT_ARRAY_SECTORS,
    MIB,
    SECTOR,
    Partition,
    create_sparse,
    disk_id,
    gpt_usable,
    seeded_guid,
    write_gpt,
    write_mbr,
)


def _disk(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "disk.img"
    create_sparse(path, size)
    return path


def test_mbr_fields(tmp_path: Path) -> None:
    img = _disk(tmp_path, 64 * MIB)
    code = bytes(range(200))
    with open(img, "r+b") as fh:
        write_mbr(fh, [Partition(2048, 129024, bootable=True)], seed="s", boot_code=code)
    sector = img.read_bytes()[:SECTOR]
    assert sector[:200] == code and sector[200:440] == bytes(240)
    assert sector[510:] == b"\x55\xaa"
    assert struct.unpack_from("<I", sector, 440)[0] == disk_id("s")
    status, ptype = sector[446], sector[450]
    start, count = struct.unpack_from("<II", sector, 454)
    assert (status, ptype, start, count) == (0x80, 0x0C, 2048, 129024)
    assert sector[462:510] == bytes(48)


def test_mbr_rejects_partition_past_end(tmp_path: Path) -> None:
    img = _disk(tmp_path, 8 * MIB)
    with open(img, "r+b") as fh, pytest.raises(ValueError):
        write_mbr(fh, [Partition(2048, 16384)], seed="s")


def test_gpt_headers_and_crcs(tmp_path: Path) -> None:
    size = 64 * MIB
    img = _disk(tmp_path, size)
    total = size // SECTOR
    with open(img, "r+b") as fh:
        write_gpt(fh, [Partition(2048, 126976, gpt_type=ESP_TYPE, name="EFI System")], seed="seed")
    data = img.read_bytes()
    # Protective MBR.
    assert data[450] == 0xEE and struct.unpack_from("<II", data, 454) == (1, total - 1)
    for header_lba, array_lba in ((1, 2), (total - 1, total - 1 - GPT_ARRAY_SECTORS)):
        hdr = data[header_lba * SECTOR : header_lba * SECTOR + 92]
        assert hdr[:8] == b"EFI PART"
        crc = struct.unpack_from("<I", hdr, 16)[0]
        assert zlib.crc32(hdr[:16] + bytes(4) + hdr[20:]) == crc
        my_lba, alt_lba, first, last = struct.unpack_from("<QQQQ", hdr, 24)
        assert my_lba == header_lba and alt_lba == (total - 1 if header_lba == 1 else 1)
        assert (first, last) == gpt_usable(total)
        assert struct.unpack_from("<Q", hdr, 72)[0] == array_lba
        array = data[array_lba * SECTOR : (array_lba + GPT_ARRAY_SECTORS) * SECTOR]
        assert zlib.crc32(array) == struct.unpack_from("<I", hdr, 88)[0]
        assert uuid.UUID(bytes_le=array[:16]) == ESP_TYPE
        assert struct.unpack_from("<QQ", array, 32) == (2048, 2048 + 126976 - 1)
        assert array[56:76].decode("utf-16-le") == "EFI System"
        assert uuid.UUID(bytes_le=hdr[56:72]) == seeded_guid("seed", "disk")


def test_gpt_is_deterministic_and_seeded(tmp_path: Path) -> None:
    images = []
    for i, seed in enumerate(("a", "a", "b")):
        img = tmp_path / f"{i}.img"
        create_sparse(img, 8 * MIB)
        with open(img, "r+b") as fh:
            write_gpt(fh, [Partition(2048, 8192)], seed=seed)
        images.append(img.read_bytes())
    assert images[0] == images[1]
    assert images[0] != images[2]


def test_seeded_guid_is_version4_and_stable() -> None:
    g = seeded_guid("x", "disk")
    assert g.version == 4 and g == seeded_guid("x", "disk") and g != seeded_guid("x", "part0")


def test_gpt_rejects_overlap(tmp_path: Path) -> None:
    img = _disk(tmp_path, 16 * MIB)
    with open(img, "r+b") as fh, pytest.raises(ValueError):
        write_gpt(fh, [Partition(2048, 4096), Partition(4096, 100)], seed="s")
    total = 16 * MIB // SECTOR
    with open(img, "r+b") as fh, pytest.raises(ValueError):
        write_gpt(fh, [Partition(2048, total - 2048)], seed="s")  # runs into the backup GPT


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("sfdisk") is None, reason="sfdisk (fdisk) not installed")
def test_sfdisk_reads_our_mbr(tmp_path: Path) -> None:
    img = _disk(tmp_path, 32 * MIB)
    with open(img, "r+b") as fh:
        write_mbr(fh, [Partition(2048, 30720, bootable=True), Partition(32768, 30720, mbr_type=0x83)], seed="s")
    table = json.loads(subprocess.run(["sfdisk", "-J", img], capture_output=True, check=True).stdout)
    pt = table["partitiontable"]
    assert pt["label"] == "dos" and pt["id"] == f"0x{disk_id('s'):08x}"
    parts = [(p["start"], p["size"], p["type"], p.get("bootable", False)) for p in pt["partitions"]]
    assert parts == [(2048, 30720, "c", True), (32768, 30720, "83", False)]


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("sgdisk") is None, reason="sgdisk (gdisk) not installed")
def test_sgdisk_verifies_our_gpt(tmp_path: Path) -> None:
    img = _disk(tmp_path, 64 * MIB)
    with open(img, "r+b") as fh:
        write_gpt(fh, [Partition(2048, 126976, gpt_type=ESP_TYPE, name="EFI System")], seed="s")
    verify = subprocess.run(["sgdisk", "-v", img], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "No problems found" in verify.stdout
    info = subprocess.run(["sgdisk", "-i", "1", img], capture_output=True, text=True, check=True).stdout
    assert "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" in info
    assert str(seeded_guid("s", "part0")).upper() in info
    assert "First sector: 2048" in info and "Last sector: 129023" in info
    table = json.loads(subprocess.run(["sfdisk", "-J", img], capture_output=True, check=True).stdout)
    assert table["partitiontable"]["id"].upper() == str(seeded_guid("s", "disk")).upper()
