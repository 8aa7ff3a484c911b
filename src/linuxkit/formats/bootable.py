"""What every bootable format shares: the kernel + initrd split into a scratch directory next to the
outputs, a content-derived seed for GUIDs and serials, and size arithmetic for ``--size``."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import BuildError, UserError
from .initrd import KernelInitrd, make_kernel_initrd
from .partition import MIB
from .registry import FormatContext


def boot_parts(ctx: FormatContext, rootfs_tar: Path, work: Path) -> KernelInitrd:
    """Kernel, initrd (microcode first) and cmdline of the image; fails when there is no kernel.
    (The architectures a format builds for are checked before the build, from the format table.)"""
    parts = make_kernel_initrd(rootfs_tar, work / "boot", decompress_kernel=ctx.decompress_kernel)
    if not parts.kernel.stat().st_size:
        raise BuildError(
            "the image has no kernel (boot/kernel): a bootable format cannot be made",
            hint="add a kernel: section to the YAML, or use --format tar",
        )
    return parts


def content_seed(ctx: FormatContext, parts: KernelInitrd, fmt: str) -> str:
    """A seed for GUIDs and serials: the same content, epoch and format give the same seed."""
    h = hashlib.sha256(f"{fmt}\0{ctx.epoch}\0{parts.cmdline}\0".encode())
    for path in (parts.kernel, parts.initrd):
        with open(path, "rb") as fh:
            h.update(hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()


def round_up(value: int, to: int) -> int:
    return (value + to - 1) // to * to


def disk_size(ctx: FormatContext, needed: int, fmt: str) -> int:
    """The disk size in bytes: ``--size`` MiB when given (an error when smaller than ``needed``),
    else ``needed`` rounded up to a whole MiB."""
    need_mb = round_up(needed, MIB) // MIB
    if ctx.size_mb:
        if ctx.size_mb < need_mb:
            raise UserError(
                f"--size {ctx.size_mb}M is too small for format {fmt}: it needs at least {need_mb}M",
                hint=f"use --size {need_mb}M or more, or leave --size out to size the image automatically",
            )
        return ctx.size_mb * MIB
    return need_mb * MIB


def cmdline_quote(cmdline: str) -> str:
    """The cmdline on one line (boot loader configs are line based)."""
    return " ".join(cmdline.split())
