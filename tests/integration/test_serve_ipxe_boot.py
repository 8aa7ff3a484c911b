"""Network boot from ``linuxkit serve``: examples/minimal.yml built as kernel+initrd, served by the real CLI
on a free loopback port, and booted by qemu's own iPXE ROM (TCG, user networking: the DHCP boot file is
``http://10.0.2.2:PORT/minimal.ipxe``, the script ``serve`` generates; 10.0.2.2 is the host in slirp).
The serial console must show the system's banner and its onboot container's output, and ``serve``'s
log the three downloads."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.bootkit import QEMU, boot
from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ONBOOT = "hello from an onboot container"  # examples/minimal.yml's onboot container


def _env(cache: Path) -> dict[str, str]:
    debs = Path(os.environ.get("LINUXKIT_TEST_CACHE", Path.home() / ".cache" / "linuxkit-tests")) / "debian"
    return {**os.environ, "LINUXKIT_CACHE": str(cache), "LINUXKIT_DEBIAN_CACHE": str(debs), "COLUMNS": "200"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/minimal.yml as ``minimal-kernel``, ``minimal-initrd.img`` and ``minimal-cmdline``."""
    if shutil.which(QEMU) is None:
        pytest.skip(f"{QEMU} is not installed")
    cache = tmp_path_factory.mktemp("serve-cache")
    out = tmp_path_factory.mktemp("serve-out")
    proc = subprocess.run(
        [sys.executable, "-m", "linuxkit.cli.main", "build", "--dir", str(out), str(ROOT / "examples" / "minimal.yml")],
        capture_output=True,
        env=_env(cache),
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-4000:]
    assert {p.name for p in out.iterdir()} >= {"minimal-kernel", "minimal-initrd.img", "minimal-cmdline"}
    return out


class Served:
    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.port = port

    def stop(self) -> str:
        """Ctrl-C it; its whole log."""
        assert self.proc.stderr is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=10)
        return self.proc.stderr.read()


@pytest.fixture
def served(built: Path) -> Iterator[Served]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "linuxkit.cli.main", "serve", "--port", "127.0.0.1:0", "--directory", str(built)],
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        found = re.search(r"on http://127\.0\.0\.1:(\d+)/", first)
        assert found, first
        yield Served(proc, int(found.group(1)))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _net_boot(served: Served, built: Path, firmware: list[str]) -> tuple[str, str]:
    url = f"http://10.0.2.2:{served.port}/minimal.ipxe"
    start = time.monotonic()
    console = boot(
        [*firmware, "-netdev", f"user,id=n0,bootfile={url}", "-device", "virtio-net-pci,netdev=n0", "-boot", "n"],
        ONBOOT,
        timeout=300,
    )
    print(f"network boot to the onboot marker: {time.monotonic() - start:.1f}s")
    log = served.stop()
    assert "Welcome to LinuxKit" in console, console[-3000:]
    assert "minimal.ipxe" in console  # iPXE fetched the script by its URL
    assert console.index("Welcome to LinuxKit") < console.index(ONBOOT)
    kernel = (built / "minimal-kernel").stat().st_size
    initrd = (built / "minimal-initrd.img").stat().st_size
    for line in (
        "GET /minimal.ipxe 200 ",
        f"GET /minimal-kernel 200 {kernel} B",
        f"GET /minimal-initrd.img 200 {initrd} B",
    ):
        assert line in log, log
    return console, log


def test_qemu_bios_ipxe_boots_minimal_from_serve(served: Served, built: Path) -> None:
    console, _ = _net_boot(served, built, [])
    assert "PXE bzImage" in console  # the BIOS iPXE (its feature line)


def test_qemu_uefi_ipxe_boots_minimal_from_serve(served: Served, built: Path) -> None:
    """OVMF's iPXE hands the initrd to the kernel's EFI stub by the name the script gives it."""
    from linuxkit.errors import UserError
    from linuxkit.run.qemu import find_ovmf

    try:
        ovmf = find_ovmf("")
    except UserError:
        pytest.skip("no OVMF firmware (apt-get install ovmf)")
    console, _ = _net_boot(served, built, ["-bios", ovmf])
    assert "EFI stub: Loaded initrd from command line option" in console, console[-3000:]
