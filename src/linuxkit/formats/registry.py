"""The table of output formats: upstream's names, which ones stream, and who writes them.

A *streamable* format (``tar``, ``docker``) is the rootfs stream itself, so it can go to a file
or stdout (``--o``) and must be the only format of a run. Every other format reads the one
assembled rootfs tar and writes its files through an :class:`~linuxkit.outputs.OutputSet`.
"""

from __future__ import annotations

import importlib
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


#: format → (module of this package, function): imported only when a build writes that format, as
#: importing every writer (pycdlib, pyelftools, ...) cost 50-100 ms of each build.
_WRITERS: dict[str, tuple[str, str]] = {
    "kernel+initrd": ("initrd", "write_kernel_initrd"),
    "tar-kernel-initrd": ("initrd", "write_tar_kernel_initrd"),
    "iso-bios": ("iso", "write_iso_bios"),
    "iso-efi": ("iso", "write_iso_efi"),
    "iso-efi-initrd": ("iso", "write_iso_efi_initrd"),
    "raw-bios": ("disk", "write_raw_bios"),
    "raw-efi": ("disk", "write_raw_efi"),
    "kernel+squashfs": ("rootimage", "write_kernel_squashfs"),
    "kernel+erofs": ("rootimage", "write_kernel_erofs"),
    "kernel+iso": ("rootimage", "write_kernel_iso"),
    "aws": ("disk", "write_aws"),
    "gcp": ("disk", "write_gcp"),
    "qcow2-bios": ("disk", "write_qcow2_bios"),
    "qcow2-efi": ("disk", "write_qcow2_efi"),
    "vhd": ("disk", "write_vhd"),
    "dynamic-vhd": ("disk", "write_dynamic_vhd"),
    "vmdk": ("disk", "write_vmdk"),
    "uki": ("uki", "write_uki"),
}


def _lazy_writer(module: str, function: str) -> FormatWriter:
    def write(ctx: FormatContext, rootfs_tar: Path) -> None:
        writer: FormatWriter = getattr(importlib.import_module(f"{__package__}.{module}"), function)
        writer(ctx, rootfs_tar)

    write.__name__ = write.__qualname__ = function
    return write


def all_formats() -> dict[str, Format]:
    """Every known format with its writer (``None`` where this version cannot write it yet)."""
    return {
        name: Format(name, name in STREAMABLE, _lazy_writer(*_WRITERS[name]) if name in _WRITERS else None)
        for name in _NAMES
    }


def split_formats(values: Sequence[str]) -> list[str]:
    """``-f a,b -f c`` → ``[a, b, c]`` (upstream splits each value on commas)."""
    out: list[str] = []
    for value in values:
        out.extend(value.split(","))
    return out


#: formats that each write ``NAME-initrd.img``: the kernel+initrd one and the root loader of the others
_ROOT_IMAGE_FORMATS = ("kernel+squashfs", "kernel+erofs", "kernel+iso")


def validate_formats(names: Sequence[str], arch: str = "amd64") -> list[Format]:
    """Check a list of requested formats for a build for ``arch``; raise :class:`UserError` for
    unknown, unusable or clashing ones."""
    table = all_formats()
    if "kernel+initrd" in names:
        clash = [n for n in _ROOT_IMAGE_FORMATS if n in names]
        if clash:
            raise UserError(
                f"formats kernel+initrd and {clash[0]} cannot be built together: both write NAME-initrd.img",
                hint="build them in two runs (or with different --name / --dir)",
            )
    chosen: list[Format] = []
    for name in names:
        fmt = table.get(name)
        if fmt is None:
            raise UserError(
                f"unknown format {name!r}",
                hint="known formats: " + ", ".join(_NAMES),
            )
        if name == "rpi3" and arch not in ("arm64", "aarch64"):
            raise UserError(
                f"rpi3 builds only for arm64 (this build is for {arch})",
                hint="use --arch arm64 with an arm64 kernel and images",
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
