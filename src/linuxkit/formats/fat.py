"""FAT file systems written inside an image file at an offset: ``mkfs.vfat --invariant`` plus mtools.

No mount, no root. mtools takes every timestamp from ``SOURCE_DATE_EPOCH`` (in ``TZ=UTC``), so the
same inputs give the same bytes. FAT cannot store times before 1980: earlier epochs are clamped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import runner
from ..errors import BuildError
from .partition import MIB, SECTOR

#: 1980-01-01T00:00:00Z, the first time a FAT directory entry can hold.
FAT_EPOCH_MIN = 315532800
#: FAT32 needs at least 65525 clusters; with 512-byte clusters that is ~33 MiB (plus FATs): keep a margin.
FAT32_MIN_BYTES = 40 * MIB
FAT_MAX_FILE = 1 << 32


@dataclass(frozen=True)
class FatFile:
    """A host file ``source`` to store as ``dest`` (``/``-separated path inside the FAT)."""

    dest: str
    source: Path


def tool_env(epoch: int) -> dict[str, str]:
    """Environment for mtools and syslinux: a fixed clock in UTC."""
    return {"SOURCE_DATE_EPOCH": str(max(epoch, FAT_EPOCH_MIN)), "TZ": "UTC", "MTOOLS_SKIP_CHECK": "1"}


def volume_id(seed: str) -> str:
    """An 8-hex-digit FAT volume serial derived from ``seed``."""
    return hashlib.sha256(f"{seed}\0fat".encode()).hexdigest()[:8]


def fat_overhead(nfiles: int, size_bytes: int) -> int:
    """Bytes a FAT32 of ``size_bytes`` spends on reserved sectors, two FATs and cluster slack for ``nfiles``."""
    clusters = size_bytes // SECTOR
    return 32 * SECTOR + 2 * 4 * clusters + nfiles * 4096 + MIB


def make_fat(
    image: Path,
    *,
    offset: int,
    size: int,
    files: Sequence[FatFile],
    label: str,
    seed: str,
    epoch: int,
    fat32: bool = True,
) -> None:
    """Create a FAT file system of ``size`` bytes at byte ``offset`` of ``image``, copy ``files`` into it.

    FAT32, or the FAT type mkfs.vfat picks for the size when not ``fat32`` (small El Torito images).

    ``image`` must already be at least ``offset + size`` bytes long.
    """
    if offset % SECTOR or size % 1024:
        raise ValueError("FAT offset must be sector aligned and size KiB aligned")
    for f in files:
        if f.source.stat().st_size >= FAT_MAX_FILE:
            raise BuildError(
                f"{f.dest} is {f.source.stat().st_size >> 20} MiB: a FAT file system holds files below 4 GiB",
                hint="make the image (its initrd) smaller",
            )
    env = tool_env(epoch)
    runner.run(
        [
            "mkfs.vfat",
            "--invariant",
            *(["-F", "32"] if fat32 else []),
            "-i",
            volume_id(seed),
            "-n",
            label[:11].upper(),
            f"--offset={offset // SECTOR}",
            image,
            str(size // 1024),
        ],
        capture=True,
        extra_env=env,
    )
    target = f"{image}@@{offset}"
    dirs: set[str] = set()
    for f in files:
        parts = f.dest.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    if dirs:
        runner.run(["mmd", "-i", target, *(f"::/{d}" for d in sorted(dirs, key=lambda d: (d.count("/"), d)))],
                   capture=True, extra_env=env)  # fmt: skip
    for f in files:
        runner.run(["mcopy", "-i", target, f.source, f"::/{f.dest.strip('/')}"], capture=True, extra_env=env)


def install_syslinux(image: Path, *, offset: int, epoch: int) -> None:
    """Install syslinux's boot sector and ``ldlinux.sys``/``ldlinux.c32`` into the FAT at ``offset``."""
    runner.run(["syslinux", "--offset", str(offset), "--install", image], capture=True, extra_env=tool_env(epoch))
