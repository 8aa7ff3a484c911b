"""The kernel's own unpacker on an initrd whose equal files are stored once (hard links): every file has the
content the rootfs gives it, also when a later entry names a path of a link group again (the last one wins, and
the files linked to it keep theirs). Booted under qemu (TCG) with a busybox /init that prints what it reads."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
from tests.bootkit import boot, marker_rootfs_tar

from linuxkit.formats.initrd import make_kernel_initrd

pytestmark = [pytest.mark.integration]

BIG = bytes(range(256)) * 400  # 100 KiB: above the size from which files are stored once
OTHER = bytes(reversed(range(256))) * 400

INIT = """#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev 2>/dev/null
for f in a/f b/f c/f d/runc e/runc; do
  echo "DEDUPE $f $(/bin/busybox md5sum /$f | /bin/busybox cut -d' ' -f1) $(/bin/busybox stat -c %h /$f)"
done
echo DEDUPE-DONE
/bin/busybox poweroff -f
"""


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.mode, info.mtime, info.size = 0o755, 0, len(data)
    tf.addfile(info, io.BytesIO(data))


def test_kernel_unpacks_linked_and_replaced_files_with_their_own_content(tmp_path: Path) -> None:
    rootfs = marker_rootfs_tar(tmp_path / "rootfs.tar", "unused", "console=ttyS0", init=INIT)
    with tarfile.open(rootfs, "a", format=tarfile.PAX_FORMAT) as tf:
        for d in ("a", "b", "c", "d", "e"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(info)
        _add(tf, "a/f", BIG)  # the data of the group
        _add(tf, "b/f", BIG)  # a link to a/f
        _add(tf, "a/f", OTHER)  # a/f again, other content: b/f must keep BIG
        _add(tf, "c/f", BIG)  # a/f is no longer BIG: c/f carries the data again
        _add(tf, "d/runc", BIG)  # a link to c/f
        _add(tf, "d/runc", BIG)  # the same path, the same content (two init images with one program)
        _add(tf, "e/runc", BIG)
    split = make_kernel_initrd(rootfs, tmp_path / "out")
    console = boot(
        ["-kernel", str(split.kernel), "-initrd", str(split.initrd), "-append", "console=ttyS0"], "DEDUPE-DONE"
    )
    big, other = hashlib.md5(BIG).hexdigest(), hashlib.md5(OTHER).hexdigest()
    seen = dict(
        line.split()[1:3:1] for line in console.splitlines() if line.startswith("DEDUPE ") and len(line.split()) == 4
    )
    assert seen == {"a/f": other, "b/f": big, "c/f": big, "d/runc": big, "e/runc": big}, console[-2000:]
    links = {line.split()[1]: int(line.split()[3]) for line in console.splitlines() if line.startswith("DEDUPE ")}
    assert links["a/f"] == 1 and links["b/f"] == 1  # a/f was unlinked from b/f's inode before it was written again
    assert links["c/f"] == links["e/runc"] >= 2  # stored once
