"""``rpi3`` (``NAME.tar``) and ``rpi3-img`` (``NAME-rpi3.img``): the boot partition of a Raspberry Pi.

The Pi's GPU firmware (``bootcode.bin``, ``start*.elf``, ``fixup*.dat``) reads ``config.txt``, loads the
board's device tree, the kernel (``kernel8.img``) and the initrd from the FAT partition of the SD card and
starts the kernel with ``cmdline.txt``: no u-boot. Upstream's rpi3 tool chain-loads u-boot instead (its
``kernel.uimg``/``initrd.uimg``); docs/platform-rpi3.md lists the differences.

Where the files come from, all in the rootfs the YAML builds (nothing from the host):

* the firmware and its licence: ``usr/lib/raspi-firmware/`` of ``pkg/rpi-firmware`` (Debian's
  raspi-firmware), named in the YAML's ``init:``;
* the device trees: ``boot/dtb/broadcom/*.dtb``, where upstream's kernel images keep them (``pkg/kernel-rpi``
  ships the Pi's from Debian's arm64 kernel); stored at the root of the partition, where the firmware
  looks for them (``upstream_kernel=1`` makes it look for the mainline names, ``bcm2837-rpi-3-b.dtb``);
* the kernel, ``boot/kernel`` (decompressed when it is gzip: the firmware of every Pi is only documented
  to start an uncompressed arm64 ``Image``), and the cmdline, ``boot/cmdline``;
* the initrd: every other entry, as ``kernel+initrd`` makes it; the firmware's directory is left out
  (it is only read from the boot partition).

Both outputs hold the same files with the same bytes; the tar's entries are sorted, owned by 0:0, with
the build's epoch as mtime, and the image's FAT is made with ``mkfs.vfat --invariant`` and mtools under
that epoch (:mod:`.fat`), so a rebuild gives the same bytes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .. import log
from ..errors import BuildError, UserError
from ..safetree import create_file
from ..tar.header import LINK, REG, Header
from ..tar.writer import TarSink, TarWriter
from .bootable import cmdline_quote, disk_size
from .disk import fat_partition_bytes
from .efikernel import gunzip_bounded, is_gzip
from .fat import FatFile, make_fat
from .initrd import InitrdSplitter, feed_tar, scratch
from .partition import MIB, SECTOR, Partition, create_sparse, write_mbr
from .registry import FormatContext

#: where Debian's raspi-firmware (pkg/rpi-firmware) installs the boot firmware
FIRMWARE_DIR = "usr/lib/raspi-firmware/"
#: where upstream's kernel images (and pkg/kernel-rpi) keep the Broadcom device trees
DTB_DIR = "boot/dtb/broadcom/"
#: the firmware's licence (Broadcom's terms ask for it to come with the binaries), as upstream names it
LICENCE = "LICENCE.broadcom"
KERNEL_NAME = "kernel8.img"
INITRD_NAME = "initrd.img"
#: the firmware files a Pi 3 cannot boot without (the Pi 4's are start4.elf and fixup4.dat)
REQUIRED_FIRMWARE = ("bootcode.bin", "start.elf", "fixup.dat")
#: the device tree of the Raspberry Pi 3 Model B, the board this format is named after
RPI3_DTB = "bcm2837-rpi-3-b.dtb"
#: the FAT partition starts at 4 MiB, as Raspberry Pi OS's images (an SD card's erase-block alignment)
PARTITION_START = 4 * MIB

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*\Z")
_CHUNK = 1 << 20


def config_txt() -> bytes:
    """The firmware's ``config.txt``: 64-bit mode, the serial console's UART, the mainline device-tree
    names, the kernel and the initrd (placed right after the kernel in memory)."""
    return (
        "# Written by linuxkit: the Raspberry Pi firmware starts the kernel directly (no u-boot).\n"
        "arm_64bit=1\n"
        "enable_uart=1\n"
        "upstream_kernel=1\n"
        f"kernel={KERNEL_NAME}\n"
        f"initramfs {INITRD_NAME} followkernel\n"
    ).encode()


def cmdline_txt(cmdline: str) -> bytes:
    """``cmdline.txt``: the image's command line on one line (the firmware reads only the first)."""
    return (cmdline_quote(cmdline) + "\n").encode()


def boot_file_name(name: str) -> tuple[str, str] | None:
    """``("firmware" | "dtb", basename)`` for a rootfs entry the boot partition takes, else ``None``.
    Only plain names directly in those directories count: image content never names a path of ours."""
    for kind, prefix, suffixes in (
        ("firmware", FIRMWARE_DIR, (".bin", ".elf", ".dat", LICENCE)),
        ("dtb", DTB_DIR, (".dtb",)),
    ):
        if name.startswith(prefix):
            base = name[len(prefix) :]
            if _SAFE_NAME.match(base) and base.endswith(suffixes):
                return kind, base
    return None


class BootFileSplitter:
    """A :class:`~linuxkit.tar.writer.TarSink` in front of an :class:`InitrdSplitter`: the firmware and the
    device trees go to ``firmware/`` and ``dtb/`` under ``work``, the firmware's directory is kept out of
    the initrd, everything else goes on (``boot/...`` is dropped there, the kernel and cmdline taken)."""

    def __init__(self, inner: InitrdSplitter, work: Path) -> None:
        self._inner = inner
        self._work = work
        self._out: BinaryIO | None = None
        self._skip = False
        self.found: dict[str, dict[str, Path]] = {"firmware": {}, "dtb": {}}

    def _end(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        self._skip = False

    def write_header(self, hdr: Header) -> None:
        self._end()
        name = hdr.name.rstrip("/")
        found = boot_file_name(name)
        if found is not None and hdr.typeflag in (REG, LINK):
            kind, base = found
            self._out = create_file(self._work, f"{kind}/{base}")  # a later entry of that name replaces it
            self.found[kind][base] = self._work / kind / base
            if hdr.typeflag == LINK:  # a hard link to a file taken before: its bytes
                self._copy_linked(hdr.linkname)
            return
        if (name + "/").startswith(FIRMWARE_DIR):
            self._skip = True  # the directory itself, or what else it holds: not needed in the initrd
            return
        self._inner.write_header(hdr)

    def _copy_linked(self, target: str) -> None:
        assert self._out is not None
        found = boot_file_name(target.rstrip("/"))
        source = self.found[found[0]].get(found[1]) if found is not None else None
        if source is None:
            raise BuildError(f"rootfs hard link to {target!r}: not a boot file taken before it")
        with open(source, "rb") as src:
            shutil.copyfileobj(src, self._out, _CHUNK)

    def write(self, data: bytes) -> None:
        if self._out is not None:
            self._out.write(data)
        elif not self._skip:
            self._inner.write(data)

    def close(self) -> None:
        self._end()


@dataclass(frozen=True)
class RpiBoot:
    """The files of the boot partition: name on the partition → file in the scratch directory."""

    files: dict[str, Path]
    cmdline: str

    def fat_files(self) -> list[FatFile]:
        return [FatFile(name, self.files[name]) for name in sorted(self.files)]


def _gunzip_in_place(path: Path) -> None:
    if not is_gzip(path):
        return
    log.debug(f"decompressing {path.name}")
    plain = path.with_name(path.name + ".plain")
    with open(path, "rb") as src, open(plain, "wb") as out:
        gunzip_bounded(src, out)
    os.replace(plain, path)


def rpi_boot(rootfs_tar: Path, work: Path) -> RpiBoot:
    """Split ``rootfs_tar`` into the boot partition's files under ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    initrd = work / INITRD_NAME
    with open(rootfs_tar, "rb") as rootfs, open(initrd, "wb") as gz_out:
        with InitrdSplitter(gz_out, work) as splitter:
            sink = BootFileSplitter(splitter, work)
            try:
                feed_tar(rootfs)(sink)
            finally:
                sink.close()
            cmdline = splitter.close()
        kernel = splitter.kernel
        if splitter.ucode is not None:
            raise UserError("the image has microcode (boot/ucode.cpio): a Raspberry Pi has none to load")
    if not kernel.stat().st_size:
        raise UserError(
            "the image has no kernel (boot/kernel): rpi3 cannot be made",
            hint="use the Raspberry Pi kernel: kernel: {image: linuxkit/kernel-rpi} (pkg/kernel-rpi)",
        )
    firmware, dtbs = sink.found["firmware"], sink.found["dtb"]
    missing = [name for name in REQUIRED_FIRMWARE if name not in firmware]
    if missing:
        raise UserError(
            f"the image has no Raspberry Pi firmware ({', '.join(missing)} missing in /{FIRMWARE_DIR})",
            hint="add the firmware package to the YAML's init: section: linuxkit/rpi-firmware (pkg/rpi-firmware)",
        )
    if RPI3_DTB not in dtbs:
        raise UserError(
            f"the image has no Raspberry Pi 3 device tree (/{DTB_DIR}{RPI3_DTB})",
            hint="use a kernel that ships its device trees in kernel.tar's boot/dtb/, e.g. pkg/kernel-rpi",
        )
    _gunzip_in_place(kernel)
    os.replace(kernel, work / KERNEL_NAME)
    (work / "config.txt").write_bytes(config_txt())
    (work / "cmdline.txt").write_bytes(cmdline_txt(cmdline))
    files = {**firmware, **dtbs}
    for name in (KERNEL_NAME, INITRD_NAME, "config.txt", "cmdline.txt"):
        files[name] = work / name
    return RpiBoot(files, cmdline)


def write_boot_tar(boot: RpiBoot, out: TarSink, epoch: int) -> None:
    """The boot files as tar entries at the top level, in name order, 0:0, mode 0644, mtime ``epoch``."""
    for name in sorted(boot.files):
        path = boot.files[name]
        size = path.stat().st_size
        out.write_header(Header(name=name, typeflag=REG, mode=0o644, size=size, mtime=(epoch, 0)))
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                out.write(chunk)


def write_rpi3(ctx: FormatContext, rootfs_tar: Path) -> None:
    """``rpi3``: ``NAME.tar``, the boot partition's files to extract onto the FAT partition of an SD card."""
    final = f"{ctx.base}.tar"
    log.info(f"  {final}")
    with scratch(ctx, "rpi3") as work:
        boot = rpi_boot(rootfs_tar, Path(work) / "boot")
        with ctx.outputs.open(final) as out:
            tw = TarWriter(out)
            write_boot_tar(boot, tw, ctx.epoch)
            tw.close()


def content_seed(boot: RpiBoot, epoch: int) -> str:
    """The seed of the image's disk signature and FAT serial: the same files and epoch, the same seed."""
    digest = hashlib.sha256(f"rpi3-img\0{epoch}\0".encode())
    for name in sorted(boot.files):
        with open(boot.files[name], "rb") as fh:
            digest.update(name.encode() + b"\0" + hashlib.file_digest(fh, "sha256").digest())
    return digest.hexdigest()


def write_sd_image(ctx: FormatContext, boot: RpiBoot, dest: Path) -> None:
    """An SD-card image: an MBR with one FAT32 (LBA) partition from 4 MiB holding the boot files."""
    files = boot.fat_files()
    content = sum(f.source.stat().st_size for f in files)
    size = disk_size(ctx, PARTITION_START + fat_partition_bytes(content, len(files)), "rpi3-img")
    part_bytes = size - PARTITION_START
    seed = content_seed(boot, ctx.epoch)
    create_sparse(dest, size)
    make_fat(dest, offset=PARTITION_START, size=part_bytes, files=files, label="RPI-BOOT", seed=seed, epoch=ctx.epoch)
    with open(dest, "r+b") as fh:
        write_mbr(fh, [Partition(PARTITION_START // SECTOR, part_bytes // SECTOR, bootable=True)], seed=seed)


def write_rpi3_img(ctx: FormatContext, rootfs_tar: Path) -> None:
    """``rpi3-img``: ``NAME-rpi3.img``, a whole SD card to ``dd`` (the files of ``rpi3`` in a FAT32)."""
    final = f"{ctx.base}-rpi3.img"
    log.info(f"  {final}")
    with scratch(ctx, "rpi3-img") as work:
        boot = rpi_boot(rootfs_tar, Path(work) / "boot")
        write_sd_image(ctx, boot, ctx.outputs.path(final))
