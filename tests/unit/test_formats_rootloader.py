"""The root loader's pure parts: module load order, the /init script, what it takes from a rootfs
tar, and the format table's checks for the root-image formats and rpi3."""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from linuxkit.errors import BuildError, UserError
from linuxkit.formats.registry import validate_formats
from linuxkit.formats.rootloader import (
    KernelModule,
    LoaderParts,
    collect_loader_parts,
    init_script,
    is_static_elf,
    load_order,
    module_name,
    write_loader,
)


def _mods(**deps: tuple[str, ...]) -> dict[str, KernelModule]:
    return {n: KernelModule(n, f"lib/modules/6.1/kernel/{n}.ko", d) for n, d in deps.items()}


def test_module_name_normalises_dashes() -> None:
    assert module_name("lib/modules/6.1/kernel/drivers/virtio/virtio-pci.ko") == "virtio_pci"


def test_load_order_puts_dependencies_first_and_skips_absent_optional_ones() -> None:
    mods = _mods(virtio=(), virtio_ring=(), virtio_pci=("virtio", "virtio_ring"), virtio_blk=("virtio",), ahci=())
    order = load_order(mods, ["virtio_blk", "virtio_pci"], ["ata_piix", "ahci"])
    assert order == ["virtio", "virtio_blk", "virtio_ring", "virtio_pci", "ahci"]


def test_load_order_errors() -> None:
    with pytest.raises(BuildError, match="lacks the kernel modules the root loader needs: erofs"):
        load_order(_mods(squashfs=()), ["squashfs", "erofs"], [])
    with pytest.raises(BuildError, match="depends on zstd, which the image lacks"):
        load_order(_mods(squashfs=("zstd",)), ["squashfs"], [])
    with pytest.raises(BuildError, match="loop"):
        load_order(_mods(a=("b",), b=("a",)), ["a"], [])


def test_init_script_loads_in_order_and_switches_root() -> None:
    text = init_script(["virtio", "virtio_blk"])
    assert text.startswith("#!/bin/busybox sh\n")
    assert "for m in virtio virtio_blk; do" in text
    assert "lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work" in text
    assert text.rstrip().endswith("exec $BB switch_root /newroot /init")
    if shutil.which("sh"):
        assert subprocess.run(["sh", "-n"], input=text.encode()).returncode == 0


def _tar(files: dict[str, bytes], links: dict[str, str] | None = None) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    buf.seek(0)
    return buf


def test_collect_needs_a_static_regular_busybox() -> None:
    with pytest.raises(BuildError, match="no bin/busybox"):
        collect_loader_parts(_tar({"etc/x": b"1"}))
    with pytest.raises(BuildError, match="not a regular file"):
        collect_loader_parts(_tar({}, {"bin/busybox": "/usr/bin/busybox"}))
    dynamic = Path(sys.executable).resolve().read_bytes()
    assert not is_static_elf(dynamic)
    with pytest.raises(BuildError, match="not a static executable"):
        collect_loader_parts(_tar({"bin/busybox": dynamic}))


def test_loader_cpio_holds_busybox_init_and_modules() -> None:
    busybox = b"\x7fELF-static"
    parts = LoaderParts(busybox, _mods(overlay=()), frozenset())
    out = io.BytesIO()
    write_loader(parts, ["overlay"], {"lib/modules/6.1/kernel/overlay.ko": b"KO"}, out)
    cpio = gzip.decompress(out.getvalue())
    assert out.getvalue()[4:8] == bytes(4)  # gzip mtime 0: identical rebuilds
    for name in (b"bin/busybox\0", b"init\0", b"modules/overlay.ko\0", b"dev/console\0"):
        assert name in cpio
    assert b"for m in overlay; do" in cpio and busybox in cpio and b"KO" in cpio


def test_validate_formats_root_images_and_rpi3() -> None:
    assert [f.name for f in validate_formats(["kernel+squashfs", "kernel+erofs", "kernel+iso"])] == [
        "kernel+squashfs",
        "kernel+erofs",
        "kernel+iso",
    ]
    with pytest.raises(UserError, match=r"both write NAME-initrd\.img") as err:
        validate_formats(["kernel+initrd", "kernel+erofs"])
    assert err.value.exit_code == 2
    with pytest.raises(UserError, match="rpi3 builds only for arm64") as err:
        validate_formats(["rpi3"], "amd64")
    assert "--arch arm64" in (err.value.hint or "")
