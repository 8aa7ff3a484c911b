"""``--disk [file=]PATH[,size=N[G|M]][,format=F]``: parsing, defaults and creation, as upstream; how file
names and other values are put into qemu's comma-separated option strings (:func:`qemu_opt`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from .. import log
from ..errors import UserError
from ..runner import find_tool, run

DISK_HINT = "use --disk [file=]PATH[,size=SIZE][,format=FORMAT], e.g. --disk disk.qcow2,size=1G"


def qemu_opt(value: str) -> str:
    """``value`` made safe inside a comma-separated qemu option string (``-drive``, ``-netdev``,
    ``-device``, ``-chardev``, ``-object``...): qemu reads ``,,`` as one literal comma, so a file
    named ``disk,if=none,file=/etc/shadow`` stays one file name instead of adding options.

    Every user-controlled value (paths, names) placed in such a string goes through this helper;
    values qemu takes whole (``-kernel``, ``-initrd``, ``-cdrom``, ``-pidfile``, ``-append``) must not."""
    return value.replace(",", ",,")


def qemu_file(path: str) -> str:
    """A file name as qemu's block layer must get it: a name with a ``:`` before any ``/`` (``nbd:...``,
    ``json:{...}``) would be read as a protocol, so such a relative name gets a ``./`` first. Commas
    are left alone: :func:`qemu_opt` escapes them where the name goes into an option string."""
    head = path.split("/", 1)[0]
    return "./" + path if ":" in head else path


@dataclass(frozen=True)
class DiskSpec:
    path: str = ""
    size_mb: int = 0
    format: str = ""


def disk_size_mb(text: str) -> int:
    """Upstream's sizes: a bare number or ``NG`` is gigabytes, ``NM`` megabytes."""
    if not text:
        return 0
    try:
        if text.endswith("M"):
            return int(text[:-1])
        return 1024 * int(text[:-1] if text.endswith("G") else text)
    except ValueError:
        raise UserError(f"bad disk size {text!r}", hint=DISK_HINT) from None


def parse_disk(value: str) -> DiskSpec:
    disk = DiskSpec()
    for part in value.split(","):
        key, eq, val = part.partition("=")
        if not eq:
            disk = replace(disk, path=key)
        elif key == "file":
            disk = replace(disk, path=val)
        elif key == "size":
            disk = replace(disk, size_mb=disk_size_mb(val))
        elif key == "format":
            disk = replace(disk, format=val)
        else:
            raise UserError(f"unknown disk config: {key}", hint=DISK_HINT)
    return disk


def resolve_disks(disks: list[DiskSpec], state: Path) -> list[DiskSpec]:
    """Upstream's defaults: a sized disk is qcow2 and, unnamed, ``STATE/disk[N].img``."""
    out = []
    for i, d in enumerate(disks):
        if d.size_mb and not d.format:
            d = replace(d, format="qcow2")
        if d.size_mb and not d.path:
            d = replace(d, path=str(state / f"disk{i or ''}.img"))
        if not d.path:
            raise UserError("disk specified with no size or name", hint=DISK_HINT)
        out.append(d)
    return out


def create_missing(disks: list[DiskSpec]) -> None:
    """``qemu-img create`` every disk that does not exist yet."""
    for d in disks:
        if os.path.exists(d.path):
            log.info(f"Using existing disk [{d.path}] format {d.format or 'auto'}")
            continue
        if not d.size_mb:
            raise UserError(f"disk {d.path} does not exist", hint="give a size to create it: --disk PATH,size=1G")
        log.debug(f"Creating new qemu disk [{d.path}] format {d.format}")
        # the file name is one argument (no option string): only a protocol-looking prefix needs care
        run([find_tool("qemu-img"), "create", "-f", d.format, qemu_file(d.path), f"{d.size_mb}M"], capture=True)
