"""The "root loader": a small initrd that mounts a root image (squashfs, erofs or ISO 9660) for the
``kernel+squashfs``, ``kernel+erofs`` and ``kernel+iso`` formats.

Our kernels (Debian cloud) build virtio_blk, squashfs, erofs, isofs, sr_mod and overlay as modules,
so the kernel alone cannot mount such a root. The loader holds the image's own static
``bin/busybox``, the modules needed (with their dependencies, from the image's ``lib/modules``) and
an ``/init`` that loads them, finds the root image (``root=`` on the cmdline first, then every
virtio disk and CD), mounts it read-only under a tmpfs overlay (so the system is writable, as it is
from an initramfs), moves ``/dev``, ``/proc`` and ``/sys`` across and ``switch_root``s into the
system's own ``/init``. One loader serves all three formats, so they can be built together.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from isal import igzip

from ..errors import BuildError
from ..packages.kmod import dependency_order, module_name, parse_modinfo
from ..tar.header import LINK, REG, SYMLINK
from ..tar.reader import read_all, read_entries
from .cpio import TYPE_CHAR, CpioWriter
from .initrd import GZIP_LEVEL

#: Modules the loader must find (dependencies are added), unless the kernel has them built in.
REQUIRED_MODULES = ("virtio_pci", "virtio_blk", "virtio_scsi", "sr_mod", "squashfs", "erofs", "isofs", "overlay")
#: Loaded when the image has them (an emulated IDE/AHCI CD-ROM, ``-cdrom``).
OPTIONAL_MODULES = ("ata_piix", "ahci")
#: How long ``/init`` waits for the root device to appear, in seconds.
WAIT_SECONDS = 20
_CHUNK = 1 << 20


@dataclass(frozen=True)
class KernelModule:
    name: str
    path: str  # in the rootfs tar
    depends: tuple[str, ...]


def modinfo_depends(ko: bytes) -> tuple[str, ...]:
    """The ``depends=`` list of a module's ``.modinfo`` section."""
    info = parse_modinfo(io.BytesIO(ko), "module")
    return tuple(module_name(d) for v in info.get("depends", []) for d in v.split(",") if d)


def is_static_elf(data: bytes) -> bool:
    """A static executable: ELF without a program interpreter."""
    try:
        elf = ELFFile(io.BytesIO(data))
        return not any(seg["p_type"] == "PT_INTERP" for seg in elf.iter_segments())
    except ELFError:
        return False


def load_order(modules: dict[str, KernelModule], wanted: Sequence[str], optional: Sequence[str]) -> list[str]:
    """``wanted`` (each must exist unless built in) and the ``optional`` ones present, dependencies first."""
    present = [name for name in optional if name in modules]
    order, missing = dependency_order(modules, [*wanted, *present], owner="the image")
    if missing:
        raise BuildError(
            "the image lacks the kernel modules the root loader needs: " + ", ".join(missing),
            hint="add them to the kernel package's modules (lib/modules/VERSION/…/NAME.ko in the rootfs), "
            "or use --format kernel+initrd",
        )
    return order


@dataclass(frozen=True)
class LoaderParts:
    busybox: bytes
    modules: dict[str, KernelModule]
    builtin: frozenset[str]


def collect_loader_parts(rootfs: IO[bytes]) -> LoaderParts:
    """Read ``bin/busybox`` and every ``lib/modules/*/**.ko`` (and ``modules.builtin``) of a rootfs tar."""
    busybox: bytes | None = None
    modules: dict[str, KernelModule] = {}
    builtin: set[str] = set()
    versions: set[str] = set()
    for entry in read_entries(rootfs):
        hdr = entry.header
        name = hdr.name
        if name == "bin/busybox":
            if hdr.typeflag != REG:
                raise BuildError(
                    "the image's bin/busybox is not a regular file: the root loader needs it as one",
                    hint="put a static busybox at /bin/busybox (the init image's)",
                )
            busybox = read_all(entry.data, hdr.size)
        elif name.startswith("lib/modules/") and hdr.typeflag in (REG, LINK, SYMLINK):
            parts = name.split("/")
            if len(parts) < 4:
                continue
            if name.endswith(".ko") and hdr.typeflag == REG:
                data = read_all(entry.data, hdr.size)
                # only the dependencies are kept: the data of the few modules chosen is read again later
                mod = KernelModule(module_name(name), name, modinfo_depends(data))
                versions.add(parts[2])
                modules.setdefault(mod.name, mod)
            elif parts[-1] == "modules.builtin" and hdr.typeflag == REG:
                text = read_all(entry.data, hdr.size).decode(errors="replace")
                builtin.update(module_name(line.strip()) for line in text.splitlines() if line.strip())
    if busybox is None:
        raise BuildError(
            "the image has no bin/busybox: the root loader of this format needs a static busybox",
            hint="add an init image that ships /bin/busybox, or use --format kernel+initrd",
        )
    if not is_static_elf(busybox):
        raise BuildError(
            "the image's bin/busybox is not a static executable: the root loader cannot run it",
            hint="use a static busybox (Debian's busybox-static), or use --format kernel+initrd",
        )
    if len(versions) > 1:
        raise BuildError(
            "the image holds kernel modules of several kernels: " + ", ".join(sorted(versions)),
            hint="keep one kernel's lib/modules in the image",
        )
    return LoaderParts(busybox, modules, frozenset(builtin))


def init_script(modules: Sequence[str]) -> str:
    """The loader's ``/init``: load ``modules`` in order, mount the root image, switch into it."""
    return f"""#!/bin/busybox sh
# LinuxKit root loader: mount the root image read-only under a tmpfs overlay, then start its /init.
BB=/bin/busybox
fail() {{
	echo "root loader: $*" >&2
	exec $BB sh
}}
$BB mkdir -p /proc /sys /dev /lower /rw /newroot
$BB mount -t proc proc /proc
$BB mount -t sysfs sysfs /sys
$BB mount -t devtmpfs dev /dev
for m in {" ".join(modules)}; do
	$BB insmod /modules/$m.ko 2>/dev/null || $BB grep -q "^$m " /proc/modules || echo "root loader: cannot load $m" >&2
done
want=
for arg in $($BB cat /proc/cmdline); do
	case "$arg" in root=/dev/*) want=${{arg#root=}} ;; esac
done
try_root() {{
	[ -b "$1" ] || return 1
	for t in squashfs erofs iso9660; do
		$BB mount -t $t -o ro "$1" /lower 2>/dev/null && return 0
	done
	return 1
}}
found=
i=0
while [ $i -lt {WAIT_SECONDS * 10} ]; do
	for dev in $want /dev/vd? /dev/sr? /dev/sd?; do
		if try_root "$dev"; then
			found=$dev
			break 2
		fi
	done
	$BB usleep 100000
	i=$((i + 1))
done
[ -n "$found" ] || fail "no root image found (root=$want, virtio disks, CDs)"
[ -x /lower/init ] || [ -L /lower/init ] || fail "$found has no /init"
$BB mount -t tmpfs -o mode=0755 rw /rw || fail "cannot mount the tmpfs overlay"
$BB mkdir -p /rw/upper /rw/work
$BB mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work root /newroot || fail "overlay mount failed"
for d in dev proc sys; do
	$BB mkdir -p /newroot/$d
	$BB mount --move /$d /newroot/$d
done
exec $BB switch_root /newroot /init
"""


def chosen_modules(parts: LoaderParts) -> list[str]:
    """The modules the loader loads, dependencies first."""
    wanted = [m for m in REQUIRED_MODULES if m not in parts.builtin]
    return load_order(parts.modules, wanted, [m for m in OPTIONAL_MODULES if m not in parts.builtin])


def read_files(rootfs: IO[bytes], paths: set[str]) -> dict[str, bytes]:
    """The data of the regular files ``paths`` of a rootfs tar."""
    found: dict[str, bytes] = {}
    for entry in read_entries(rootfs):
        if entry.header.name in paths and entry.header.typeflag == REG:
            found[entry.header.name] = read_all(entry.data, entry.header.size)
    return found


def write_loader(parts: LoaderParts, order: Sequence[str], data: dict[str, bytes], out: IO[bytes]) -> None:
    """Write the loader initrd (gzip'd newc cpio) to ``out``: busybox, ``/init`` and the modules
    ``order`` (their bytes in ``data``, by tar path)."""
    gz = igzip.IGzipFile(  # type: ignore[no-untyped-call]
        filename="", mode="wb", fileobj=out, compresslevel=GZIP_LEVEL, mtime=0
    )
    with gz:
        cpio = CpioWriter(gz)
        for d in (b"bin", b"dev", b"modules"):
            cpio.add_dir(d)
        cpio.add_device(b"dev/console", kind=TYPE_CHAR, major=5, minor=1)
        cpio.add_file(b"bin/busybox", parts.busybox, mode=0o755)
        cpio.add_file(b"init", init_script(order).encode(), mode=0o755)
        for name in order:
            cpio.add_file(f"modules/{name}.ko".encode(), data[parts.modules[name].path])
        cpio.close()


def make_loader(rootfs_tar: Path, dest: Path) -> list[str]:
    """Read the parts from ``rootfs_tar`` and write the loader initrd to ``dest``."""
    with open(rootfs_tar, "rb") as src:
        parts = collect_loader_parts(src)
    order = chosen_modules(parts)
    with open(rootfs_tar, "rb") as src:
        data = read_files(src, {parts.modules[m].path for m in order})
    with open(dest, "wb") as out:
        write_loader(parts, order, data, out)
    return order
