"""One boot of examples/dm-crypt-loop.yml plus tests/data/guest/packages.yml under qemu (TCG): the packages of
upstream's examples (losetup, dm-crypt, swap, modprobe, sysfs, binfmt, ip, extend, ca-certificates, memlogd,
kmsg, logwrite, openntpd, acpid) checked on the serial console. The encrypted swap file is swap.yml's step
(format and mount as in swap.yml, a smaller size)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from tests.conftest import ROOT
from tests.integration.test_guest_boot import _env, lk

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DATA = ROOT / "tests" / "data" / "guest"
EXAMPLES = ROOT / "examples"


@dataclass
class Booted:
    console: str
    seconds: float


def _arm64_busybox(cache: Path, work: Path) -> Path:
    """busybox for arm64, from our busybox package built for that architecture (no emulation needed to build)."""
    yml = work / "arm64.yml"
    yml.write_text(f'init:\n  - "@pkg:{os.path.relpath(ROOT / "pkg" / "busybox", work)}"\n')
    lk(cache, "build", "--arch", "arm64", "--format", "tar", "--dir", work, yml)
    out = work / "busybox-arm64"
    with tarfile.open(work / "arm64.tar") as tar:
        member = tar.extractfile("bin/busybox")
        assert member is not None
        out.write_bytes(member.read())
    assert out.read_bytes()[18:20] == b"\xb7\x00"  # e_machine: EM_AARCH64
    return out


def _disk_with_small_partition(path: Path) -> None:
    """64 MiB raw disk: one 16 MiB Linux partition at 1 MiB holding ext4, the rest free (for extend)."""
    with open(path, "wb") as fh:
        fh.truncate(64 << 20)
    subprocess.run(["sfdisk", "-q", str(path)], input=b"2048,32768,83\n", check=True)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-E", f"offset={2048 * 512}", str(path), "16M"], check=True)


@pytest.fixture(scope="module")
def booted(tmp_path_factory: pytest.TempPathFactory) -> Booted:
    for tool in ("qemu-system-x86_64", "sfdisk", "mke2fs"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian packages qemu-system-x86, fdisk, e2fsprogs)")
    cache = tmp_path_factory.mktemp("packages-cache")
    work = tmp_path_factory.mktemp("packages")
    busybox = _arm64_busybox(cache, work)
    extra = work / "extra.yml"
    extra.write_text(f'files:\n  - path: usr/local/bin/busybox-arm64\n    source: {busybox}\n    mode: "0755"\n')
    systems = [EXAMPLES / "dm-crypt-loop.yml", DATA / "packages.yml", extra]
    lk(cache, "build", "--name", "packages", "--dir", work, *systems)
    _disk_with_small_partition(work / "small.img")
    with open(work / "whole.img", "wb") as fh:
        fh.truncate(16 << 20)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", str(work / "whole.img")], check=True)
    argv = [
        sys.executable, "-m", "linuxkit.cli.main", "run", "qemu", "--networking", "user",
        "--disk", "size=256M", "--disk", f"file={work / 'small.img'},format=raw",
        "--disk", f"file={work / 'whole.img'},format=raw", work / "packages",
    ]  # fmt: skip
    start = time.monotonic()
    proc = subprocess.run(list(map(str, argv)), capture_output=True, env=_env(cache), timeout=600, check=False)
    seconds = time.monotonic() - start
    console = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    print(f"boot took {seconds:.1f}s")
    return Booted(console, seconds)


def _tail(b: Booted) -> str:
    return b.console[-6000:]


def test_dm_crypt_loop_example_mounts_the_encrypted_file(booted: Booted) -> None:
    c = booted.console
    assert "Associating file /var/external/storage_file with loop device /dev/loop0" in c, _tail(booted)
    assert "Device /dev/mapper/crypt_loop_dev doesn't seem to contain a filesystem, creating one." in c, _tail(booted)
    # the backing file as the kernel names it from the check container (the disk's root is its mount point)
    assert "LOOP /storage_file" in c, _tail(booted)
    assert "CRYPT /dev/mapper/crypt_loop_dev ext4 secret things" in c, _tail(booted)
    # LUKS (upstream's --luks): formatted the first time, then opened; ext4 made on the mapped device
    assert "Device /dev/loop7 doesn't seem to have a valid LUKS setup so one will be created." in c, _tail(booted)
    assert "Device /dev/mapper/crypt_luks doesn't seem to contain a filesystem, creating one." in c, _tail(booted)
    assert re.search(r"onboot \d+-dm-crypt-luks: exit status 0", c), _tail(booted)


def test_encrypted_swap_is_active_and_an_unmet_condition_skips(booted: Booted) -> None:
    c = booted.console
    assert "swap: enabled /dev/mapper/swapfile (32M)" in c, _tail(booted)
    # /proc/swaps names the mapped device (as the kernel sees it from the check container's /dev); 32 MiB less the
    # swap header's page
    assert "SWAP /mapper/swapfile partition 32764" in c, _tail(booted)
    assert "swap: condition part:/var/nowhere not met: no swap file" in c, _tail(booted)


def test_sysfs_binfmt_ip_extend_format_and_certificates(booted: Booted) -> None:
    c = booted.console
    assert "sysfs: kernel/mm/transparent_hugepage/enabled = madvise" in c, _tail(booted)
    assert "SYSFS always [madvise] never" in c, _tail(booted)
    assert "binfmt: registered qemu-aarch64" in c, _tail(booted)
    assert "BINFMT aarch64" in c, _tail(booted)  # an arm64 busybox, run through qemu-aarch64 from another container
    assert "PROBE binfmt-mount binfmt_misc /proc/sys/fs/binfmt_misc" in c, _tail(booted)
    assert "IP 192.0.2.1/32" in c, _tail(booted)
    assert "extend: successfully resized /dev/vdb1 on /dev/vdb" in c, _tail(booted)
    assert "EXTEND vdb1 63 MiB" in c, _tail(booted)
    assert 'format: /dev/vdc has content: /dev/vdc: UUID="' in c, _tail(booted)
    assert "creating a dos partition table on /dev/vdc" not in c, _tail(booted)
    count = int(c.split("CA ", 1)[1].split()[0])
    assert count > 100, _tail(booted)


def test_logging_services_and_daemons(booted: Booted) -> None:
    c = booted.console
    assert "memlogd: services' logs in a 1024 KiB ring buffer" in c, _tail(booted)
    assert "PROBE kmsg-rotated=/var/log/kmsg.log.0" in c, _tail(booted)
    assert "PROBE kmsg-line (0) - " in c and "Z: Linux version" in c, _tail(booted)
    assert re.search(r"PROBE memlog kmsg: \(\d+\) - [0-9T:.-]+Z: ", c), _tail(booted)
    assert "PROBE ntpd ntp engine ready running" in c, _tail(booted)
    assert "PROBE acpid running" in c, _tail(booted)
    # the power button (its events written to its evdev node): acpid runs /etc/acpi/PWRF/00000080, init powers off
    assert "PROBE pressed the power button" in c, _tail(booted)
    assert "PROBE acpid did not power off" not in c, _tail(booted)
    assert "PROBE-DONE" in c and "Power down" in c, _tail(booted)
    # every service ended on the stop's TERM (as its container's PID 1, a shell needs a handler for that)
    assert "did not stop within" not in c, _tail(booted)


def test_the_booted_swap_step_is_swap_yml_s() -> None:
    """The swap step booted here (with the other packages) is swap.yml's, with a smaller size: its format, mount
    and modprobe steps are dm-crypt-loop.yml's. swap.yml itself boots whole in test_guest_swap.py."""
    swap = yaml.safe_load((EXAMPLES / "swap.yml").read_text())
    booted_system = yaml.safe_load((DATA / "packages.yml").read_text())
    loop = yaml.safe_load((EXAMPLES / "dm-crypt-loop.yml").read_text())
    ours = next(c for c in booted_system["onboot"] if c["name"] == "swap")
    theirs = next(c for c in swap["onboot"] if c["name"] == "swap")
    assert ours["image"] == theirs["image"].replace("@pkg:../", "@pkg:../../../")
    assert [a if a != "32M" else "1G" for a in ours["command"]] == theirs["command"]
    for name in ("modprobe", "format", "mount"):
        step = next(c for c in swap["onboot"] if c["name"] == name)
        assert any(c["image"] == step["image"] for c in loop["onboot"] if c["name"] == name)
    # the swap file's directory is the disk dm-crypt-loop.yml mounts
    assert theirs["command"][2].startswith("/var/external/") and ["/usr/bin/mountie", "/dev/vda1", "/var/external"] in [
        c.get("command") for c in loop["onboot"]
    ]
