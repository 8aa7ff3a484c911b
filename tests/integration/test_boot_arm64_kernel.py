"""arm64 end to end with the kernel+initrd format: examples/minimal.yml as it is in the repository (its
``console=ttyS0 console=ttyAMA0`` serves both architectures) built with ``--arch arm64`` twice (every file
identical), the kernel an ``Image.gz`` within the size goal, and booted by ``linuxkit run qemu --arch
aarch64`` (``-M virt``, TCG) until the serial console shows the banner and the onboot container's line."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.bootkit import boot_argv
from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLE = ROOT / "examples" / "minimal.yml"
ONBOOT_LINE = "hello from an onboot container"
#: the issue's goal for arm64's kernel+initrd
SIZE_GOAL = 25_000_000
#: TCG aarch64 on a busy 2-core machine: ~4 s alone, far more with other VMs beside it
BOOT_TIMEOUT = 600.0


def _env(cache: Path) -> dict[str, str]:
    debs = Path(os.environ.get("LINUXKIT_TEST_CACHE", Path.home() / ".cache" / "linuxkit-tests")) / "debian"
    env = {**os.environ, "LINUXKIT_CACHE": str(cache), "LINUXKIT_DEBIAN_CACHE": str(debs), "COLUMNS": "200"}
    env.pop("LINUXKIT_QEMU_ACCEL", None)
    return env


def _build(cache: Path, out: Path) -> dict[str, bytes]:
    argv = [sys.executable, "-m", "linuxkit.cli.main", "build", "--arch", "arm64", "-f", "kernel+initrd"]
    proc = subprocess.run(
        [*argv, "--name", "m", "--dir", str(out), str(EXAMPLE)],
        capture_output=True,
        env=_env(cache),
        timeout=1800,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-4000:]
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example built twice, each into an empty cache (the packages built from the Debian packages
    both times): every file must be identical."""
    first = _build(tmp_path_factory.mktemp("arm64-cache-a"), tmp_path_factory.mktemp("arm64-a"))
    second_dir = tmp_path_factory.mktemp("arm64-b")
    second = _build(tmp_path_factory.mktemp("arm64-cache-b"), second_dir)
    assert sorted(first) == ["m-cmdline", "m-initrd.img", "m-kernel"]
    differ = [name for name in first if first[name] != second[name]]
    assert not differ, f"two arm64 builds differ: {differ}"
    return second_dir


def test_arm64_kernel_is_image_gz_and_the_pair_fits_the_goal(built: Path) -> None:
    kernel = (built / "m-kernel").read_bytes()
    assert kernel[:2] == b"\x1f\x8b", "the arm64 kernel should be Image.gz"
    image = gzip.decompress(kernel)
    assert image[0x38:0x3C] == b"ARM\x64", "the gzip should hold an arm64 Image"
    total = len(kernel) + (built / "m-initrd.img").stat().st_size
    print(
        f"arm64 kernel {len(kernel) / 1e6:.1f} MB (Image {len(image) / 1e6:.1f} MB), kernel+initrd {total / 1e6:.1f} MB"
    )
    assert total <= SIZE_GOAL
    assert (built / "m-cmdline").read_text() == "console=ttyS0 console=ttyAMA0"


def _stop_qemu(pidfile: Path) -> None:
    """boot_argv stops the CLI; the qemu it started (named by its -pidfile) is stopped here."""
    try:
        pid = int(pidfile.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return
    if b"qemu-system-aarch64" in cmdline and str(pidfile).encode() in cmdline:
        os.kill(pid, signal.SIGTERM)


def test_arm64_boots_to_the_marker_under_run_qemu(built: Path) -> None:
    if shutil.which("qemu-system-aarch64") is None:
        pytest.skip("qemu-system-aarch64 is not installed (scripts/setup: qemu-system-arm)")
    argv = [sys.executable, "-m", "linuxkit.cli.main", "run", "qemu", "--arch", "aarch64", "--networking", "none"]
    state = built / "m-state"
    argv += ["--accel", "tcg", "--state", str(state), str(built / "m")]
    try:
        console = boot_argv(argv, ONBOOT_LINE, timeout=BOOT_TIMEOUT)
    finally:
        _stop_qemu(state / "qemu.pid")
    assert "Welcome to LinuxKit" in console, console[-3000:]
    assert console.index("Welcome to LinuxKit") < console.index(ONBOOT_LINE)
    # the guest is an arm64 kernel on the virt board's PL011
    assert "ttyAMA0" in console and "Machine model: linux,dummy-virt" in console, console[:3000]
