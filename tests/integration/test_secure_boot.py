"""Secure Boot for real: examples/minimal.yml built as every EFI format (``uki``, ``raw-efi``, ``qcow2-efi``,
``iso-efi``, ``iso-efi-initrd``) unsigned, signed with a throw-away key (twice, with ``SOURCE_DATE_EPOCH``:
identical bytes) and signed with another key; every EFI binary inside each output (read back with mtools,
xorriso, sfdisk, qemu-img) checked with ``sbverify``; then ``uki``, ``raw-efi`` and ``iso-efi`` booted by
``linuxkit run qemu --secure-boot --secure-boot-cert CERT`` (OVMF's Secure Boot build, TCG, the certificate
enrolled by virt-fw-vars). The signed images reach the console markers with the EFI stub reporting Secure
Boot on; the unsigned ones and those signed with the other key are refused by the firmware (its boot
manager's refusal on the console, the kernel never starts: the wait ends at the firmware's "no bootable
option", bounded)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLE = ROOT / "examples" / "minimal.yml"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd")
EPOCH = "1700000000"  # 2023-11-14 22:13:20 UTC
OUTPUTS = {"uki": "m.efi", "raw-efi": "m-efi.img", "iso-efi": "m-efi.iso"}
#: every EFI format (those booted above and the two that hold the same files in another container)
EFI_OUTPUTS = {**OUTPUTS, "qcow2-efi": "m-efi.qcow2", "iso-efi-initrd": "m-efi-initrd.iso"}
#: the GPT type of an EFI system partition (sfdisk -J spelling)
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
MARKERS = ("Welcome to LinuxKit", "hello from an onboot container")
#: the end of OVMF's boot manager when nothing it tried would start
NOTHING_BOOTED = "BdsDxe: No bootable option or device was found"
#: TCG on a busy 2-core machine: a signed boot takes ~45 s when the machine is quiet
BOOT_TIMEOUT = 600.0


def _env(cache: Path, **extra: str) -> dict[str, str]:
    debs = Path(os.environ.get("LINUXKIT_TEST_CACHE", Path.home() / ".cache" / "linuxkit-tests")) / "debian"
    env = {**os.environ, "LINUXKIT_CACHE": str(cache), "LINUXKIT_DEBIAN_CACHE": str(debs), "COLUMNS": "200"}
    env.pop("SOURCE_DATE_EPOCH", None)
    return {**env, **extra}


def _lk(cache: Path, *args: str | os.PathLike[str], **env: str) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(
        [sys.executable, "-m", "linuxkit.cli.main", *map(str, args)],
        capture_output=True,
        env=_env(cache, **env),
        timeout=1800,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-4000:]
    return proc


def _same(a: Path, b: Path) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(1 << 20), fb.read(1 << 20)
            if ca != cb:
                return False
            if not ca:
                return True


def _key(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    subprocess.run(
        [
            *("openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3650"),
            *("-subj", f"/CN=linuxkit test {name}", "-keyout", str(key), "-out", str(cert)),
        ],
        capture_output=True,
        check=True,
    )
    return key, cert


class Built:
    """The builds: ``unsigned``, ``signed`` (key ``ours``), ``again`` (the same, built again), ``other``
    (signed with the key ``theirs``), each a directory with ``m.efi`` and ``m-efi.img``."""

    def __init__(self, root: Path) -> None:
        self.cache = root / "cache"
        self.keys = root / "keys"
        self.keys.mkdir()
        self.ours = _key(self.keys, "ours")
        self.theirs = _key(self.keys, "theirs")
        self.dirs = {name: root / name for name in ("unsigned", "signed", "again", "other")}
        formats = ",".join(EFI_OUTPUTS)
        for name, out in self.dirs.items():
            key, cert = self.theirs if name == "other" else self.ours
            sign = [] if name == "unsigned" else ["--sign-key", key, "--sign-cert", cert]
            _lk(
                self.cache, "build", "-f", formats, "--name", "m", "--dir", out, *sign, EXAMPLE, SOURCE_DATE_EPOCH=EPOCH
            )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    tools = ("qemu-system-x86_64", "sbsign", "sbverify", "sbattach", "faketime", "openssl", "mcopy", "xorriso")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing or not OVMF_CODE.is_file():
        pytest.skip(f"missing: {missing or OVMF_CODE} (scripts/setup installs sbsigntool, faketime, ovmf)")
    return Built(tmp_path_factory.mktemp("secure-boot"))


def _sbverify(cert: Path, efi: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sbverify", "--cert", str(cert), str(efi)], capture_output=True, text=True)


def _esp_loader(disk: Path, dest: Path) -> Path:
    subprocess.run(["mcopy", "-n", "-i", f"{disk}@@{1 << 20}", "::/EFI/BOOT/BOOTX64.EFI", str(dest)], check=True)
    return dest


def _tool(*argv: str | os.PathLike[str]) -> str:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=True).stdout


def _fat_efi_binaries(image: Path, offset: int, work: Path, where: str) -> dict[str, Path]:
    """Every ``*.EFI`` of the FAT at ``offset`` in ``image``, wherever it sits, copied out: inside → file."""
    found: dict[str, Path] = {}
    for entry in _tool("mdir", "-b", "-/", "-i", f"{image}@@{offset}", "::/").splitlines():
        if entry.lower().endswith(".efi"):
            dest = work / f"{len(list(work.iterdir()))}.efi"
            _tool("mcopy", "-n", "-i", f"{image}@@{offset}", entry, dest)
            found[f"{where}:{entry.removeprefix('::')}"] = dest
    return found


def efi_binaries(output: Path, work: Path) -> dict[str, Path]:
    """Every EFI binary an output holds, read back with independent tools: a UKI is one; a disk's (a qcow2
    converted by qemu-img) from each EFI system partition of its GPT (sfdisk, mtools); an ISO's from its
    ISO 9660 tree and from each El Torito boot image (xorriso, then mtools)."""
    work.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".efi":
        return {output.name: output}
    if output.suffix == ".qcow2":
        raw = work / "disk.raw"
        _tool("qemu-img", "convert", "-O", "raw", output, raw)
        return efi_binaries(raw, work)
    found: dict[str, Path] = {}
    if output.suffix == ".iso":
        boot = work / "el-torito"
        _tool("xorriso", "-osirrox", "on", "-indev", output, "-extract_boot_images", boot)
        tree = _tool("xorriso", "-indev", output, "-find", "/", "-type", "f")
        for line in tree.splitlines():
            path = line.strip().strip("'")
            if path.lower().endswith(".efi"):
                dest = work / f"iso-{len(found)}.efi"
                _tool("xorriso", "-osirrox", "on", "-indev", output, "-extract", path, dest)
                found[f"iso9660:{path}"] = dest
        for image in sorted(boot.iterdir()):
            if "uefi" in image.name:
                found.update(_fat_efi_binaries(image, 0, work, f"el-torito:{image.name}"))
        return found
    table = json.loads(_tool("sfdisk", "-J", output))["partitiontable"]
    sector = table.get("sectorsize", 512)
    for part in table["partitions"]:
        if part["type"].upper() == ESP_TYPE:
            found.update(_fat_efi_binaries(output, part["start"] * sector, work, f"esp@{part['start']}"))
    return found


def test_every_efi_binary_of_every_efi_format_is_signed(built: Built, tmp_path: Path) -> None:
    _, ours = built.ours
    for fmt, name in EFI_OUTPUTS.items():
        signed = efi_binaries(built.dirs["signed"] / name, tmp_path / f"signed-{fmt}")
        assert signed, f"{fmt}: no EFI binary found in {name}"
        for where, efi in signed.items():
            ok = _sbverify(ours, efi)
            assert ok.returncode == 0 and "Signature verification OK" in ok.stdout + ok.stderr, (fmt, where, ok)
        # the unsigned build has the same binaries in the same places, none of them signed
        unsigned = efi_binaries(built.dirs["unsigned"] / name, tmp_path / f"unsigned-{fmt}")
        assert sorted(unsigned) == sorted(signed), fmt
        assert all(_sbverify(ours, efi).returncode != 0 for efi in unsigned.values()), fmt
        print(f"{fmt}: {', '.join(sorted(signed))} signed")


def test_signed_outputs_verify_and_are_reproducible(built: Built, tmp_path: Path) -> None:
    _, ours = built.ours
    _, theirs = built.theirs
    signed, again, unsigned = built.dirs["signed"], built.dirs["again"], built.dirs["unsigned"]
    for name in EFI_OUTPUTS.values():
        assert _same(signed / name, again / name), f"signed {name} differs between two builds"
    uki = signed / "m.efi"
    ok = _sbverify(ours, uki)
    assert ok.returncode == 0 and "Signature verification OK" in ok.stdout + ok.stderr, ok.stderr
    assert _sbverify(theirs, uki).returncode != 0
    assert _sbverify(ours, built.dirs["other"] / "m.efi").returncode != 0
    assert _sbverify(ours, unsigned / "m.efi").returncode != 0
    # the ESP's loader is the signed UKI, signed before it went in
    assert _same(_esp_loader(signed / "m-efi.img", tmp_path / "esp.efi"), uki)
    assert _sbverify(ours, tmp_path / "esp.efi").returncode == 0
    assert _sbverify(ours, _esp_loader(unsigned / "m-efi.img", tmp_path / "plain.efi")).returncode != 0
    # and the El Torito image's (a FAT holding the same loader)
    esp = tmp_path / "efiboot.img"
    subprocess.run(
        ["xorriso", "-osirrox", "on", "-indev", str(signed / "m-efi.iso"), "-extract", "/EFI/efiboot.img", str(esp)],
        capture_output=True,
        check=True,
    )
    subprocess.run(["mcopy", "-n", "-i", str(esp), "::/EFI/BOOT/BOOTX64.EFI", str(tmp_path / "iso.efi")], check=True)
    assert _same(tmp_path / "iso.efi", uki)
    # the signature's signing time is SOURCE_DATE_EPOCH (what makes two signed builds identical)
    sig = tmp_path / "m.p7"
    subprocess.run(["sbattach", "--detach", str(sig), str(uki)], capture_output=True, check=True)
    printed = subprocess.run(
        ["openssl", "pkcs7", "-print", "-inform", "DER", "-in", str(sig)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "signingTime" in printed and "UTCTIME:Nov 14 22:13:20 2023 GMT" in printed, printed[-3000:]


def _run_qemu(cache: Path, image: Path, cert: Path, state: Path, *, arch: str = "") -> tuple[str, float]:
    """``linuxkit run qemu --secure-boot --secure-boot-cert CERT IMAGE`` (``--arch ARCH``) until the markers
    show or the firmware gives up (then the CLI and its qemu, one process group, are stopped): the console,
    seconds."""
    argv = [sys.executable, "-m", "linuxkit.cli.main", "run", "qemu", "--secure-boot", "--secure-boot-cert", str(cert)]
    argv += ["--arch", arch] if arch else []
    argv += ["--uefi", "--networking", "none", "--mem", "1024", "--state", str(state), str(image)]
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
                if all(m.encode() in text for m in MARKERS) or NOTHING_BOOTED.encode() in text:
                    break
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
    return text.decode(errors="replace"), time.monotonic() - start


@pytest.mark.parametrize("fmt", list(OUTPUTS))
def test_signed_image_boots_with_secure_boot_enforced(built: Built, tmp_path: Path, fmt: str) -> None:
    _, cert = built.ours
    state = tmp_path / "state"
    console, seconds = _run_qemu(built.cache, built.dirs["signed"] / OUTPUTS[fmt], cert, state)
    print(f"signed {fmt}: run qemu --secure-boot start → markers in {seconds:.1f}s")
    assert all(m in console for m in MARKERS), console[-4000:]
    assert "EFI stub: UEFI Secure Boot is enabled." in console, console[:4000]
    # our certificate enrolled into the VM's own variable store (the system's templates untouched)
    assert [p.name for p in state.glob("fw-secureboot-*-OVMF_VARS_4M.fd")], sorted(os.listdir(state))


@pytest.mark.parametrize("fmt", list(OUTPUTS))
@pytest.mark.parametrize("build", ["unsigned", "other"])
def test_unsigned_or_foreign_image_is_refused(built: Built, tmp_path: Path, fmt: str, build: str) -> None:
    _, cert = built.ours
    console, seconds = _run_qemu(built.cache, built.dirs[build] / OUTPUTS[fmt], cert, tmp_path / "state")
    print(f"{build} {fmt}: refused after {seconds:.1f}s")
    assert NOTHING_BOOTED in console, console[-4000:]
    assert not any(m in console for m in MARKERS) and "EFI stub" not in console and "Linux version" not in console
    if fmt != "uki":
        # the boot manager names the disk's (or CD's) loader and the verification's verdict
        refused = [
            ln for ln in console.splitlines() if "failed to load" in ln and ln.rstrip().endswith("Access Denied")
        ]
        assert refused, console[-4000:]
    # enforcement: the firmware's own shell (not signed by our key) is refused too
    assert "EFI Internal Shell" in console and "Security Violation" in console, console[-4000:]
