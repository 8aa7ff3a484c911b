"""Images + YAML for comparing our rootfs tar with upstream's."""

from __future__ import annotations

import gzip
import tarfile

from rootfs_fakes import FakeSource, chardev, directory, fifo, file, hardlink, layer, symlink, whiteout


def kernel_image():
    inner = layer(
        directory("lib/"),
        directory("lib/modules/"),
        file("lib/modules/mod.ko", b"MODULE" * 50),
        hardlink("lib/modules/mod2.ko", "lib/modules/mod.ko"),
        fmt=tarfile.GNU_FORMAT,
    )
    kern = gzip.compress(b"\x00KERNEL" * 1000, mtime=0)
    l0 = layer(
        directory("etc/"),
        file("etc/hosts", "x"),
        file("kernel", kern, mode=0o644),
        file("kernel.tar", inner),
        file("ucode.cpio", b"UCODE" * 10),
        file("kernel-dev.tar", b"junk"),
    )
    return FakeSource("docker.io/library/testkernel:1", [l0])


def init_image():
    l0 = layer(
        directory("./"),
        directory("bin/"),
        file("bin/busybox", b"BB" * 300, mode=0o755),
        hardlink("bin/sh", "bin/busybox"),
        hardlink("bin/ls", "./bin/busybox"),
        directory("etc/"),
        file("etc/hosts", "orig"),
        file("etc/resolv.conf", "nameserver 1.1.1.1"),
        file("etc/hostname", "h"),
        file("etc/passwd", "root:x:0:0"),
        file("etc/gone", "g"),
        directory("lib/"),
        directory("lib/apk/"),
        directory("lib/apk/db/"),
        file("lib/apk/db/installed", "P:busybox\n"),
        directory("dev/"),
        chardev("dev/console", 5, 1),
        chardev("dev/null", 1, 3, mode=0o666),
        fifo("dev/fifo"),
        file(".dockerenv"),
        file("Dockerfile", "FROM x"),
        directory("usr/"),
        directory("usr/bin/"),
        file("usr/bin/su", "SU", mode=0o4755),
        directory("tmp/", mode=0o1777),
        file("usr/bin/sg", "SG", mode=0o2755),
        file("bigid", "x", uid=3000000, gid=3000001, uname="averyveryverylongusernamethatisover32", gname="g"),
        file("a" * 60 + "/" + "b" * 70, "long"),
        symlink("usr/lib", "../lib"),
        file("nanos", "n", mtime=1600000000.5),
        directory("olddir/"),
        file("olddir/x", "x"),
        file("olddir/y", "y"),
        file("héllo", "utf8"),
        fmt=tarfile.GNU_FORMAT,
    )
    l1 = layer(
        whiteout("etc/gone"),
        file("olddir/z", "z"),
        file("etc/passwd", "root:x:0:0:new"),
        file("c" * 120, "longname pax"),
        symlink("etc/mtab", "/proc/self/mounts"),
    )
    return FakeSource("docker.io/library/testinit:1", [l0, l1])


def init2_image():
    l0 = layer(
        directory("lib/"),
        directory("lib/apk/"),
        directory("lib/apk/db/"),
        file("lib/apk/db/installed", "P:other\n"),
        directory("etc/"),
        file("etc/other", "o"),
    )
    return FakeSource("docker.io/library/testinit2:1", [l0])


def svc_image():
    l0 = layer(
        directory("bin/"),
        file("bin/svc", "#!/bin/sh\n", mode=0o755),
        hardlink("bin/svc2", "bin/svc"),
        directory("etc/"),
        file("etc/resolv.conf", "x"),
    )
    return FakeSource("docker.io/library/svc:1", [l0], {"config": {"Cmd": ["/bin/svc"], "Env": ["PATH=/bin"]}})


def vol_image():
    l0 = layer(directory("data/"), file("data/f", "vol"))
    return FakeSource("docker.io/library/vol:1", [l0])


IMAGES = {s.name: s for s in (kernel_image(), init_image(), init2_image(), svc_image(), vol_image())}

YAML = """
kernel:
  image: testkernel:1
  cmdline: "console=ttyS0"
  ucode: ucode.cpio
init:
  - testinit:1
  - testinit2:1
volumes:
  - name: vola
    image: vol:1
  - name: volb
onboot:
  - name: first
    image: svc:1
  - name: second
    image: svc:1
    readonly: true
services:
  - name: ro
    image: svc:1
    readonly: true
    binds:
      - vola:/vola
  - name: rw
    image: vol:1
    uid: first
files:
  - path: etc/linuxkit-config
    metadata: yaml
  - path: /etc/motd
    contents: "hello"
    mode: "0644"
  - path: a/b/c/dir
    directory: true
    mode: "0750"
    uid: ro
  - path: a/b/link
    symlink: /etc/motd
  - path: var/src
    source: src.txt
  - path: var/missing
    source: missing.txt
    optional: true
"""
