"""MBR and GPT partition tables written straight into a disk image file (no sfdisk/sgdisk needed).

Only what our disk formats need: one or more primary partitions, sizes in 512-byte sectors,
GUIDs derived from a seed so the same inputs give the same bytes.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

SECTOR = 512
MIB = 1024 * 1024
#: First partition starts at 1 MiB, as every modern partitioner does.
FIRST_LBA = MIB // SECTOR
#: A GPT entry array of 128 entries × 128 bytes = 32 sectors.
GPT_ENTRIES = 128
GPT_ENTRY_SIZE = 128
GPT_ARRAY_SECTORS = GPT_ENTRIES * GPT_ENTRY_SIZE // SECTOR

MBR_FAT32_LBA = 0x0C
MBR_PROTECTIVE = 0xEE
ESP_TYPE = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
LINUX_DATA_TYPE = uuid.UUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4")


@dataclass(frozen=True)
class Partition:
    """One partition: first sector and sector count; ``mbr_type`` or ``gpt_type`` by table kind."""

    start: int
    sectors: int
    mbr_type: int = MBR_FAT32_LBA
    gpt_type: uuid.UUID = ESP_TYPE
    bootable: bool = False
    name: str = ""

    @property
    def end(self) -> int:
        """Last sector (inclusive)."""
        return self.start + self.sectors - 1


def seeded_guid(seed: str, what: str) -> uuid.UUID:
    """A random-looking (version 4 layout) GUID derived from ``seed`` and ``what``."""
    digest = hashlib.sha256(f"{seed}\0{what}".encode()).digest()[:16]
    return uuid.UUID(bytes=digest, version=4)


def disk_id(seed: str) -> int:
    """A 32-bit MBR disk signature derived from ``seed`` (never 0, which means 'none')."""
    value = int.from_bytes(hashlib.sha256(f"{seed}\0mbr".encode()).digest()[:4], "little")
    return value or 1


def _chs(lba: int) -> bytes:
    """CHS address for the MBR with the usual 255 heads × 63 sectors geometry (saturating past 1023 cylinders)."""
    heads, per_track = 255, 63
    cyl = lba // (heads * per_track)
    if cyl > 1023:
        return b"\xfe\xff\xff"
    head = (lba // per_track) % heads
    sector = lba % per_track + 1
    return bytes((head, sector | ((cyl >> 2) & 0xC0), cyl & 0xFF))


def _mbr_entry(status: int, ptype: int, start: int, sectors: int) -> bytes:
    return (
        bytes((status,))
        + _chs(start)
        + bytes((ptype,))
        + _chs(start + sectors - 1)
        + struct.pack("<II", start, min(sectors, 0xFFFFFFFF))
    )


def mbr_sector(partitions: list[Partition], signature: int, boot_code: bytes = b"") -> bytes:
    """The 512-byte MBR: up to 440 bytes of boot code, disk signature, four entries, 0x55AA."""
    if len(partitions) > 4:
        raise ValueError("an MBR holds at most four primary partitions")
    if len(boot_code) > 440:
        raise ValueError(f"MBR boot code is {len(boot_code)} bytes, more than 440")
    entries = b"".join(_mbr_entry(0x80 if p.bootable else 0, p.mbr_type, p.start, p.sectors) for p in partitions)
    entries = entries.ljust(64, b"\0")
    return boot_code.ljust(440, b"\0") + struct.pack("<IH", signature, 0) + entries + b"\x55\xaa"


def protective_mbr(total_sectors: int, boot_code: bytes = b"") -> bytes:
    """The GPT protective MBR: one 0xEE entry covering the disk (capped at 2 TiB)."""
    entry = _mbr_entry(0, MBR_PROTECTIVE, 1, min(total_sectors - 1, 0xFFFFFFFF))
    return boot_code.ljust(440, b"\0") + b"\0" * 6 + entry + b"\0" * 48 + b"\x55\xaa"


def gpt_entries(partitions: list[Partition], seed: str) -> bytes:
    """The 16 KiB partition entry array."""
    out = bytearray()
    for index, p in enumerate(partitions):
        name = p.name.encode("utf-16-le")[:72].ljust(72, b"\0")
        out += p.gpt_type.bytes_le + seeded_guid(seed, f"part{index}").bytes_le
        out += struct.pack("<QQQ", p.start, p.end, 0) + name
    return bytes(out.ljust(GPT_ENTRIES * GPT_ENTRY_SIZE, b"\0"))


def gpt_header(total_sectors: int, seed: str, array: bytes, *, backup: bool) -> bytes:
    """A GPT header sector (primary at LBA 1 or backup at the last LBA) with both CRCs."""
    last = total_sectors - 1
    first_usable = 2 + GPT_ARRAY_SECTORS
    last_usable = last - 1 - GPT_ARRAY_SECTORS
    my_lba, alt_lba = (last, 1) if backup else (1, last)
    array_lba = last - GPT_ARRAY_SECTORS if backup else 2
    fields = struct.pack(
        "<8sIIIIQQQQ16sQIII",
        b"EFI PART",
        0x00010000,
        92,
        0,  # header CRC, filled below
        0,
        my_lba,
        alt_lba,
        first_usable,
        last_usable,
        seeded_guid(seed, "disk").bytes_le,
        array_lba,
        GPT_ENTRIES,
        GPT_ENTRY_SIZE,
        zlib.crc32(array),
    )
    crc = zlib.crc32(fields)
    fields = fields[:16] + struct.pack("<I", crc) + fields[20:]
    return fields.ljust(SECTOR, b"\0")


def gpt_usable(total_sectors: int) -> tuple[int, int]:
    """First and last sector a partition may use on a GPT disk of ``total_sectors``."""
    return 2 + GPT_ARRAY_SECTORS, total_sectors - 2 - GPT_ARRAY_SECTORS


def _check_fits(partitions: list[Partition], first: int, last: int) -> None:
    previous_end = first - 1
    for p in sorted(partitions, key=lambda q: q.start):
        if p.sectors <= 0 or p.start <= previous_end or p.end > last:
            raise ValueError(f"partition {p} does not fit between sectors {first} and {last} or overlaps")
        previous_end = p.end


def write_mbr(fh: BinaryIO, partitions: list[Partition], *, seed: str, boot_code: bytes = b"") -> None:
    """Write an MBR partition table at the start of the open image ``fh``."""
    total = fh.seek(0, 2) // SECTOR
    _check_fits(partitions, 1, total - 1)
    fh.seek(0)
    fh.write(mbr_sector(partitions, disk_id(seed), boot_code))


def write_gpt(fh: BinaryIO, partitions: list[Partition], *, seed: str, boot_code: bytes = b"") -> None:
    """Write a protective MBR, the primary and the backup GPT into the open image ``fh``."""
    size = fh.seek(0, 2)
    if size % SECTOR:
        raise ValueError(f"disk image size {size} is not a multiple of {SECTOR}")
    total = size // SECTOR
    first, last = gpt_usable(total)
    _check_fits(partitions, first, last)
    array = gpt_entries(partitions, seed)
    fh.seek(0)
    fh.write(protective_mbr(total, boot_code))
    fh.write(gpt_header(total, seed, array, backup=False))
    fh.write(array)
    fh.seek((total - 1 - GPT_ARRAY_SECTORS) * SECTOR)
    fh.write(array)
    fh.write(gpt_header(total, seed, array, backup=True))


def create_sparse(path: Path, size: int) -> None:
    """Create (or truncate) ``path`` as a sparse file of ``size`` bytes."""
    with open(path, "wb") as fh:
        fh.truncate(size)
