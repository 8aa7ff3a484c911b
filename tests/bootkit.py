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
import signal
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


#: Module directories (under ``lib/modules/VERSION/kernel``) the root loader of kernel+squashfs/erofs/iso
#: picks from: virtio, SCSI CD-ROM and IDE/AHCI, the root file systems, and the libraries they need.
MODULE_DIRS = (
    "drivers/virtio",
    "drivers/block",
    "drivers/scsi",
    "drivers/cdrom",
    "drivers/ata",
    "fs/squashfs",
    "fs/erofs",
    "fs/isofs",
    "fs/overlayfs",
    "lib",
    "crypto",
)


def _cloud_kernel_tree(work: Path) -> Path:
    """Download Debian's newest cloud kernel package and unpack it into ``work/x`` (skips the test when
    apt cannot get it)."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("apt-get/dpkg-deb not available to fetch a kernel")
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
    return work / "x"


def cloud_kernel() -> Path:
    """The vmlinuz of Debian's newest cloud kernel (skips the test when apt cannot get it)."""
    target = test_cache() / "vmlinuz-cloud"
    if target.exists():
        return target
    work = test_cache() / "kernel-work"
    tree = _cloud_kernel_tree(work)
    vmlinuz = next((tree / "boot").glob("vmlinuz-*"))
    tmp = target.with_suffix(".tmp")
    shutil.copyfile(vmlinuz, tmp)
    os.replace(tmp, target)
    shutil.rmtree(work, ignore_errors=True)
    return target


def cloud_modules() -> Path:
    """A directory holding ``lib/modules/VERSION/kernel/{MODULE_DIRS}`` of the same cloud kernel as
    :func:`cloud_kernel` (the .ko files as Debian ships them; no ``modules.dep``)."""
    target = test_cache() / "modules-cloud"
    if target.exists():
        return target
    kernel = cloud_kernel()
    work = test_cache() / "modules-work"
    tree = _cloud_kernel_tree(work)
    vmlinuz = next((tree / "boot").glob("vmlinuz-*"))
    if vmlinuz.read_bytes() != kernel.read_bytes():
        pytest.skip("the cached cloud kernel is older than the archive's: clear the test cache")
    version = vmlinuz.name[len("vmlinuz-") :]
    src = tree / "lib" / "modules" / version / "kernel"
    tmp = test_cache() / "modules-cloud.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for sub in MODULE_DIRS:
        if (src / sub).is_dir():
            shutil.copytree(src / sub, tmp / "lib" / "modules" / version / "kernel" / sub)
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


def marker_rootfs_tar(
    path: Path,
    marker: str,
    cmdline: str = "console=ttyS0",
    kernel: Path | None = None,
    modules: Path | None = None,
    init: str | None = None,
) -> Path:
    """A rootfs tar as ``linuxkit build --format tar`` lays it out: ``boot/kernel``, ``boot/cmdline``,
    an ``/init`` (default: prints ``marker`` and powers off), ``bin/busybox`` and, when ``modules``
    names a directory, every file below it (e.g. :func:`cloud_modules`' ``lib/modules/...``)."""
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
        add(tf, "init", (init if init is not None else init_script(marker)).encode(), 0o755)
        if modules is not None:
            for sub in sorted(modules.rglob("*")):
                rel = sub.relative_to(modules).as_posix()
                if sub.is_dir():
                    add(tf, rel, None, 0o755, tarfile.DIRTYPE)
                else:
                    add(tf, rel, sub.read_bytes(), 0o644)
    return path


def boot(args: list[str], marker: str, timeout: float = 120.0) -> str:
    """Run ``qemu-system-x86_64 -accel tcg -nographic -no-reboot ARGS`` until ``marker`` appears on the
    serial console (then stop it). Returns the console text; fails the test when the marker never shows."""
    argv = [QEMU, "-accel", "tcg", "-m", "512", "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio", *args]
    return boot_argv(argv, marker, timeout)


def boot_argv(argv: list[str], marker: str, timeout: float = 120.0, linger: float = 0.0) -> str:
    """Run the whole qemu command line ``argv`` (e.g. ``run qemu``'s) as :func:`boot` does; with ``linger``,
    keep reading the console that many seconds after the marker (what the system does next)."""
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    text = b""
    seen = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            chunk = proc.stdout.read()
            if chunk:
                text += chunk
                if not seen and marker.encode() in text:
                    if linger <= 0:
                        return text.decode(errors="replace")
                    seen = True
                    deadline = time.monotonic() + linger
            elif proc.poll() is not None:
                break
            else:
                time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    if seen:
        return text.decode(errors="replace")
    pytest.fail(f"marker {marker!r} not seen on the console of {argv}:\n{text.decode(errors='replace')[-3000:]}")


def write_format(
    fmt: str, rootfs: Path, outdir: Path, epoch: int, boot_files: Path | None = None, arch: str = "x86_64"
) -> list[Path]:
    """Write format FMT of ROOTFS (a rootfs tar) as ``OUTDIR/lk*`` in-process (boot loaders from the tree
    ``boot_files``, e.g. the host's ``/``); the files written, sorted."""
    from linuxkit.formats.registry import FormatContext, all_formats
    from linuxkit.outputs import OutputSet

    outdir.mkdir(parents=True, exist_ok=True)
    with OutputSet() as outputs:
        ctx = FormatContext(
            base=outdir / "lk",
            size_mb=0,
            arch=arch,
            decompress_kernel=False,
            outputs=outputs,
            boot_files=boot_files,
            epoch=epoch,
        )
        writer = all_formats()[fmt].writer
        assert writer is not None
        writer(ctx, rootfs)
        return sorted(outputs.commit())


def stop_qemu(pidfile: Path) -> None:
    """Stop the qemu that ``run qemu`` left behind (killing the CLI does not stop it)."""
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"qemu-system" in cmdline and str(pidfile).encode() in cmdline:
        os.kill(pid, signal.SIGTERM)
