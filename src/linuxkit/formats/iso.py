"""ISO formats written with pycdlib: ``iso-bios`` (isolinux, hybrid MBR) and ``iso-efi`` /
``iso-efi-initrd`` (El Torito EFI boot image: a FAT holding the UKI as ``EFI/BOOT/BOOTX64.EFI``, or
``BOOTAA64.EFI`` on arm64).

Each boots the image's kernel + initrd: our kernel is modular, so the initrd is the root file
system (upstream's ``iso-bios``/``iso-efi`` put the rootfs on ISO9660 with ``root=/dev/sr0``,
which needs built-in CD-ROM drivers).

pycdlib reads the clock (``time.time``, ``time.localtime``) for every date it writes; while we
write, its modules see a clock fixed at the build epoch in UTC, so rebuilds are identical.
"""

from __future__ import annotations

import contextlib
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pycdlib
import pycdlib.dates
import pycdlib.headervd
import pycdlib.pycdlib
import pycdlib.utils

from .. import log
from .bootable import boot_parts, cmdline_quote, content_seed, round_up
from .bootfiles import boot_file, efi_boot_path
from .fat import FatFile, make_fat
from .initrd import scratch
from .partition import MIB, disk_id
from .registry import FormatContext
from .signing import check_esp_signed
from .uki import write_uki_file

#: El Torito counts image sectors in 16 bits: an EFI boot image above this many 512-byte sectors
#: gets a count of 1, which UEFI firmware (edk2) reads as "up to the end of the volume".
_MAX_ELTORITO_SECTORS = 0xFFFF
_CLOCK_MODULES = (pycdlib.dates, pycdlib.headervd, pycdlib.pycdlib, pycdlib.utils)


@contextlib.contextmanager
def fixed_clock(epoch: int) -> Iterator[None]:
    """Make pycdlib's modules see ``time.time() == epoch`` and UTC local time while it runs."""
    clock = types.SimpleNamespace(
        time=lambda: float(epoch),
        localtime=lambda secs=None: time.gmtime(epoch if secs is None else secs),
        gmtime=time.gmtime,
        strftime=time.strftime,
    )
    saved: list[tuple[types.ModuleType, Any]] = []
    try:
        for module in _CLOCK_MODULES:
            saved.append((module, module.time))
            module.time = clock  # type: ignore[attr-defined]
        yield
    finally:
        for module, original in saved:
            module.time = original  # type: ignore[attr-defined]


def _new_iso(label: str) -> pycdlib.PyCdlib:
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, rock_ridge="1.09", vol_ident=label[:32].upper().replace("-", "_"))
    return iso


def _add(iso: pycdlib.PyCdlib, source: Path, name: str) -> None:
    """Add host file ``source`` as ``/NAME`` (ISO9660) with Rock Ridge name ``name.lower()``."""
    iso_name = "/" + name.upper().replace("-", "_").replace(".", "_", name.count(".") - 1) + ";1"
    iso.add_file(str(source), iso_path=iso_name, rr_name=name)


def isolinux_cfg(cmdline: str) -> bytes:
    return (
        "DEFAULT linux\nPROMPT 0\nTIMEOUT 0\n"
        f"LABEL linux\n  KERNEL /kernel\n  INITRD /initrd.img\n  APPEND {cmdline_quote(cmdline)}\n"
    ).encode()


def write_iso_bios(ctx: FormatContext, rootfs_tar: Path) -> None:
    """``iso-bios``: ``NAME.iso``, isolinux boot, also bootable as a disk (isohybrid MBR)."""
    final = f"{ctx.base}.iso"
    isolinux = boot_file(ctx.boot_files, "isolinux.bin")
    ldlinux = boot_file(ctx.boot_files, "ldlinux.c32")
    hdpfx = boot_file(ctx.boot_files, "isohdpfx.bin")
    log.info(f"  {final}")
    with scratch(ctx, "iso") as work:
        parts = boot_parts(ctx, rootfs_tar, work)
        seed = content_seed(ctx, parts, "iso-bios")
        cfg = work / "isolinux.cfg"
        cfg.write_bytes(isolinux_cfg(parts.cmdline))
        dest = ctx.outputs.path(final)
        with fixed_clock(ctx.epoch):
            iso = _new_iso("LINUXKIT")
            iso.add_directory("/ISOLINUX", rr_name="isolinux")
            iso.add_file(str(isolinux), iso_path="/ISOLINUX/ISOLINUX.BIN;1", rr_name="isolinux.bin")
            iso.add_file(str(ldlinux), iso_path="/ISOLINUX/LDLINUX.C32;1", rr_name="ldlinux.c32")
            iso.add_file(str(cfg), iso_path="/ISOLINUX/ISOLINUX.CFG;1", rr_name="isolinux.cfg")
            _add(iso, parts.kernel, "kernel")
            _add(iso, parts.initrd, "initrd.img")
            iso.add_eltorito(
                "/ISOLINUX/ISOLINUX.BIN;1",
                bootcatfile="/ISOLINUX/BOOT.CAT;1",
                rr_bootcatname="boot.cat",
                boot_load_size=4,
                boot_info_table=True,
            )
            iso.add_isohybrid(mbr_id=disk_id(seed))
            iso.write(str(dest))
        iso.close()
        # pycdlib writes its own copy of the hybrid MBR code; use the one matching our isolinux.bin.
        code = hdpfx.read_bytes()[:432]
        with open(dest, "r+b") as fh:
            fh.write(code)


def write_iso_efi(ctx: FormatContext, rootfs_tar: Path, *, suffix: str = "-efi") -> None:
    """``iso-efi`` (``NAME-efi.iso``): UEFI CD whose El Torito image is a FAT holding the UKI."""
    final = f"{ctx.base}{suffix}.iso"
    log.info(f"  {final}")
    with scratch(ctx, "iso") as work:
        parts = boot_parts(ctx, rootfs_tar, work)
        seed = content_seed(ctx, parts, "iso-efi")
        boot_path = efi_boot_path(ctx.arch)
        uki = work / "uki.efi"
        write_uki_file(ctx, parts.kernel, parts.initrd, parts.cmdline, uki)
        esp = work / "efiboot.img"
        size = round_up(uki.stat().st_size + uki.stat().st_size // 50 + 2 * MIB, MIB)
        with open(esp, "wb") as fh:
            fh.truncate(size)
        files = [FatFile(boot_path, uki)]
        check_esp_signed(ctx.signing, files)
        make_fat(
            esp,
            offset=0,
            size=size,
            files=files,
            label="EFIBOOT",
            seed=seed,
            epoch=ctx.epoch,
            fat32=False,
        )
        sectors = size // 512
        with fixed_clock(ctx.epoch):
            iso = _new_iso("LINUXKIT")
            iso.add_directory("/EFI", rr_name="EFI")
            iso.add_file(str(esp), iso_path="/EFI/EFIBOOT.IMG;1", rr_name="efiboot.img")
            iso.add_eltorito(
                "/EFI/EFIBOOT.IMG;1",
                bootcatfile="/EFI/BOOT.CAT;1",
                rr_bootcatname="boot.cat",
                efi=True,
                platform_id=0xEF,
                boot_load_size=sectors if sectors <= _MAX_ELTORITO_SECTORS else 1,
            )
            iso.write(str(ctx.outputs.path(final)))
        iso.close()


def write_iso_efi_initrd(ctx: FormatContext, rootfs_tar: Path) -> None:
    """``iso-efi-initrd`` (``NAME-efi-initrd.iso``): the same UEFI CD (we always boot from the initrd)."""
    write_iso_efi(ctx, rootfs_tar, suffix="-efi-initrd")
