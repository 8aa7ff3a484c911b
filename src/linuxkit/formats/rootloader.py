"""The "root loader": a small initrd that mounts a root image (squashfs, erofs or ISO 9660) for the
``kernel+squashfs``, ``kernel+erofs`` and ``kernel+iso`` formats.

Our kernels (Debian cloud) build virtio_blk, squashfs, erofs, isofs, sr_mod and overlay as modules,
so the kernel alone cannot mount such a root. The loader holds the image's own static
``bin/busybox``, the modules needed (with their dependencies, from the image's ``lib/modules``) and
an ``/init`` that loads them, finds the root image (``root=`` on the cmdline first, then every
virtio disk and CD), mounts it read-only under a tmpfs overlay (so the system is writable, as it is
from an initramfs), unmounts its ``/dev``, ``/proc`` and ``/sys`` (the system's init mounts its own,
as on a root the kernel mounted) and ``switch_root``s into the system's own ``/init``. One loader
serves all three formats, so they can be built together.

Built for ``build --verity`` (:mod:`.verity`), the loader also holds ``dm_verity`` (with its
dependencies) and Debian's ``dmsetup`` with its libraries (``formats/dmsetup``): when the command line
names a root hash it opens the image as a dm-verity device, reads it through once (every block checked:
a changed byte stops the boot before anything of the image runs) and mounts that device, never the
disk itself; a mismatch, a malformed argument or a loader without ``dmsetup`` powers the machine off
with a ``verity: ...`` message on the console.
"""

from __future__ import annotations

import io
import os
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
#: Added for ``build --verity`` (its dependencies dm_mod, dm_bufio and reed_solomon come along).
VERITY_MODULES = ("dm_verity",)
#: ``dmsetup`` in the loader, from the ``formats/dmsetup`` package tree.
DMSETUP = "sbin/dmsetup"
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


#: The loader's dm-verity steps (a plain string: the shell's braces are its own). ``$vhash``,
#: ``$vblocks``, ``$vsalt``: the command line's; the table is :func:`.verity.dm_table`'s.
_VERITY_STEPS = """\
refuse() {
	echo "verity: $*" >&2
	echo "verity: refusing to boot: the root image is not the one built" >&2
	$BB poweroff -f
	$BB sleep 2147483647
}
case "$vhash" in *[!0-9a-f]* | "") refuse "malformed linuxkit.verity=$vhash" ;; esac
[ ${#vhash} -eq 64 ] || refuse "malformed linuxkit.verity=$vhash (not 64 hex digits)"
case "$vblocks" in *[!0-9]* | "") refuse "malformed linuxkit.verity_blocks=$vblocks" ;; esac
case "$vsalt" in *[!0-9a-f]* | "") refuse "malformed linuxkit.verity_salt=$vsalt" ;; esac
[ -x /sbin/dmsetup ] || refuse "this root loader has no dmsetup (built without --verity): it cannot check the root"
verity_disk() {
	[ -b "$1" ] && [ "$($BB dd if="$1" bs=4096 skip=$vblocks count=1 2>/dev/null | $BB head -c 6)" = verity ]
}
find_disk verity_disk ||
	refuse "no disk holds a root image with its dm-verity hash tree (root=$want, virtio disks, CDs)"
table="0 $((vblocks * 8)) verity 1 $found $found 4096 4096 $vblocks $((vblocks + 1)) sha256 $vhash $vsalt"
DM_DISABLE_UDEV=1 /sbin/dmsetup create lkroot --readonly --noudevsync --table "$table" ||
	refuse "cannot set up the dm-verity device of $found"
# every block read once through the verity device: a changed byte anywhere stops the boot here
$BB dd if=/dev/mapper/lkroot of=/dev/null bs=1M 2>/dev/null ||
	refuse "root image on $found is corrupted: its blocks do not match root hash $vhash"
echo "verity: root image on $found verified (root hash $vhash)"
try_root /dev/mapper/lkroot || refuse "cannot mount the verified root image of $found"
"""


def init_script(modules: Sequence[str]) -> str:
    """The loader's ``/init``: load ``modules`` in order, mount the root image (through its dm-verity
    device when the command line names a root hash), switch into it."""
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
vhash=
vblocks=
vsalt=
for arg in $($BB cat /proc/cmdline); do
	case "$arg" in
	root=/dev/*) want=${{arg#root=}} ;;
	linuxkit.verity=*) vhash=${{arg#linuxkit.verity=}} ;;
	linuxkit.verity_blocks=*) vblocks=${{arg#linuxkit.verity_blocks=}} ;;
	linuxkit.verity_salt=*) vsalt=${{arg#linuxkit.verity_salt=}} ;;
	esac
done
try_root() {{
	[ -b "$1" ] || return 1
	for t in squashfs erofs iso9660; do
		$BB mount -t $t -o ro "$1" /lower 2>/dev/null && return 0
	done
	return 1
}}
# the first disk (root= first, then virtio disks, CDs, SCSI) for which test $1 succeeds, into $found; waits
# for disks to appear
find_disk() {{
	i=0
	while [ $i -lt {WAIT_SECONDS * 10} ]; do
		for dev in $want /dev/vd? /dev/sr? /dev/sd?; do
			if "$1" "$dev"; then
				found=$dev
				return 0
			fi
		done
		$BB usleep 100000
		i=$((i + 1))
	done
	return 1
}}
found=
if [ -n "$vhash$vblocks$vsalt" ]; then
{_VERITY_STEPS}else
find_disk try_root || fail "no root image found (root=$want, virtio disks, CDs)"
fi
[ -x /lower/init ] || [ -L /lower/init ] || fail "$found has no /init"
$BB mount -t tmpfs -o mode=0755 rw /rw || fail "cannot mount the tmpfs overlay"
$BB mkdir -p /rw/upper /rw/work
$BB mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work root /newroot || fail "overlay mount failed"
# the system's init mounts /dev, /proc and /sys itself, as on a root the kernel mounted (pkg/init's
# rc.init takes a mounted /proc for a start in a container and skips its mounts: no cgroups)
$BB umount /dev /proc /sys || fail "cannot unmount the loader's /dev, /proc, /sys"
$BB mkdir -p /newroot/dev /newroot/proc /newroot/sys
exec $BB switch_root /newroot /init
"""


def chosen_modules(parts: LoaderParts, *, verity: bool = False) -> list[str]:
    """The modules the loader loads, dependencies first (with ``verity``, those of dm-verity too)."""
    required = (*REQUIRED_MODULES, *VERITY_MODULES) if verity else REQUIRED_MODULES
    wanted = [m for m in required if m not in parts.builtin]
    return load_order(parts.modules, wanted, [m for m in OPTIONAL_MODULES if m not in parts.builtin])


def read_files(rootfs: IO[bytes], paths: set[str]) -> dict[str, bytes]:
    """The data of the regular files ``paths`` of a rootfs tar."""
    found: dict[str, bytes] = {}
    for entry in read_entries(rootfs):
        if entry.header.name in paths and entry.header.typeflag == REG:
            found[entry.header.name] = read_all(entry.data, entry.header.size)
    return found


def add_tree(cpio: CpioWriter, root: Path) -> None:
    """Add the directories, regular files and symlinks below ``root`` (a tree this tool unpacked from a
    package of its own), in path order, owned by root, with fixed times."""
    found: list[Path] = []
    for top, dirs, files in os.walk(root):  # symlinks to directories are listed, never followed
        found.extend(Path(top, name) for name in (*dirs, *files))
    for path in sorted(found, key=lambda p: p.relative_to(root).as_posix()):
        name = path.relative_to(root).as_posix().encode()
        if path.is_symlink():
            cpio.add_symlink(name, os.fsencode(os.readlink(path)))
        elif path.is_dir():
            cpio.add_dir(name)
        elif path.is_file():
            cpio.add_file(name, path.read_bytes(), mode=0o755 if os.access(path, os.X_OK) else 0o644)


def write_loader(
    parts: LoaderParts, order: Sequence[str], data: dict[str, bytes], out: IO[bytes], tools: Path | None = None
) -> None:
    """Write the loader initrd (gzip'd newc cpio) to ``out``: busybox, ``/init``, the modules ``order``
    (their bytes in ``data``, by tar path) and, for ``--verity``, the ``tools`` tree (dmsetup)."""
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
        if tools is not None:
            add_tree(cpio, tools)
        cpio.close()


def make_loader(rootfs_tar: Path, dest: Path, verity_tools: Path | None = None) -> list[str]:
    """Read the parts from ``rootfs_tar`` and write the loader initrd to ``dest``; ``verity_tools``: the
    ``formats/dmsetup`` tree for ``build --verity`` (with the dm-verity modules)."""
    with open(rootfs_tar, "rb") as src:
        parts = collect_loader_parts(src)
    if verity_tools is not None and not (verity_tools / DMSETUP).is_file():
        raise BuildError(f"the dmsetup package tree {verity_tools} has no {DMSETUP}")
    order = chosen_modules(parts, verity=verity_tools is not None)
    with open(rootfs_tar, "rb") as src:
        data = read_files(src, {parts.modules[m].path for m in order})
    with open(dest, "wb") as out:
        write_loader(parts, order, data, out, verity_tools)
    return order
