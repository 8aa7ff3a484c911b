"""Real parts for boot tests that do not need our own packages: a Debian cloud kernel, a static
busybox, a tiny rootfs tar in LinuxKit's assembled layout, and a qemu (TCG) boot that waits for a
marker on the serial console.

The kernel comes from the Debian archive through the host's apt (``apt-get download``), cached in
``$LINUXKIT_TEST_CACHE`` (default ``~/.cache/linuxkit-tests``); busybox from the host's
``busybox-static`` package. Tests skip when these are not available.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

BUSYBOX = Path("/bin/busybox")
QEMU = "qemu-system-x86_64"


def test_cache() -> Path:
    root = Path(os.environ.get("LINUXKIT_TEST_CACHE", Path.home() / ".cache" / "linuxkit-tests"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def cloud_kernel() -> Path:
    """The vmlinuz of Debian's newest cloud kernel (skips the test when apt cannot get it)."""
    target = test_cache() / "vmlinuz-cloud"
    if target.exists():
        return target
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("apt-get/dpkg-deb not available to fetch a kernel")
    work = test_cache() / "kernel-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    meta = subprocess.run(
        ["apt-cache", "depends", "--no-recommends", "--no-suggests", "linux-image-cloud-amd64"],
        capture_output=True,
        text=True,
    )
    names = [
        line.split(":", 1)[1].strip()
        for line in meta.stdout.splitlines()
        if line.strip().startswith("Depends:") and "linux-image-" in line
    ]
    if not names:
        pytest.skip("apt does not know linux-image-cloud-amd64")
    got = subprocess.run(["apt-get", "download", names[0]], cwd=work, capture_output=True, text=True)
    if got.returncode != 0:
        pytest.skip(f"apt-get download failed: {got.stderr.strip()}")
    deb = next(work.glob("*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "x")], check=True)
    vmlinuz = next((work / "x" / "boot").glob("vmlinuz-*"))
    tmp = target.with_suffix(".tmp")
    shutil.copyfile(vmlinuz, tmp)
    os.replace(tmp, target)
    shutil.rmtree(work, ignore_errors=True)
    return target


def busybox() -> Path:
    if not BUSYBOX.exists() or b"busybox" not in subprocess.run([BUSYBOX], capture_output=True).stdout.lower():
        pytest.skip("busybox-static is not installed")
    return BUSYBOX


def init_script(marker: str) -> str:
    return (
        "#!/bin/busybox sh\n"
        "/bin/busybox mkdir -p /proc /sys /dev\n"
        "/bin/busybox mount -t proc proc /proc\n"
        "/bin/busybox mount -t devtmpfs dev /dev 2>/dev/null\n"
        f"echo {marker}\n"
        "/bin/busybox poweroff -f\n"
    )


def marker_rootfs_tar(path: Path, marker: str, cmdline: str = "console=ttyS0", kernel: Path | None = None) -> Path:
    """A rootfs tar as ``linuxkit build --format tar`` lays it out: ``boot/kernel``, ``boot/cmdline``,
    an ``/init`` that prints ``marker`` and powers off, and ``bin/busybox``."""
    kernel = kernel or cloud_kernel()
    bb = busybox()

    def add(tf: tarfile.TarFile, name: str, data: bytes | None, mode: int, kind: bytes = tarfile.REGTYPE) -> None:
        info = tarfile.TarInfo(name)
        info.mode = mode
        info.mtime = 0
        info.type = kind
        if data is not None:
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        else:
            tf.addfile(info)

    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        add(tf, "bin", None, 0o755, tarfile.DIRTYPE)
        add(tf, "bin/busybox", bb.read_bytes(), 0o755)
        add(tf, "boot", None, 0o755, tarfile.DIRTYPE)
        add(tf, "boot/cmdline", cmdline.encode(), 0o644)
        add(tf, "boot/kernel", kernel.read_bytes(), 0o644)
        add(tf, "init", init_script(marker).encode(), 0o755)
    return path


def boot(args: list[str], marker: str, timeout: float = 120.0) -> str:
    """Run ``qemu-system-x86_64 -accel tcg -nographic -no-reboot ARGS`` until ``marker`` appears on the
    serial console (then stop it). Returns the console text; fails the test when the marker never shows."""
    if shutil.which(QEMU) is None:
        pytest.skip("qemu-system-x86 is not installed")
    argv = [QEMU, "-accel", "tcg", "-m", "512", "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio", *args]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    text = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            chunk = proc.stdout.read()
            if chunk:
                text += chunk
                if marker.encode() in text:
                    return text.decode(errors="replace")
            elif proc.poll() is not None:
                break
            else:
                time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    pytest.fail(f"marker {marker!r} not seen on the console of {argv}:\n{text.decode(errors='replace')[-3000:]}")
