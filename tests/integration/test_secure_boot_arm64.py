"""arm64 Secure Boot for real: examples/minimal.yml built with ``--arch arm64`` as every EFI format, signed with a
throw-away key (every EFI binary inside each output verified with ``sbverify``), and as an unsigned ``uki`` and
``raw-efi``; then ``linuxkit run qemu --arch aarch64 --uefi --secure-boot --secure-boot-cert CERT`` under AAVMF
(TCG), the certificate enrolled into Debian's ``AAVMF_VARS.ms.fd`` in place of Microsoft's keys: the signed UKI
and disk reach the console markers with the EFI stub reporting Secure Boot on; the unsigned ones are refused
(nothing boots, the firmware's own shell is a security violation too)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.conftest import ROOT
from tests.integration.test_secure_boot import (
    EFI_OUTPUTS,
    EPOCH,
    MARKERS,
    NOTHING_BOOTED,
    _key,
    _lk,
    _run_qemu,
    _sbverify,
    efi_binaries,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLE = ROOT / "examples" / "minimal.yml"
AAVMF = Path("/usr/share/AAVMF/AAVMF_CODE.fd")
AAVMF_MS_VARS = Path("/usr/share/AAVMF/AAVMF_VARS.ms.fd")
BOOTED = {"uki": "m.efi", "raw-efi": "m-efi.img"}


class Built:
    """``signed`` (every EFI format, key ``ours``) and ``unsigned`` (``uki``, ``raw-efi``) arm64 builds."""

    def __init__(self, root: Path) -> None:
        self.cache = root / "cache"
        keys = root / "keys"
        keys.mkdir()
        self.key, self.cert = _key(keys, "ours")
        self.signed, self.unsigned = root / "signed", root / "unsigned"
        sign = ["--sign-key", self.key, "--sign-cert", self.cert]
        for out, formats, flags in ((self.signed, EFI_OUTPUTS, sign), (self.unsigned, BOOTED, [])):
            argv = ["build", "--arch", "arm64", "-f", ",".join(formats), "--name", "m", "--dir", out, *flags]
            _lk(self.cache, *argv, EXAMPLE, SOURCE_DATE_EPOCH=EPOCH)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    tools = ("qemu-system-aarch64", "sbsign", "sbverify", "faketime", "openssl", "mcopy", "xorriso", "qemu-img")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing or not AAVMF.is_file() or not AAVMF_MS_VARS.is_file():
        pytest.skip(f"missing: {missing or AAVMF} (scripts/setup installs qemu-system-arm, qemu-efi-aarch64)")
    return Built(tmp_path_factory.mktemp("secure-boot-arm64"))


def test_every_arm64_efi_binary_is_signed(built: Built, tmp_path: Path) -> None:
    for fmt, name in EFI_OUTPUTS.items():
        found = efi_binaries(built.signed / name, tmp_path / fmt)
        assert found, f"{fmt}: no EFI binary in {name}"
        for where, efi in found.items():
            assert efi.read_bytes()[:2] == b"MZ"
            ok = _sbverify(built.cert, efi)
            assert ok.returncode == 0 and "Signature verification OK" in ok.stdout + ok.stderr, (fmt, where, ok)
        if fmt != "uki":
            assert [w.rsplit("/", 1)[-1] for w in found] == ["BOOTAA64.EFI"], found


@pytest.mark.parametrize("fmt", list(BOOTED))
def test_signed_arm64_image_boots_with_secure_boot(built: Built, tmp_path: Path, fmt: str) -> None:
    state = tmp_path / "state"
    console, seconds = _run_qemu(built.cache, built.signed / BOOTED[fmt], built.cert, state, arch="aarch64")
    print(f"signed arm64 {fmt}: run qemu --secure-boot start → markers in {seconds:.1f}s")
    assert all(m in console for m in MARKERS), console[-4000:]
    assert "EFI stub: UEFI Secure Boot is enabled." in console, console[:4000]
    assert "secureboot: Secure boot enabled" in console, console[:6000]
    # our certificate was enrolled into a copy of the Microsoft store (its keys replaced): the kernel loads
    # exactly one db certificate, ours
    assert "Loaded X.509 cert 'linuxkit test ours" in console, console[:8000]
    assert "Microsoft" not in console
    assert [p.name for p in state.glob("fw-secureboot-*-AAVMF_VARS.fd")], sorted(p.name for p in state.iterdir())


@pytest.mark.parametrize("fmt", list(BOOTED))
def test_unsigned_arm64_image_is_refused(built: Built, tmp_path: Path, fmt: str) -> None:
    console, seconds = _run_qemu(built.cache, built.unsigned / BOOTED[fmt], built.cert, tmp_path / "s", arch="aarch64")
    print(f"unsigned arm64 {fmt}: refused after {seconds:.1f}s")
    assert NOTHING_BOOTED in console, console[-4000:]
    assert not any(m in console for m in MARKERS) and "EFI stub" not in console and "Linux version" not in console
    if fmt == "raw-efi":
        refused = [
            ln for ln in console.splitlines() if "failed to load" in ln and ln.rstrip().endswith("Access Denied")
        ]
        assert refused, console[-4000:]
    assert "EFI Internal Shell" in console and "Security Violation" in console, console[-4000:]
