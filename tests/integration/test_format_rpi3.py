"""``rpi3`` and ``rpi3-img`` built from examples/rpi3.yml (arm64, cross-built from the Debian archive):
each file checked against the Debian package it comes from (dpkg-deb), the SD-card image's partition
table (sfdisk) and FAT (fsck.vfat -n, mtools), two builds byte-identical, and the kernel, device tree and
initrd taken from the output booted under ``qemu-system-aarch64 -M raspi3b`` to the console marker."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from tests.bootkit import boot_argv
from tests.conftest import ROOT
from tests.integration.test_guest_boot import _env, lk

from linuxkit.formats.rpi import config_txt
from linuxkit.packages.lockfile import read_lock

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLE = ROOT / "examples" / "rpi3.yml"
FIRMWARE = [
    "bootcode.bin",
    *(f"start{v}.elf" for v in ("", "_cd", "_db", "_x", "4", "4cd", "4db", "4x")),
    *(f"fixup{v}.dat" for v in ("", "_cd", "_db", "_x", "4", "4cd", "4db", "4x")),
]
DTBS = [
    "bcm2711-rpi-4-b.dtb",
    "bcm2711-rpi-400.dtb",
    "bcm2711-rpi-cm4-io.dtb",
    "bcm2837-rpi-3-a-plus.dtb",
    "bcm2837-rpi-3-b-plus.dtb",
    "bcm2837-rpi-3-b.dtb",
    "bcm2837-rpi-cm3-io3.dtb",
    "bcm2837-rpi-zero-2-w.dtb",
]
CMDLINE = "console=tty1 console=ttyS1,115200"
PARTITION_START = 4 << 20


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rpi3-cache")


@pytest.fixture(scope="module")
def built(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two builds of both formats into two directories (the packages built once, by the first)."""
    dirs = []
    for name in ("a", "b"):
        out = tmp_path_factory.mktemp(f"rpi3-{name}")
        start = time.monotonic()
        lk(cache, "build", "--arch", "arm64", "--format", "rpi3,rpi3-img", "--dir", out, EXAMPLE, timeout=1800)
        print(f"build {name}: {time.monotonic() - start:.1f}s")
        dirs.append(out)
    return dirs[0], dirs[1]


def _deb_file(cache: Path, pkg_dir: str, package: str, member: str, work: Path) -> bytes:
    """``member`` of ``package`` as pinned by ``pkg/PKG_DIR/debian.lock``, read with dpkg-deb from the .deb
    the build downloaded (the Debian cache keeps each under its sha256)."""
    lock = read_lock(ROOT / "pkg" / pkg_dir / "debian.lock")
    assert lock is not None
    ref = next(r for r in lock.arches["arm64"] if r.name == package)
    deb = Path(_env(cache)["LINUXKIT_DEBIAN_CACHE"]) / "debs" / f"{ref.sha256}.deb"
    assert deb.is_file(), deb
    dest = work / package
    if not dest.is_dir():
        dest.mkdir(parents=True)
        subprocess.run(["dpkg-deb", "-x", deb, dest], check=True)
    return (dest / member).read_bytes()


def _tar_files(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tf:
        out = {}
        for member in tf.getmembers():
            assert member.isfile(), member.name
            data = tf.extractfile(member)
            assert data is not None
            out[member.name] = data.read()
        return out


def test_tar_holds_firmware_config_device_trees_kernel_and_initrd(
    built: tuple[Path, Path], cache: Path, tmp_path: Path
) -> None:
    tar = built[0] / "rpi3.tar"
    files = _tar_files(tar)
    print(f"rpi3.tar: {tar.stat().st_size / 1e6:.1f} MB")
    names = [*FIRMWARE, "LICENCE.broadcom", *DTBS, "config.txt", "cmdline.txt", "kernel8.img", "initrd.img"]
    assert sorted(files) == sorted(names)
    for name in FIRMWARE:
        assert files[name] == _deb_file(
            cache, "rpi-firmware", "raspi-firmware", f"usr/lib/raspi-firmware/{name}", tmp_path
        )
    copyright = _deb_file(cache, "rpi-firmware", "raspi-firmware", "usr/share/doc/raspi-firmware/copyright", tmp_path)
    assert files["LICENCE.broadcom"] == copyright and b"Broadcom" in copyright
    lock = read_lock(ROOT / "pkg" / "kernel-rpi" / "debian.lock")
    assert lock is not None
    kernel_pkg = next(r.name for r in lock.arches["arm64"] if r.name.startswith("linux-image-6"))
    version = kernel_pkg[len("linux-image-") :]
    for name in DTBS:
        member = f"usr/lib/linux-image-{version}/broadcom/{name}"
        assert files[name] == _deb_file(cache, "kernel-rpi", kernel_pkg, member, tmp_path), name
    # Debian's arm64 vmlinuz is an uncompressed Image: stored as it is
    assert files["kernel8.img"] == _deb_file(cache, "kernel-rpi", kernel_pkg, f"boot/vmlinuz-{version}", tmp_path)
    assert files["kernel8.img"][56:60] == b"ARM\x64"  # the arm64 Image header's magic
    assert files["config.txt"] == config_txt()
    assert files["cmdline.txt"] == (CMDLINE + "\n").encode()
    # the initrd: the system (init, containers, the kernel's modules) without what boot/ holds and the firmware
    listing = subprocess.run(
        ["cpio", "-it", "--quiet"], input=gzip.decompress(files["initrd.img"]), capture_output=True, check=True
    )
    names = listing.stdout.decode().split()
    assert "init" in names and "containers/onboot/000-hello/config.json" in names
    assert any(n.startswith(f"lib/modules/{version}/kernel/drivers/mmc/host/") for n in names)
    assert not [n for n in names if n.startswith(("boot/", "usr/lib/raspi-firmware"))]


def test_sd_image_is_one_fat32_partition_with_the_same_files(built: tuple[Path, Path], tmp_path: Path) -> None:
    image = built[0] / "rpi3-rpi3.img"
    table = json.loads(subprocess.run(["sfdisk", "-J", image], capture_output=True, check=True).stdout)
    table = table["partitiontable"]
    assert table["label"] == "dos"
    [part] = table["partitions"]
    assert part["start"] * 512 == PARTITION_START and part["type"] == "c" and part.get("bootable") is True
    size = part["size"] * 512
    fat = tmp_path / "part.fat"
    with open(image, "rb") as src, open(fat, "wb") as dst:
        src.seek(PARTITION_START)
        left = size
        while left:
            chunk = src.read(min(left, 1 << 20))
            dst.write(chunk)
            left -= len(chunk)
    fsck = subprocess.run(["fsck.vfat", "-n", fat], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    files = _tar_files(built[0] / "rpi3.tar")
    listing = subprocess.run(["mdir", "-b", "-i", fat, "::/"], capture_output=True, text=True, check=True)
    assert sorted(line.removeprefix("::/") for line in listing.stdout.split()) == sorted(files)
    out = tmp_path / "copied"
    out.mkdir()
    subprocess.run(["mcopy", "-s", "-i", fat, "::/*", out], check=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    for name, data in files.items():
        assert (out / name).read_bytes() == data, name


def test_two_builds_are_byte_identical(built: tuple[Path, Path]) -> None:
    for name in ("rpi3.tar", "rpi3-rpi3.img"):
        digests = set()
        for out in built:
            with open(out / name, "rb") as fh:
                digests.add(hashlib.file_digest(fh, "sha256").hexdigest())
        assert len(digests) == 1, name


def test_kernel_device_tree_and_initrd_boot_on_raspi3b(built: tuple[Path, Path], tmp_path: Path) -> None:
    """The files of the tar, as the Pi's firmware would load them, booted on qemu's Raspberry Pi 3 B (1 GiB,
    4 Cortex-A53): the console of cmdline.txt, ttyS1, is the mini UART, qemu's second serial port."""
    with tarfile.open(built[0] / "rpi3.tar") as tf:
        tf.extractall(tmp_path, filter="data")
    cmdline = (tmp_path / "cmdline.txt").read_text().strip()
    argv = [
        "qemu-system-aarch64",
        "-M", "raspi3b",
        "-m", "1G",
        "-kernel", str(tmp_path / "kernel8.img"),
        "-dtb", str(tmp_path / "bcm2837-rpi-3-b.dtb"),
        "-initrd", str(tmp_path / "initrd.img"),
        "-append", cmdline,
        "-display", "none",
        "-monitor", "none",
        "-serial", "null",  # the PL011 (ttyAMA0: the Bluetooth UART on a real Pi 3)
        "-serial", "stdio",  # the mini UART (ttyS1, GPIO 14/15)
        "-no-reboot",
    ]  # fmt: skip
    start = time.monotonic()
    console = boot_argv(argv, "hello from an onboot container", timeout=900)
    print(f"raspi3b: kernel start to the onboot container's line in {time.monotonic() - start:.1f}s")
    assert "Welcome to LinuxKit" in console
    assert "Machine model: Raspberry Pi 3 Model B" in console, console[-3000:]


def test_the_pi_kernel_reads_the_sd_image_partition_table(built: tuple[Path, Path], tmp_path: Path) -> None:
    """The SD-card image as qemu's raspi3b SD card (1 GiB: a power of two, as qemu wants): the kernel's SD
    host driver (a module, loaded by its modalias) finds the card and its one partition."""
    with tarfile.open(built[0] / "rpi3.tar") as tf:
        tf.extractall(tmp_path, filter="data")
    card = tmp_path / "card.img"
    shutil.copyfile(built[0] / "rpi3-rpi3.img", card)  # qemu writes to the card: keep the build's output
    argv = [
        "qemu-system-aarch64",
        "-M", "raspi3b",
        "-m", "1G",
        "-kernel", str(tmp_path / "kernel8.img"),
        "-dtb", str(tmp_path / "bcm2837-rpi-3-b.dtb"),
        "-initrd", str(tmp_path / "initrd.img"),
        "-append", (tmp_path / "cmdline.txt").read_text().strip(),
        "-drive", f"file={card},if=sd,format=raw",
        "-display", "none",
        "-monitor", "none",
        "-serial", "null",
        "-serial", "stdio",
        "-no-reboot",
    ]  # fmt: skip
    console = boot_argv(argv, "mmcblk0: p1", timeout=900)
    assert "mmcblk0: mmc0:" in console and "1.00 GiB" in console, console[-3000:]
