"""The hostile-input corpus: images, kernel tars and YAML crafted as an attacker would, aimed at a
sandbox "host" directory, and the checks that nothing outside a build's own directories changed.

The sandbox is world-writable on purpose: a build running as root drops to an unprivileged user for
the steps that unpack trees, so only a sandbox that user could write shows whether the tree writer
itself keeps to its root (defence in depth must not hide a bug in the first line).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.imagefactory import ImageSpec, directory, file, hardlink, layer_tar, symlink

#: files of the sandbox host: relative path → content
HOST_FILES = {
    "etc/hosts": b"127.0.0.1 host's own\n",
    "etc/resolv.conf": b"nameserver 192.0.2.1\n",
    "etc/mtab": b"host mtab\n",
    "etc/shadow": b"root:host-secret:::\n",
    "secret/secret.txt": b"HOST-SECRET-7d1f\n",
    "dir/keep": b"keep\n",
    "file": b"host file\n",
}
SECRET = b"HOST-SECRET-7d1f"
#: a file the initrd stores once (64 KiB-16 MiB, twice in init1), then named again by init2 with other bytes:
#: a writer that rewrote the shared inode would change init1's copy too
DEDUPED = b"init1's copy\n" * 6000
REPLACED = b"init2's copy\n" * 6000
BUSYBOX = Path("/bin/busybox")
ROOT_LOADER_MODULES = ("virtio_pci", "virtio_blk", "virtio_scsi", "sr_mod", "squashfs", "erofs", "isofs", "overlay")


@contextmanager
def sandbox_host() -> Iterator[Path]:
    """A world-writable directory tree standing for the host's files, in the system temp directory
    (reachable by any user), removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="lk-hostile-host."))
    try:
        root.chmod(0o777)
        for rel, data in HOST_FILES.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.parent.chmod(0o777)
            path.write_bytes(data)
            path.chmod(0o666)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every path below ``root`` with its mode, owner and content digest (symlinks: their target)."""
    out: dict[str, tuple[int, int, str]] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(dirpath) / name
            st = path.lstat()
            if path.is_symlink():
                digest = "-> " + os.readlink(path)
            elif path.is_file():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                digest = "dir"
            out[str(path.relative_to(root))] = (st.st_mode, st.st_uid, digest)
    return out


def kernel_tar(host: Path) -> bytes:
    """A ``kernel.tar`` that tries to read and write through symlinks and dangling hard links."""
    builtin = "".join(f"kernel/{m}.ko\n" for m in ROOT_LOADER_MODULES)
    entries = [
        directory("lib"),
        directory("lib/modules"),
        file("lib/modules/ok.ko", b"module"),
        # every module the root loader of kernel+squashfs/erofs/iso wants, said to be built in
        directory("lib/modules/6.1.0"),
        file("lib/modules/6.1.0/modules.builtin", builtin),
        symlink("hs", str(host / "secret")),
        hardlink("leak", "hs/secret.txt"),  # a host file copied in
        hardlink("shadow", "/etc/shadow"),  # dangling: nothing of that name in the tar
        symlink("kdir", str(host / "dir")),
        file("kdir/pwned-by-kernel-tar", b"pwned"),  # below a symlink
        file("../../kernel-escape", b"pwned"),
    ]
    buf = io.BytesIO()
    layer_tar(entries, buf)
    return buf.getvalue()


def images(host: Path) -> list[ImageSpec]:
    """The images of :data:`YAML`: kernel, two init images and two containers, all hostile."""
    return [
        ImageSpec(
            "docker.io/hostile/kernel:1",
            [[file("kernel", b"\x00KERNEL" * 64), file("kernel.tar", kernel_tar(host))]],
        ),
        ImageSpec(
            "docker.io/hostile/init1:1",
            [
                [
                    directory("bin"),
                    file("bin/init", "#!/bin/sh\n", 0o755),
                    # the root loader of kernel+squashfs/erofs/iso needs a static busybox (busybox-static)
                    file("bin/busybox", BUSYBOX.read_bytes() if BUSYBOX.exists() else b"", 0o755),
                    symlink("evil", str(host / "dir")),
                    symlink("abs", str(host / "file")),
                    symlink("up", "../../../../../../../.."),
                    symlink("evil2", str(host / "dir")),  # only files: names something below it
                    file("bin/dup", DEDUPED, 0o755),
                    file("bin/dup-same", DEDUPED, 0o755),
                    # what rpi3/rpi3-img copy to the boot partition: the firmware and the device trees, with
                    # links that name host files and names that climb out
                    directory("usr/lib/raspi-firmware"),
                    file("usr/lib/raspi-firmware/bootcode.bin", "bootcode"),
                    file("usr/lib/raspi-firmware/start.elf", "start"),
                    file("usr/lib/raspi-firmware/fixup.dat", "fixup"),
                    symlink("usr/lib/raspi-firmware/evil.dat", str(host / "secret/secret.txt")),
                    symlink("usr/lib/raspi-firmware/up", "../../../../../../.."),
                    directory("boot"),
                    directory("boot/dtb"),
                    symlink("boot/dtb/broadcom", str(host / "secret")),
                ]
            ],
        ),
        ImageSpec(
            "docker.io/hostile/init2:1",
            [
                [
                    directory("bin"),  # the same directory in two images: the normal case
                    file("bin/sh", "sh", 0o755),
                    file("bin/dup", REPLACED, 0o755),  # the path of a stored-once file, named again
                    file("boot/dtb/broadcom/bcm2837-rpi-3-b.dtb", "dtb"),  # below init1's symlink to the host
                    file("evil/pwned", "pwned"),  # below image 1's symlink
                    file("abs", "overwritten?"),  # replaces the symlink, never writes through it
                    file("up/tmp/pwned", "pwned"),
                    hardlink("hl", "abs"),
                    directory("evil"),  # a later directory replaces the symlink
                    file("evil/inside", "inside"),
                ]
            ],
        ),
        ImageSpec(
            "docker.io/hostile/onboot:1",
            # etc -> host: the sanitised etc/hosts, etc/resolv.conf, etc/mtab would land there
            [[symlink("etc", str(host / "etc")), file("bin/true", "", 0o755)]],
        ),
        ImageSpec(
            "docker.io/hostile/service:1",
            [[symlink("etc", "/etc"), symlink("var", str(host / "dir")), file("bin/svc", "", 0o755)]],
        ),
    ]


YAML = """\
kernel:
  image: docker.io/hostile/kernel:1
  cmdline: "console=ttyS0"
init:
  - docker.io/hostile/init1:1
  - docker.io/hostile/init2:1
onboot:
  - name: evil
    image: docker.io/hostile/onboot:1
services:
  - name: svc
    image: docker.io/hostile/service:1
files:
  - path: evil/from-yaml
    contents: "below a symlink in the image (a later image made evil a directory)"
  - path: evil2/pwned-from-yaml
    contents: "below a symlink to the host"
  - path: up/tmp/pwned-from-yaml
    contents: "below a symlink climbing out"
  - path: etc/motd
    contents: "a file next to the image's own"
"""


def unsafe_names(names: list[str]) -> list[str]:
    """The names (or ``name -> link target`` of hard links) that would climb out of a root."""
    bad = []
    for name in names:
        parts = name.split("/")
        if name.startswith("/") or ".." in parts:
            bad.append(name)
    return bad
