"""kernel+squashfs, kernel+erofs and kernel+iso from a real Debian cloud kernel, its modules and a
static busybox: built twice (identical bytes), checked with the file systems' own tools, and booted
under qemu TCG with the command line ``run qemu`` builds, until the rootfs's /init says it runs
on a writable overlay root."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from tests.bootkit import boot_argv, cloud_modules, marker_rootfs_tar, write_format

from linuxkit.run.qemu import RunOptions, prepare, qemu_argv

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MARKER = "LINUXKIT-ROOTIMAGE-OK-5521"
EPOCH = 1700000000
#: format → (root image file after NAME, a tool that lists it)
FORMATS = {
    "kernel+squashfs": ("-squashfs.img", ["unsquashfs", "-l"]),
    "kernel+erofs": ("-erofs.img", ["dump.erofs", "--ls", "--path=/bin"]),
    "kernel+iso": (".iso", ["xorriso", "-indev", "{}", "-find", "/"]),
}

#: /init of the image: prints the marker only when / is the loader's overlay and is writable
INIT = f"""#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc 2>/dev/null
if /bin/busybox grep -q "^root / overlay " /proc/mounts && echo ok > /written && [ "$(/bin/busybox cat /written)" = ok ]
then echo {MARKER}
else /bin/busybox cat /proc/mounts
fi
/bin/busybox poweroff -f
"""


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [t for t in ("tar2sqfs", "mkfs.erofs", "xorriso") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing tools: {missing}")
    tar = tmp_path_factory.mktemp("rootfs") / "rootfs.tar"
    return marker_rootfs_tar(tar, MARKER, modules=cloud_modules(), init=INIT)


def build(fmt: str, rootfs: Path, outdir: Path) -> list[Path]:
    return write_format(fmt, rootfs, outdir, EPOCH)


def digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_root_image_builds_identically_and_boots(fmt: str, rootfs: Path, tmp_path: Path) -> None:
    suffix, lister = FORMATS[fmt]
    first = build(fmt, rootfs, tmp_path / "a")
    time.sleep(1.1)  # a time that leaks into the image (a clock read, a directory's mtime) shows up
    second = build(fmt, rootfs, tmp_path / "b")
    names = [p.name for p in first]
    assert names == sorted(["lk-kernel", "lk-cmdline", "lk-initrd.img", f"lk{suffix}"])
    assert [digest(p) for p in first] == [digest(p) for p in second], f"{fmt}: two builds differ"
    image = tmp_path / "a" / f"lk{suffix}"
    if shutil.which(lister[0]):
        argv = [a.replace("{}", str(image)) for a in lister]
        listing = subprocess.run(argv if "{}" in " ".join(lister) else [*argv, str(image)], capture_output=True)
        assert listing.returncode == 0, listing.stderr
        assert b"busybox" in listing.stdout + listing.stderr
        # boot/ (kernel, cmdline) is left out of the root image
        assert not re.search(rb"(^|[/' ])boot([/']|$)", listing.stdout, re.M), listing.stdout.decode()
    assert (tmp_path / "a" / "lk-cmdline").read_text() == "console=ttyS0"
    # boot with the command line `linuxkit run qemu` makes for PATH (the root image attached its way)
    qemu, cfg = prepare(RunOptions(path=str(tmp_path / "a" / "lk"), networking="none", mem=512, accel="tcg"))
    assert cfg.boot.kind == {"kernel+squashfs": "squashfs", "kernel+erofs": "erofs"}.get(fmt, "kernel-iso")
    assert cfg.boot.loader
    console = boot_argv([*qemu_argv(qemu, cfg), "-no-reboot"], MARKER, timeout=180)
    assert MARKER in console
