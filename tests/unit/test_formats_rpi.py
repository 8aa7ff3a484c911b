"""The ``rpi3`` format's pure parts: config.txt, cmdline.txt, which rootfs entries go to the boot partition,
the split of a rootfs tar (firmware, device trees, kernel, initrd) and the tar's layout and bytes."""

from __future__ import annotations

import gzip
import io
import re
import tarfile
from pathlib import Path

import pytest

from linuxkit.errors import BuildError, UserError
from linuxkit.formats.registry import FormatContext, find
from linuxkit.formats.rpi import boot_file_name, cmdline_txt, config_txt, rpi_boot
from linuxkit.outputs import OutputSet

KERNEL = b"ARM64 Image" + bytes(range(256)) * 64
FIRMWARE = {
    "bootcode.bin": b"boot",
    "start.elf": b"start",
    "fixup.dat": b"fixup",
    "start4.elf": b"start4",
    "LICENCE.broadcom": b"terms",
}
DTBS = {"bcm2837-rpi-3-b.dtb": b"dtb3", "bcm2711-rpi-4-b.dtb": b"dtb4"}


def _rootfs(
    path: Path, *, skip: tuple[str, ...] = (), kernel: bytes = KERNEL, extra: dict[str, bytes] | None = None
) -> Path:
    entries: dict[str, bytes | None] = {
        "boot/": None,
        "boot/kernel": kernel,
        "boot/cmdline": b"console=tty1  console=ttyS1,115200\n",
        "boot/dtb/": None,
        "boot/dtb/broadcom/": None,
        **{f"boot/dtb/broadcom/{k}": v for k, v in DTBS.items()},
        "boot/dtb/freescale/imx8mq-evk.dtb": b"imx",
        "bin/": None,
        "bin/sh": b"#!busybox",
        "usr/": None,
        "usr/lib/": None,
        "usr/lib/raspi-firmware/": None,
        **{f"usr/lib/raspi-firmware/{k}": v for k, v in FIRMWARE.items()},
        "usr/lib/raspi-firmware/notes.txt": b"not firmware",
        "usr/lib/other/start.elf": b"elsewhere",
        **(extra or {}),
    }
    with tarfile.open(path, "w") as tf:
        for name, data in entries.items():
            if name in skip:
                continue
            info = tarfile.TarInfo(name.rstrip("/"))
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tf.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                tf.addfile(info, io.BytesIO(data))
    return path


def _initrd_names(initrd: Path) -> list[str]:
    data = gzip.decompress(initrd.read_bytes())
    names = []
    pos = 0
    while True:
        header = data[pos : pos + 110]
        namesize, filesize = int(header[94:102], 16), int(header[54:62], 16)
        name = data[pos + 110 : pos + 110 + namesize - 1].decode()
        if name == "TRAILER!!!":
            return names
        names.append(name)
        pos = (pos + 110 + namesize + 3) // 4 * 4
        pos = (pos + filesize + 3) // 4 * 4


def test_config_txt_starts_the_kernel_in_64_bit_mode_with_the_initrd() -> None:
    lines = config_txt().decode().splitlines()
    settings = [line for line in lines if line and not line.startswith("#")]
    assert settings == [
        "arm_64bit=1",
        "enable_uart=1",
        "upstream_kernel=1",
        "kernel=kernel8.img",
        "initramfs initrd.img followkernel",
    ]


def test_cmdline_txt_is_one_line() -> None:
    assert cmdline_txt("console=tty1\n  console=ttyS1,115200 \n") == b"console=tty1 console=ttyS1,115200\n"
    assert cmdline_txt("") == b"\n"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("usr/lib/raspi-firmware/start.elf", ("firmware", "start.elf")),
        ("usr/lib/raspi-firmware/fixup4cd.dat", ("firmware", "fixup4cd.dat")),
        ("usr/lib/raspi-firmware/bootcode.bin", ("firmware", "bootcode.bin")),
        ("usr/lib/raspi-firmware/LICENCE.broadcom", ("firmware", "LICENCE.broadcom")),
        ("boot/dtb/broadcom/bcm2837-rpi-3-b.dtb", ("dtb", "bcm2837-rpi-3-b.dtb")),
        ("usr/lib/raspi-firmware/notes.txt", None),
        ("usr/lib/raspi-firmware/sub/start.elf", None),
        ("usr/lib/raspi-firmware/..elf", None),
        ("boot/dtb/broadcom/overlays/x.dtb", None),
        ("boot/dtb/freescale/imx8mq-evk.dtb", None),
        ("usr/lib/other/start.elf", None),
    ],
)
def test_boot_file_names(name: str, expected: tuple[str, str] | None) -> None:
    assert boot_file_name(name) == expected


def test_rootfs_is_split_into_the_boot_partition_files(tmp_path: Path) -> None:
    boot = rpi_boot(_rootfs(tmp_path / "rootfs.tar"), tmp_path / "work")
    assert sorted(boot.files) == sorted([*FIRMWARE, *DTBS, "kernel8.img", "initrd.img", "config.txt", "cmdline.txt"])
    for name, data in {**FIRMWARE, **DTBS}.items():
        assert boot.files[name].read_bytes() == data
    assert boot.files["kernel8.img"].read_bytes() == KERNEL
    assert boot.files["cmdline.txt"].read_bytes() == b"console=tty1 console=ttyS1,115200\n"
    assert boot.files["config.txt"].read_bytes() == config_txt()
    # the initrd has the system without boot/ and without the firmware's directory
    names = _initrd_names(boot.files["initrd.img"])
    assert "bin/sh" in names and "usr/lib/other/start.elf" in names
    assert not [n for n in names if n.startswith(("boot", "usr/lib/raspi-firmware"))], names


def test_a_hard_link_to_a_firmware_file_is_a_copy_of_it(tmp_path: Path) -> None:
    rootfs = _rootfs(tmp_path / "rootfs.tar")
    with tarfile.open(rootfs, "a") as tf:
        link = tarfile.TarInfo("usr/lib/raspi-firmware/start_cd.elf")
        link.type = tarfile.LNKTYPE
        link.linkname = "usr/lib/raspi-firmware/start.elf"
        tf.addfile(link)
        stray = tarfile.TarInfo("usr/lib/raspi-firmware/start4cd.elf")
        stray.type = tarfile.LNKTYPE
        stray.linkname = "bin/sh"
        tf.addfile(stray)
    with pytest.raises(BuildError, match="hard link to 'bin/sh'"):
        rpi_boot(rootfs, tmp_path / "work")
    with tarfile.open(rootfs) as tf:
        members = [m for m in tf.getmembers() if m.name != "usr/lib/raspi-firmware/start4cd.elf"]
        kept = tmp_path / "kept.tar"
        with tarfile.open(kept, "w") as out:
            for m in members:
                out.addfile(m, tf.extractfile(m) if m.isfile() else None)
    boot = rpi_boot(kept, tmp_path / "work2")
    assert boot.files["start_cd.elf"].read_bytes() == FIRMWARE["start.elf"]


def test_a_gzip_kernel_is_stored_decompressed(tmp_path: Path) -> None:
    packed = gzip.compress(KERNEL, mtime=0)
    boot = rpi_boot(_rootfs(tmp_path / "rootfs.tar", kernel=packed), tmp_path / "work")
    assert boot.files["kernel8.img"].read_bytes() == KERNEL


@pytest.mark.parametrize(
    ("skip", "message", "hint"),
    [
        (("usr/lib/raspi-firmware/start.elf",), "no Raspberry Pi firmware (start.elf missing", "rpi-firmware"),
        (("boot/dtb/broadcom/bcm2837-rpi-3-b.dtb",), "no Raspberry Pi 3 device tree", "pkg/kernel-rpi"),
        (("boot/kernel",), "no kernel", "kernel-rpi"),
    ],
)
def test_missing_parts_are_user_errors(tmp_path: Path, skip: tuple[str, ...], message: str, hint: str) -> None:
    with pytest.raises(UserError, match=re.escape(message)) as err:
        rpi_boot(_rootfs(tmp_path / "rootfs.tar", skip=skip), tmp_path / "work")
    assert hint in (err.value.hint or "")


def _write_rpi3(rootfs: Path, outdir: Path, epoch: int) -> Path:
    outdir.mkdir()
    fmt = find("rpi3")
    assert fmt is not None and fmt.writer is not None
    with OutputSet() as outputs:
        ctx = FormatContext(
            base=outdir / "pi", size_mb=0, arch="arm64", decompress_kernel=False, outputs=outputs, epoch=epoch
        )
        fmt.writer(ctx, rootfs)
        assert outputs.commit() == [outdir / "pi.tar"]
    return outdir / "pi.tar"


def test_tar_is_sorted_flat_fixed_and_reproducible(tmp_path: Path) -> None:
    rootfs = _rootfs(tmp_path / "rootfs.tar")
    first = _write_rpi3(rootfs, tmp_path / "a", 1700000000)
    second = _write_rpi3(rootfs, tmp_path / "b", 1700000000)
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tf:
        members = tf.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names) and all("/" not in n for n in names)
        assert {(m.uid, m.gid, m.mode, m.mtime, m.type) for m in members} == {
            (0, 0, 0o644, 1700000000, tarfile.REGTYPE)
        }
        got = tf.extractfile("bootcode.bin")
        assert got is not None and got.read() == FIRMWARE["bootcode.bin"]
    # a different epoch changes only the times
    assert _write_rpi3(rootfs, tmp_path / "c", 0).read_bytes() != first.read_bytes()
