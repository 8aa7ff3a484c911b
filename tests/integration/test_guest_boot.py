"""Boot systems built from this repository's packages (pkg/, from the Debian archive) under qemu (TCG)
and check what the serial console shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DATA = ROOT / "tests" / "data" / "guest"


def _env(cache: Path) -> dict[str, str]:
    debs = Path(os.environ.get("LINUXKIT_TEST_CACHE", Path.home() / ".cache" / "linuxkit-tests")) / "debian"
    return {**os.environ, "LINUXKIT_CACHE": str(cache), "LINUXKIT_DEBIAN_CACHE": str(debs), "COLUMNS": "200"}


def lk(cache: Path, *args: str | os.PathLike[str], timeout: float = 900) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(
        [sys.executable, "-m", "linuxkit.cli.main", *map(str, args)],
        capture_output=True,
        env=_env(cache),
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-4000:]
    return proc


def boot_until_exit(cache: Path, prefix: Path, *extra: str, timeout: float = 180) -> str:
    """`linuxkit run qemu` until the guest powers itself off; returns the console text."""
    argv = [sys.executable, "-m", "linuxkit.cli.main", "run", "qemu", "--networking", "none", *extra, str(prefix)]
    start = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, env=_env(cache), timeout=timeout, check=False)
    text = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    print(f"boot took {time.monotonic() - start:.1f}s")
    return text


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("guest-cache")


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_system_boots_runs_onboot_restarts_services_and_shuts_down(cache: Path, tmp_path: Path, runtime: str) -> None:
    # the same system with either runtime package (the runner is the same scripts); @pkg: paths are relative
    # to the YAML's directory (even absolute ones, as upstream)
    text = (DATA / "system.yml").read_text().replace("@pkg:../../../pkg/runc", f"@pkg:../../../pkg/{runtime}")
    yml = tmp_path / "system.yml"
    yml.write_text(text.replace("@pkg:../../../", f"@pkg:{os.path.relpath(ROOT, tmp_path)}/"))
    lk(cache, "build", "--dir", tmp_path, yml)
    kernel = tmp_path / "system-kernel"
    initrd = tmp_path / "system-initrd.img"
    assert kernel.exists() and initrd.exists()
    total = kernel.stat().st_size + initrd.stat().st_size
    print(f"kernel+initrd: {total / 1e6:.1f} MB")
    assert total < 30_000_000
    console = boot_until_exit(cache, tmp_path / "system")
    assert "Welcome to LinuxKit" in console, console[-4000:]
    assert "ONBOOT-MARKER hello" in console, console[-4000:]
    # the supervisor restarted the failing service, with growing back-off
    assert "service flaky: exited with status 1" in console, console[-4000:]
    assert re.search(r"service flaky: restarting in 1s", console) and re.search(r"restarting in 2s", console)
    assert "service poweroff: not restarting" in console
    # clean shutdown: onshutdown ran, then the kernel powered off
    assert "ONSHUTDOWN-MARKER bye" in console, console[-4000:]
    assert console.index("ONSHUTDOWN-MARKER") > console.index("ONBOOT-MARKER")
    assert "reboot: Power down" in console or "Power down" in console, console[-2000:]


def test_build_is_reproducible(cache: Path, tmp_path: Path) -> None:
    for d in ("a", "b"):
        lk(cache, "build", "--name", "m", "--dir", tmp_path / d, ROOT / "examples" / "minimal.yml")
    for suffix in ("kernel", "initrd.img", "cmdline"):
        assert (tmp_path / "a" / f"m-{suffix}").read_bytes() == (tmp_path / "b" / f"m-{suffix}").read_bytes()


@pytest.mark.parametrize("fmt,output", [("iso-bios", "system.iso"), ("raw-efi", "system-efi.img")])
def test_bootable_formats_from_the_boot_loader_package(cache: Path, tmp_path: Path, fmt: str, output: str) -> None:
    """ISO/disk outputs take their loaders from the mkimage package (built from Debian), not the host."""
    lk(cache, "build", "-f", fmt, "--size", "256M", "--dir", tmp_path, DATA / "system.yml")
    console = boot_until_exit(cache, tmp_path / output)
    assert "Welcome to LinuxKit" in console, console[-3000:]
    assert "ONBOOT-MARKER hello" in console, console[-3000:]
    assert "ONSHUTDOWN-MARKER bye" in console, console[-3000:]
    names = lk(cache, "cache", "ls").stderr.decode()
    assert "docker.io/linuxkit/mkimage:" in names


UPSTREAM = Path(os.environ.get("LINUXKIT_UPSTREAM", "/work/upstream/bin/linuxkit"))


@pytest.mark.skipif(not UPSTREAM.exists(), reason="no upstream linuxkit binary (LINUXKIT_UPSTREAM)")
def test_a_system_assembled_by_upstream_runs_under_our_init(cache: Path, tmp_path: Path) -> None:
    """The contract both ways: upstream LinuxKit assembles our packages' images (from our cache), and our
    init and runner boot its bundles. (Local check: CI has no upstream binary.)"""
    lk(cache, "build", "-f", "tar", "--o", tmp_path / "ours.tar", DATA / "system.yml")  # builds the packages
    resolved = tmp_path / "system.yml"
    resolved.write_bytes(lk(cache, "build", "--dry-run", DATA / "system.yml").stdout)  # @pkg: → tags
    out = tmp_path / "up"
    out.mkdir()
    subprocess.run(
        [UPSTREAM, "build", "--cache", str(cache), "--no-sbom", "--dir", str(out), str(resolved)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    console = boot_until_exit(cache, out / "system")
    for marker in ("Welcome to LinuxKit", "ONBOOT-MARKER hello", "restarting in 1s", "ONSHUTDOWN-MARKER bye"):
        assert marker in console, console[-3000:]


def test_every_format_builds_from_the_minimal_example(cache: Path, tmp_path: Path) -> None:
    """Every amd64 format from examples/minimal.yml itself, not only from purpose-made systems: two
    images both carrying bin/ once broke kernel+squashfs. One build per format (several share output
    names)."""
    from linuxkit.formats.registry import all_formats

    for fmt in (name for name in all_formats() if not name.startswith("rpi3")):  # arm64 only
        out = tmp_path / fmt.replace("+", "_")
        proc = lk(cache, "build", "-f", fmt, "--name", "m", "--dir", out, ROOT / "examples" / "minimal.yml")
        assert b"Traceback" not in proc.stderr
        assert list(out.iterdir()), fmt
    listing = subprocess.run(
        ["unsquashfs", "-l", tmp_path / "kernel_squashfs" / "m-squashfs.img"], capture_output=True, text=True
    )
    assert "squashfs-root/bin/busybox" in listing.stdout
    assert "squashfs-root/containers/services/getty/config.json" in listing.stdout
