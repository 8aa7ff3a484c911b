"""arm64 EFI outputs of examples/minimal.yml as it is in the repository: ``raw-efi``, ``qcow2-efi``,
``iso-efi``, ``iso-efi-initrd`` and ``uki`` built with ``--arch arm64`` twice (identical bytes), their
ESPs and UKIs checked with mtools/xorriso and a PE reader, and booted by ``linuxkit run qemu --arch
aarch64 --uefi`` under AAVMF (TCG) until the console shows "Welcome to LinuxKit" and the onboot
container's line."""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLE = ROOT / "examples" / "minimal.yml"
AAVMF = Path("/usr/share/AAVMF/AAVMF_CODE.fd")
QEMU = "qemu-system-aarch64"
#: format → the file it writes (``NAME`` = m)
OUTPUTS = {
    "raw-efi": "m-efi.img",
    "qcow2-efi": "m-efi.qcow2",
    "iso-efi": "m-efi.iso",
    "iso-efi-initrd": "m-efi-initrd.iso",
    "uki": "m.efi",
}
MARKERS = ("Welcome to LinuxKit", "hello from an onboot container")
#: TCG aarch64 on a busy 2-core machine: AAVMF alone takes ~10 s, the kernel ~20 s more
BOOT_TIMEOUT = 600.0


def _env(cache: Path) -> dict[str, str]:
    debs = Path(os.environ.get("LINUXKIT_TEST_CACHE", Path.home() / ".cache" / "linuxkit-tests")) / "debian"
    env = {**os.environ, "LINUXKIT_CACHE": str(cache), "LINUXKIT_DEBIAN_CACHE": str(debs), "COLUMNS": "200"}
    env.pop("LINUXKIT_QEMU_ACCEL", None)
    return env


def _lk(cache: Path, *args: str | os.PathLike[str], timeout: float = 1800) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(
        [sys.executable, "-m", "linuxkit.cli.main", *map(str, args)],
        capture_output=True,
        env=_env(cache),
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-4000:]
    return proc


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(cache, DIR)``: every arm64 EFI format of the example, built twice (``DIR`` and a second
    directory), each file compared byte for byte."""
    missing = [t for t in (QEMU, "mkfs.vfat", "mcopy", "qemu-img", "xorriso") if shutil.which(t) is None]
    if missing or not AAVMF.is_file():
        pytest.skip(f"missing: {missing or AAVMF} (scripts/setup installs qemu-system-arm, qemu-efi-aarch64)")
    cache = tmp_path_factory.mktemp("arm64-efi-cache")
    dirs = [tmp_path_factory.mktemp("arm64-efi-a"), tmp_path_factory.mktemp("arm64-efi-b")]
    for out in dirs:
        _lk(cache, "build", "--arch", "arm64", "-f", ",".join(OUTPUTS), "--name", "m", "--dir", out, EXAMPLE)
    for name in OUTPUTS.values():
        a, b = (d / name for d in dirs)
        assert a.stat().st_size == b.stat().st_size and _same(a, b), f"{name} differs between two builds"
    return cache, dirs[0]


def _same(a: Path, b: Path) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(1 << 20), fb.read(1 << 20)
            if ca != cb:
                return False
            if not ca:
                return True


def _sections(data: bytes) -> tuple[int, dict[str, bytes]]:
    """A PE file's machine type and its sections by name."""
    assert data[:2] == b"MZ"
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    assert data[pe : pe + 4] == b"PE\0\0"
    machine, count = struct.unpack_from("<HH", data, pe + 4)
    opt_size = struct.unpack_from("<H", data, pe + 20)[0]
    table = pe + 24 + opt_size
    out: dict[str, bytes] = {}
    for i in range(count):
        name, vsize, _, _, raw = struct.unpack_from("<8sIIII", data, table + 40 * i)
        out[name.rstrip(b"\0").decode()] = data[raw : raw + vsize]
    return machine, out


def _check_arm64_uki(data: bytes) -> None:
    """systemd's aa64 stub carrying an uncompressed arm64 ``Image`` (PE, ``ARM\\x64`` at 0x38), the
    example's cmdline and an initrd."""
    machine, sections = _sections(data)
    assert machine == 0xAA64
    kernel = sections[".linux"]
    assert kernel[:2] == b"MZ" and kernel[0x38:0x3C] == b"ARM\x64", kernel[:64]
    assert sections[".initrd"][:2] == b"\x1f\x8b"
    cmdline = sections[".cmdline"].rstrip(b"\0").decode()
    assert f'cmdline: "{cmdline}"' in EXAMPLE.read_text()  # the example's, which names arm64's console
    assert "console=ttyAMA0" in cmdline.split()


def _mcopy(image: Path, offset: int, path: str, dest: Path) -> bytes:
    subprocess.run(["mcopy", "-n", "-i", f"{image}@@{offset}", f"::/{path}", str(dest)], check=True)
    return dest.read_bytes()


def test_esp_uki_and_iso_hold_the_aa64_loader(built: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = built
    uki = (out / "m.efi").read_bytes()
    _check_arm64_uki(uki)
    # raw-efi: GPT, one ESP at 1 MiB holding exactly EFI/BOOT/BOOTAA64.EFI (= the UKI)
    disk = out / "m-efi.img"
    listing = subprocess.run(
        ["mdir", "-b", "-/", "-i", f"{disk}@@{1 << 20}", "::/"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert listing == ["::/EFI/", "::/EFI/BOOT/", "::/EFI/BOOT/BOOTAA64.EFI"]
    assert _mcopy(disk, 1 << 20, "EFI/BOOT/BOOTAA64.EFI", tmp_path / "disk.efi") == uki
    sgdisk = subprocess.run(["sfdisk", "-d", str(disk)], capture_output=True, text=True, check=True).stdout
    assert "label: gpt" in sgdisk and "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" in sgdisk
    # qcow2-efi: the same disk
    check = subprocess.run(["qemu-img", "check", str(out / "m-efi.qcow2")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    converted = tmp_path / "qcow2.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(out / "m-efi.qcow2"), str(converted)], check=True)
    assert _same(converted, disk)
    # iso-efi, iso-efi-initrd: the El Torito image is a FAT with the same UKI
    for iso in ("m-efi.iso", "m-efi-initrd.iso"):
        esp = tmp_path / f"{iso}.esp"
        subprocess.run(
            ["xorriso", "-osirrox", "on", "-indev", str(out / iso), "-extract", "/EFI/efiboot.img", str(esp)],
            capture_output=True,
            check=True,
        )
        assert _mcopy(esp, 0, "EFI/BOOT/BOOTAA64.EFI", tmp_path / f"{iso}.efi") == uki


def _boot(cache: Path, path: Path, state: Path) -> tuple[str, float]:
    """``linuxkit run qemu --arch aarch64 --uefi PATH`` until every marker shows (then the whole
    process group, the CLI and its qemu, is stopped); the console text and the seconds it took."""
    argv = [sys.executable, "-m", "linuxkit.cli.main", "run", "qemu", "--arch", "aarch64", "--uefi"]
    argv += ["--networking", "none", "--mem", "1024", "--state", str(state), str(path)]
    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=_env(cache),
        start_new_session=True,
    )
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    text = b""
    try:
        while time.monotonic() - start < BOOT_TIMEOUT:
            chunk = proc.stdout.read()
            if chunk:
                text += chunk
                if all(m.encode() in text for m in MARKERS):
                    return text.decode(errors="replace"), time.monotonic() - start
            elif proc.poll() is not None:
                break
            else:
                time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    pytest.fail(f"{MARKERS} not seen booting {path.name}:\n{text.decode(errors='replace')[-4000:]}")


@pytest.mark.parametrize("fmt", ["uki", "raw-efi", "iso-efi"])
def test_boots_under_aavmf(built: tuple[Path, Path], tmp_path: Path, fmt: str) -> None:
    cache, out = built
    state = tmp_path / "state"
    console, seconds = _boot(cache, out / OUTPUTS[fmt], state)
    print(f"arm64 {fmt}: run qemu start → markers in {seconds:.1f}s")
    assert "accelerator tcg" in console
    # booted by the firmware (not by qemu's direct kernel loader), with the VM's own variable store
    assert "EFI stub: Booting Linux Kernel" in console or "UEFI firmware" in console, console[:3000]
    assert (state / "fw-AAVMF_VARS.fd").stat().st_size == (AAVMF.parent / "AAVMF_VARS.fd").stat().st_size
