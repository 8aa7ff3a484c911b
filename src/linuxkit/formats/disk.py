"""Disk image formats: ``raw-bios``, ``raw-efi``, ``aws`` and the ``qemu-img`` conversions of them
(``qcow2-bios``, ``qcow2-efi``, ``vhd``, ``dynamic-vhd``, ``vmdk``, ``gcp``).

A BIOS disk is an MBR (syslinux ``mbr.bin``) with one bootable FAT32 partition holding syslinux,
the kernel and the initrd. An EFI disk is a GPT with one EFI system partition whose
``EFI/BOOT/BOOTX64.EFI`` (``BOOTAA64.EFI`` on arm64) is the image's UKI. Images are sparse files;
nothing is read into memory.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from isal import igzip

from .. import log, runner
from ..errors import BuildError, UserError
from .bootable import boot_parts, cmdline_quote, content_seed, disk_size, round_up
from .bootfiles import boot_file, efi_boot_path
from .fat import FAT32_MIN_BYTES, FatFile, install_syslinux, make_fat
from .initrd import KernelInitrd, scratch
from .partition import (
    ESP_TYPE,
    GPT_ARRAY_SECTORS,
    MIB,
    SECTOR,
    Partition,
    create_sparse,
    seeded_guid,
    write_gpt,
    write_mbr,
)
from .registry import FormatContext
from .signing import check_esp_signed
from .sparsetar import write_sparse_tar
from .uki import write_uki_file

GIB = 1024 * MIB
#: Largest cluster mkfs.vfat picks for our sizes; each file may waste up to one.
_CLUSTER_SLACK = 32 * 1024
#: VHD footer times count seconds from 2000-01-01T00:00:00Z.
_VHD_EPOCH = 946684800


def fat_partition_bytes(content: int, nfiles: int) -> int:
    """Smallest FAT32 partition (whole MiB) holding ``content`` bytes in ``nfiles`` files, with slack.

    Two 4-byte FAT entries per 512-byte cluster cost 1/64 of the partition; 2 MiB covers reserved
    sectors, directories and ldlinux."""
    raw = content + nfiles * _CLUSTER_SLACK + 2 * MIB
    return max(FAT32_MIN_BYTES, round_up(raw * 64 // 63 + 1, MIB))


def syslinux_cfg(cmdline: str) -> bytes:
    return (
        "DEFAULT linux\nPROMPT 0\nTIMEOUT 0\n"
        f"LABEL linux\n  KERNEL /kernel\n  INITRD /initrd.img\n  APPEND {cmdline_quote(cmdline)}\n"
    ).encode()


@dataclass(frozen=True)
class RawDisk:
    path: Path
    seed: str


def build_bios_disk(ctx: FormatContext, parts: KernelInitrd, work: Path, dest: Path, fmt: str) -> None:
    """Write a BIOS-bootable raw disk to ``dest``: MBR + bootable FAT32 with syslinux, kernel, initrd."""
    mbr = boot_file(ctx.boot_files, "mbr.bin").read_bytes()[:440]
    seed = content_seed(ctx, parts, "bios")
    cfg = work / "syslinux.cfg"
    cfg.write_bytes(syslinux_cfg(parts.cmdline))
    files = [
        FatFile("syslinux.cfg", cfg),
        FatFile("kernel", parts.kernel),
        FatFile("initrd.img", parts.initrd),
    ]
    content = sum(f.source.stat().st_size for f in files) + 128 * 1024  # + ldlinux.sys/.c32
    size = disk_size(ctx, MIB + fat_partition_bytes(content, len(files) + 2), fmt)
    part_bytes = size - MIB
    create_sparse(dest, size)
    make_fat(dest, offset=MIB, size=part_bytes, files=files, label="LINUXKIT", seed=seed, epoch=ctx.epoch)
    install_syslinux(dest, offset=MIB, epoch=ctx.epoch)
    with open(dest, "r+b") as fh:
        write_mbr(fh, [Partition(MIB // SECTOR, part_bytes // SECTOR, bootable=True)], seed=seed, boot_code=mbr)


def build_efi_disk(ctx: FormatContext, parts: KernelInitrd, work: Path, dest: Path, fmt: str) -> None:
    """Write a UEFI-bootable raw disk to ``dest``: GPT + ESP (FAT32) with the UKI as ``EFI/BOOT/BOOTX64.EFI``
    (``BOOTAA64.EFI`` on arm64)."""
    seed = content_seed(ctx, parts, "efi")
    uki = work / "uki.efi"
    write_uki_file(ctx, parts.kernel, parts.initrd, parts.cmdline, uki)
    files = [FatFile(efi_boot_path(ctx.arch), uki)]
    check_esp_signed(ctx.signing, files)
    # 1 MiB in front (GPT + alignment), 1 MiB behind (backup GPT).
    size = disk_size(ctx, 2 * MIB + fat_partition_bytes(uki.stat().st_size, 3), fmt)
    total = size // SECTOR
    last_usable = total - 2 - GPT_ARRAY_SECTORS
    start = MIB // SECTOR
    sectors = (last_usable + 1 - start) // (MIB // SECTOR) * (MIB // SECTOR)
    create_sparse(dest, size)
    make_fat(dest, offset=MIB, size=sectors * SECTOR, files=files, label="ESP", seed=seed, epoch=ctx.epoch)
    with open(dest, "r+b") as fh:
        write_gpt(fh, [Partition(start, sectors, gpt_type=ESP_TYPE, name="EFI System")], seed=seed)


Builder = Callable[[FormatContext, KernelInitrd, Path, Path, str], None]


def _raw(builder: Builder, suffix: str, fmt: str) -> Callable[[FormatContext, Path], None]:
    def write(ctx: FormatContext, rootfs_tar: Path) -> None:
        final = f"{ctx.base}{suffix}"
        log.info(f"  {final}")
        with scratch(ctx, fmt) as work:
            parts = boot_parts(ctx, rootfs_tar, work)
            builder(ctx, parts, work, ctx.outputs.path(final), fmt)

    write.__doc__ = f"``{fmt}``: ``NAME{suffix}``."
    return write


write_raw_bios = _raw(build_bios_disk, "-bios.img", "raw-bios")
write_raw_efi = _raw(build_efi_disk, "-efi.img", "raw-efi")
write_aws = _raw(build_bios_disk, ".raw", "aws")


# -- conversions ------------------------------------------------------------------------------------


def _converted(
    builder: Builder, suffix: str, fmt: str, qemu_opts: list[str], fix: Callable[[Path, str, int], None] | None
) -> Callable[[FormatContext, Path], None]:
    def write(ctx: FormatContext, rootfs_tar: Path) -> None:
        final = Path(f"{ctx.base}{suffix}")
        log.info(f"  {final}")
        with scratch(ctx, fmt) as work:
            parts = boot_parts(ctx, rootfs_tar, work)
            raw = work / "disk.raw"
            builder(ctx, parts, work, raw, fmt)
            # Convert under the final name: vmdk writes it into its descriptor.
            out = work / final.name
            runner.run(["qemu-img", "convert", "-f", "raw", "-O", *qemu_opts, raw, out], capture=True)
            raw.unlink()
            if fix is not None:
                fix(out, content_seed(ctx, parts, fmt), ctx.epoch)
            os.replace(out, ctx.outputs.path(final))

    write.__doc__ = f"``{fmt}``: ``NAME{suffix}`` (qemu-img {' '.join(qemu_opts)})."
    return write


def vhd_checksum(footer: bytes) -> int:
    """VHD footer checksum: one's complement of the byte sum, the checksum field (64..68) left out."""
    return ~(sum(footer[:64]) + sum(footer[68:512])) & 0xFFFFFFFF


def fix_vhd_footer(footer: bytes, seed: str, epoch: int) -> bytes:
    """The VHD footer with a fixed timestamp, a seeded unique id and a recomputed checksum."""
    if footer[:8] != b"conectix":
        raise BuildError("qemu-img wrote a VHD without a footer cookie")
    out = bytearray(footer)
    struct.pack_into(">I", out, 24, max(epoch - _VHD_EPOCH, 0) & 0xFFFFFFFF)
    out[68:84] = seeded_guid(seed, "vhd").bytes
    struct.pack_into(">I", out, 64, vhd_checksum(bytes(out)))
    return bytes(out)


def fix_vhd(path: Path, seed: str, epoch: int) -> None:
    """Patch the footer at the end (and its copy at the start of a dynamic VHD)."""
    with open(path, "r+b") as fh:
        end = fh.seek(0, 2)
        fh.seek(end - SECTOR)
        footer = fix_vhd_footer(fh.read(SECTOR), seed, epoch)
        fh.seek(end - SECTOR)
        fh.write(footer)
        fh.seek(0)
        if fh.read(8) == b"conectix":
            fh.seek(0)
            fh.write(footer)


def fix_vmdk(path: Path, seed: str, epoch: int) -> None:
    """Replace the random content id (``CID``) in the embedded descriptor by a seeded one."""
    with open(path, "r+b") as fh:
        header = fh.read(SECTOR)
        if header[:4] != b"KDMV":
            raise BuildError("qemu-img wrote a VMDK without a sparse header")
        desc_offset, desc_size = struct.unpack_from("<QQ", header, 28)
        fh.seek(desc_offset * SECTOR)
        area = fh.read(desc_size * SECTOR)
        text = area.split(b"\0", 1)[0]
        cid = seeded_guid(seed, "vmdk").hex[:8].encode()
        new = re.sub(rb"^CID=[0-9a-fA-F]+$", b"CID=" + cid, text, count=1, flags=re.M)
        fh.seek(desc_offset * SECTOR)
        fh.write(new.ljust(len(area), b"\0"))


write_qcow2_bios = _converted(build_bios_disk, ".qcow2", "qcow2-bios", ["qcow2"], None)
write_qcow2_efi = _converted(build_efi_disk, "-efi.qcow2", "qcow2-efi", ["qcow2"], None)
write_vhd = _converted(build_bios_disk, ".vhd", "vhd", ["vpc", "-o", "subformat=fixed,force_size=on"], fix_vhd)
write_dynamic_vhd = _converted(
    build_bios_disk, ".vhd", "dynamic-vhd", ["vpc", "-o", "subformat=dynamic,force_size=on"], fix_vhd
)
write_vmdk = _converted(build_bios_disk, ".vmdk", "vmdk", ["vmdk", "-o", "subformat=streamOptimized"], fix_vmdk)


def write_gcp(ctx: FormatContext, rootfs_tar: Path) -> None:
    """``gcp``: ``NAME.img.tar.gz``: a BIOS disk as ``disk.raw`` (a whole number of GiB, as Google
    Compute Engine wants) in a gzip'd old-GNU sparse tar with fixed owner, mtime and gzip header."""
    final = f"{ctx.base}.img.tar.gz"
    if ctx.size_mb % 1024:
        raise UserError(
            f"--size {ctx.size_mb}M is not a whole number of GiB, which the gcp format needs",
            hint=f"use --size {round_up(ctx.size_mb, 1024) // 1024}G",
        )
    log.info(f"  {final}")
    with scratch(ctx, "gcp") as work:
        parts = boot_parts(ctx, rootfs_tar, work)
        raw = work / "disk.raw"
        build_bios_disk(ctx, parts, work, raw, "gcp")
        size = raw.stat().st_size
        if size % GIB:
            with open(raw, "r+b") as fh:
                fh.truncate(round_up(size, GIB))
        # Sparse, as Google's import instructions make it (tar --format=oldgnu -S): only the data
        # extents of the mostly empty disk are read and compressed.
        with open(ctx.outputs.path(final), "wb") as out:
            gz = igzip.IGzipFile(filename="", mode="wb", fileobj=out, compresslevel=2, mtime=0)  # type: ignore[no-untyped-call]
            with gz:
                write_sparse_tar(gz, raw, "disk.raw", ctx.epoch)
