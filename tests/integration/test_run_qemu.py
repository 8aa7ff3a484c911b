"""``linuxkit run qemu`` for real: the marker rootfs of ``tests/bootkit`` written by our
kernel+initrd writer, booted by our CLI under TCG and through the default accelerator probe;
clean failures for bad input; ``--data`` and ``metadata create`` ISOs read by xorriso."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from tests import bootkit
from tests.conftest import RunLinuxkit

from linuxkit.formats.initrd import write_kernel_initrd
from linuxkit.formats.registry import FormatContext
from linuxkit.outputs import OutputSet

pytestmark = pytest.mark.integration

MARKER = "LINUXKIT-RUN-QEMU-MARKER-7f3a"
needs_qemu = pytest.mark.skipif(shutil.which(bootkit.QEMU) is None, reason="qemu-system-x86 is not installed")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``DIR/vm-kernel``, ``-initrd.img``, ``-cmdline`` made by our writer from the marker rootfs."""
    work = tmp_path_factory.mktemp("image")
    rootfs = bootkit.marker_rootfs_tar(work / "rootfs.tar", MARKER)
    with OutputSet() as outputs:
        write_kernel_initrd(FormatContext(work / "vm", 1024, "amd64", False, outputs), rootfs)
        outputs.commit()
    return work / "vm"


def _run(
    args: list[str], *, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "linuxkit.cli.main", "run", "qemu", *args]
    full_env = {**os.environ, "COLUMNS": "200"}
    full_env.pop("LINUXKIT_QEMU_ACCEL", None)  # tests choose the accelerator themselves
    full_env.update(env or {})
    return subprocess.run(
        cmd, capture_output=True, text=True, errors="replace", timeout=timeout, env=full_env, stdin=subprocess.DEVNULL
    )


@needs_qemu
@pytest.mark.slow
def test_boots_marker_under_tcg(image: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = _run(["--accel", "tcg", "--mem", "512", "--state", str(state), "--networking", "none", str(image)])
    assert MARKER in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.returncode == 0
    assert "accelerator tcg" in proc.stdout + proc.stderr
    assert state.is_dir() and not (state / "mac-addr").exists()  # no network, no MAC


@needs_qemu
@pytest.mark.slow
def test_boots_through_default_probe_with_data(image: Path, tmp_path: Path) -> None:
    """No --accel: the KVM probe decides (KVM where it works, else TCG) and the VM boots."""
    proc = _run(["--mem", "512", "--data", '{"hello": 1}', str(image)], env={"XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert MARKER in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
    said = proc.stdout + proc.stderr
    assert "accelerator kvm" in said or "accelerator tcg" in said
    assert (tmp_path / "xdg" / "linuxkit" / "qemu-accel.json").exists()  # the probe's answer is cached
    state = Path(str(image) + "-state")
    assert (state / "mac-addr").exists() and (state / "data.iso").exists()
    if shutil.which("xorriso"):
        listing = subprocess.run(
            ["xorriso", "-indev", str(state / "data.iso"), "-find"], capture_output=True, text=True, check=True
        ).stdout
        assert "'./config'" in listing.split()


def test_busy_publish_port_fails_cleanly(image: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _run(["--accel", "tcg", "--publish", f"{port}:22", str(image)])
    assert proc.returncode == 2
    assert f"port {port}: already in use" in proc.stderr and "hint:" in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--publish", "80"], "cannot parse --publish"),
        (["--disk", "x,colour=red"], "unknown disk config"),
        (["--networking", "carrier-pigeon"], "invalid networking mode"),
        (["--frobnicate"], "unrecognized arguments"),
    ],
)
def test_bad_flags_exit_2(image: Path, args: list[str], message: str) -> None:
    proc = _run([*args, str(image)])
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr


def test_missing_initrd_exit_2(tmp_path: Path) -> None:
    (tmp_path / "x-kernel").write_bytes(b"k")
    proc = _run(["--accel", "tcg", str(tmp_path / "x")])
    assert proc.returncode == 2
    assert "x-initrd.img does not exist" in proc.stderr and "hint:" in proc.stderr
    proc = _run(["--accel", "tcg", str(tmp_path / "nothing")])
    assert proc.returncode == 2 and "nothing to boot" in proc.stderr


def test_missing_qemu_names_the_package(image: Path, tmp_path: Path) -> None:
    proc = _run(["--accel", "tcg", str(image)], env={"PATH": str(tmp_path)})
    assert proc.returncode != 0
    assert "qemu-system-x86_64" in proc.stderr and "qemu-system-x86" in proc.stderr
    assert "apt-get install qemu-system-x86" in proc.stderr


def test_qemu_exit_code_is_passed_through(image: Path, tmp_path: Path) -> None:
    fake = tmp_path / "fake-qemu"
    fake.write_text('#!/bin/sh\necho "fake qemu $*"\nexit 7\n')
    fake.chmod(0o755)
    proc = _run(["--accel", "tcg", "--qemu", str(fake), "--networking", "none", str(image)])
    assert proc.returncode == 7
    assert "-kernel " + str(image) + "-kernel" in proc.stdout


def test_metadata_create(linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    linuxkit("metadata", "create", "a.iso", "some data")
    linuxkit("metadata", "create", "b.iso", "some data")
    assert (tmp_path / "a.iso").read_bytes() == (tmp_path / "b.iso").read_bytes()
    if shutil.which("xorriso") is None:
        pytest.skip("xorriso is not installed")
    listing = subprocess.run(
        ["xorriso", "-indev", str(tmp_path / "a.iso"), "-find"], capture_output=True, text=True, check=True
    ).stdout
    assert "'./config'" in listing.split()
    extracted = tmp_path / "config.out"
    subprocess.run(
        ["xorriso", "-osirrox", "on", "-indev", str(tmp_path / "a.iso"), "-extract", "/config", str(extracted)],
        capture_output=True,
        check=True,
    )
    assert extracted.read_bytes() == b"some data"


EFI_STUB = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")


@needs_qemu
@pytest.mark.slow
@pytest.mark.skipif(not EFI_STUB.exists() or shutil.which("objcopy") is None, reason="needs systemd-boot-efi, binutils")
def test_boots_unified_kernel_image_under_ovmf(image: Path, tmp_path: Path) -> None:
    """An ``.efi`` PATH is a UKI: booted as -kernel by OVMF (found on the host, copied to the state)."""
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("console=ttyS0")
    uki = tmp_path / "vm.efi"
    sections = [("cmdline", cmdline, 0x30000), ("linux", Path(f"{image}-kernel"), 0x2000000)]
    sections.append(("initrd", Path(f"{image}-initrd.img"), 0x3000000))
    args = []
    for name, path, vma in sections:
        args += [f"--add-section=.{name}={path}", f"--change-section-vma=.{name}={vma:#x}"]
    subprocess.run(["objcopy", *args, str(EFI_STUB), str(uki)], check=True)
    proc = _run(["--accel", "tcg", "--mem", "512", "--networking", "none", str(uki)])
    if "UEFI boot needs OVMF" in proc.stderr:
        pytest.skip("OVMF is not installed")
    assert MARKER in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert (tmp_path / "vm-state").is_dir()
    assert any(p.name.startswith("fw-") for p in (tmp_path / "vm-state").iterdir())


def _open_files(pid: int) -> set[str]:
    out: set[str] = set()
    fds = Path(f"/proc/{pid}/fd")
    for fd in fds.iterdir() if fds.exists() else ():
        try:
            out.add(os.readlink(fd))
        except OSError:
            continue
    return out


@needs_qemu
def test_comma_names_cannot_make_qemu_open_other_files(tmp_path: Path) -> None:
    """Real qemu, started detached by the real CLI on a disk and a ``--state`` dir whose names carry
    qemu options (``,file=...``): qemu holds the files with those names open, not the named ones."""
    import time

    ovmf = [p for p in ("/usr/share/ovmf/OVMF.fd", "/usr/share/qemu/OVMF.fd") if os.path.isfile(p)]
    uefi = bool(ovmf)
    (tmp_path / "leak").mkdir()
    for secret in ("secret", "leak/data.iso"):
        (tmp_path / secret).write_bytes(b"host secret\n" * 4096)
    if uefi:  # a valid firmware image, so that an injected name would start qemu and show what it opened
        shutil.copyfile(ovmf[0], tmp_path / "leak" / "fw-OVMF.fd")
    disk = "vm,file=secret,format=raw" + ("-efi.img" if uefi else ".img")  # -efi: the firmware copy is in the state
    (tmp_path / disk).write_bytes(bytes(1 << 20))
    state = tmp_path / "st,file=leak"
    cmd = [sys.executable, "-m", "linuxkit.cli.main", "run", "qemu", "--accel", "tcg", "--mem", "64"]
    cmd += ["--networking", "none", "--detached", "--state", state.name, "--data", "x", disk]
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("LINUXKIT_QEMU_ACCEL", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    pidfile = state / "qemu.pid"
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pidfile.exists(), (state / "console.log").read_text(errors="replace")
    pid = int(pidfile.read_text())
    want = {str(tmp_path / disk), str(state / "data.iso")} | ({str(state / "fw-OVMF.fd")} if uefi else set())
    try:
        while time.monotonic() < deadline and not want <= _open_files(pid):
            time.sleep(0.1)
        opened = _open_files(pid)
    finally:
        os.kill(pid, 15)
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline + 10:
            time.sleep(0.1)
    assert want <= opened, (opened, (state / "console.log").read_text(errors="replace"))
    assert not {str(p) for p in (tmp_path / "secret", *(tmp_path / "leak").iterdir())} & opened
