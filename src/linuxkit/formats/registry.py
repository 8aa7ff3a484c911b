"""The table of output formats: upstream's names, which ones stream, and who writes them.

A *streamable* format (``tar``, ``docker``) is the rootfs stream itself, so it can go to a file
or stdout (``--o``) and must be the only format of a run. Every other format reads the one
assembled rootfs tar and writes its files through an :class:`~linuxkit.outputs.OutputSet`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..outputs import OutputSet


@dataclass(frozen=True)
class FormatContext:
    """What a format writer gets besides the rootfs tar."""

    base: Path  # output path without suffix: DIR/NAME
    size_mb: int
    arch: str
    decompress_kernel: bool
    outputs: OutputSet
    #: Root of a Debian-layout tree holding boot loaders (isolinux, syslinux, systemd-boot, EFI stub), taken
    #: from a package image; ``None`` when the build has not provided one (formats that need it say so).
    boot_files: Path | None = None
    #: Fixed time for every timestamp a format writes (``SOURCE_DATE_EPOCH``, else 0).
    epoch: int = 0


FormatWriter = Callable[[FormatContext, Path], None]


@dataclass(frozen=True)
class Format:
    name: str
    streamable: bool = False
    writer: FormatWriter | None = None


# Upstream's format names in its own order, then ours. Writers are attached as formats land.
_NAMES = (
    "tar",
    "docker",
    "kernel+initrd",
    "tar-kernel-initrd",
    "iso-bios",
    "iso-efi",
    "iso-efi-initrd",
    "raw-bios",
    "raw-efi",
    "kernel+squashfs",
    "kernel+erofs",
    "kernel+iso",
    "aws",
    "gcp",
    "qcow2-efi",
    "qcow2-bios",
    "vhd",
    "dynamic-vhd",
    "vmdk",
    "rpi3",
    "uki",
)
STREAMABLE = frozenset({"tar", "docker"})


def all_formats() -> dict[str, Format]:
    """Every known format with its writer (``None`` where this version cannot write it yet)."""
    from . import disk, iso, uki
    from .initrd import write_kernel_initrd, write_tar_kernel_initrd  # here: initrd imports this module

    writers: dict[str, FormatWriter] = {
        "kernel+initrd": write_kernel_initrd,
        "tar-kernel-initrd": write_tar_kernel_initrd,
        "iso-bios": iso.write_iso_bios,
        "iso-efi": iso.write_iso_efi,
        "iso-efi-initrd": iso.write_iso_efi_initrd,
        "raw-bios": disk.write_raw_bios,
        "raw-efi": disk.write_raw_efi,
        "aws": disk.write_aws,
        "gcp": disk.write_gcp,
        "qcow2-bios": disk.write_qcow2_bios,
        "qcow2-efi": disk.write_qcow2_efi,
        "vhd": disk.write_vhd,
        "dynamic-vhd": disk.write_dynamic_vhd,
        "vmdk": disk.write_vmdk,
        "uki": uki.write_uki,
    }
    return {name: Format(name, name in STREAMABLE, writers.get(name)) for name in _NAMES}


def split_formats(values: Sequence[str]) -> list[str]:
    """``-f a,b -f c`` → ``[a, b, c]`` (upstream splits each value on commas)."""
    out: list[str] = []
    for value in values:
        out.extend(value.split(","))
    return out


def validate_formats(names: Sequence[str]) -> list[Format]:
    """Check a list of requested formats; raise :class:`UserError` for unknown or unusable ones."""
    table = all_formats()
    chosen: list[Format] = []
    for name in names:
        fmt = table.get(name)
        if fmt is None:
            raise UserError(
                f"unknown format {name!r}",
                hint="known formats: " + ", ".join(_NAMES),
            )
        if fmt.streamable and len(names) > 1:
            raise UserError(f"format type {name} must be the only format specified")
        if not fmt.streamable and fmt.writer is None:
            raise UserError(
                f"format {name!r} is not available in this version yet",
                hint="available now: " + ", ".join(n for n, f in table.items() if f.streamable or f.writer),
            )
        chosen.append(fmt)
    return chosen
