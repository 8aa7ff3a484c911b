"""InRelease: envelope, fields, and the gpgv signature check on a recorded file."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from linuxkit.debian.release import dearmor_keyring, parse_release, signed_text, verify_inrelease
from linuxkit.errors import BuildError, UserError

DATA = Path(__file__).parent / "data" / "debian"
RECORDED = DATA / "bookworm-updates.InRelease"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
needs_gpgv = pytest.mark.skipif(
    shutil.which("gpgv") is None or not KEYRING.exists(), reason="gpgv or debian-archive-keyring missing"
)

SIGNED = """\
-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA256

Origin: Test
Suite: stable
Codename: bookworm
Date: Sat, 11 Jul 2026 10:16:37 UTC
Valid-Until: Sat, 18 Jul 2026 10:16:37 UTC
Acquire-By-Hash: yes
- -----dash-escaped line
SHA256:
 9e0b5aabb2465b3d2e7a7fe27f9913846277833f7a2826e7767acccff5b588c5  8790396 main/binary-amd64/Packages.xz
 515E692F2C4121C6FCEC444EF100CC18F79A991910615F3A88C8B7BECFC94D2F 50060337 main/binary-amd64/Packages
-----BEGIN PGP SIGNATURE-----

iQ==
-----END PGP SIGNATURE-----
"""


def test_signed_text_and_fields() -> None:
    text = signed_text(SIGNED)
    assert text.startswith("Origin: Test\n")
    assert "\n-----dash-escaped line\n" in text
    release = parse_release(text.replace("-----dash-escaped line\n", ""))
    assert (release.suite, release.codename, release.acquire_by_hash) == ("stable", "bookworm", True)
    assert release.date == datetime(2026, 7, 11, 10, 16, 37, tzinfo=UTC)
    assert release.valid_until == datetime(2026, 7, 18, 10, 16, 37, tzinfo=UTC)
    xz = release.files["main/binary-amd64/Packages.xz"]
    assert (xz.size, xz.sha256[:8]) == (8790396, "9e0b5aab")
    assert release.files["main/binary-amd64/Packages"].sha256.startswith("515e692f")  # normalised to lower case


@pytest.mark.parametrize(
    "bad",
    [
        "Origin: injected\n" + SIGNED,  # text before the signed message
        SIGNED + "Origin: injected\n",  # text after the signature
        SIGNED.replace("-----BEGIN PGP SIGNATURE-----\n\niQ==\n-----END PGP SIGNATURE-----\n", ""),  # no signature
        SIGNED.replace("Hash: SHA256", "Comment: x"),
        SIGNED.replace("- -----dash", "-----dash"),
        SIGNED + SIGNED,
        "Origin: Debian\nSuite: stable\n",  # unsigned Release
    ],
)
def test_signed_text_refuses_bad_envelopes(bad: str) -> None:
    with pytest.raises(BuildError):
        signed_text(bad)


def test_parse_release_errors() -> None:
    with pytest.raises(BuildError):
        parse_release(" continuation first\n")
    with pytest.raises(BuildError):
        parse_release("no colon here\n")
    with pytest.raises(BuildError, match="invalid date"):
        _ = parse_release("Date: yesterday\n").date


def test_recorded_inrelease_fields() -> None:
    release = parse_release(signed_text(RECORDED.read_text()))
    assert release.codename == "bookworm-updates"
    assert "main/binary-amd64/Packages.xz" in release.files


@pytest.mark.integration
@needs_gpgv
def test_gpgv_accepts_recorded_inrelease(tmp_path: Path) -> None:
    text = verify_inrelease(RECORDED, KEYRING, what="t", cache_dir=tmp_path)
    assert parse_release(text).codename == "bookworm-updates"


@pytest.mark.integration
@needs_gpgv
def test_gpgv_refuses_tampered_inrelease(tmp_path: Path) -> None:
    tampered = tmp_path / "InRelease"
    tampered.write_text(RECORDED.read_text().replace("Codename: bookworm-updates", "Codename: bookworm-evil", 1))
    with pytest.raises(BuildError, match="signature check failed"):
        verify_inrelease(tampered, KEYRING, what="t", cache_dir=tmp_path)


@pytest.mark.integration
@needs_gpgv
def test_gpgv_refuses_wrong_keyring_and_unsigned(tmp_path: Path) -> None:
    wrong = Path("/usr/share/keyrings/debian-archive-removed-keys.gpg")
    if wrong.exists():
        with pytest.raises(BuildError, match="signature check failed"):
            verify_inrelease(RECORDED, wrong, what="t", cache_dir=tmp_path)
    unsigned = tmp_path / "Release"
    unsigned.write_text(signed_text(RECORDED.read_text()))
    with pytest.raises(BuildError, match="signature check failed"):
        verify_inrelease(unsigned, KEYRING, what="t", cache_dir=tmp_path)
    with pytest.raises(UserError, match="cannot read keyring"):
        verify_inrelease(RECORDED, tmp_path / "missing.gpg", what="t", cache_dir=tmp_path)


@pytest.mark.integration
@needs_gpgv
def test_armored_keyring_is_dearmored(tmp_path: Path) -> None:
    armored = sorted(Path("/etc/apt/trusted.gpg.d").glob("debian-archive-bookworm-automatic.asc"))
    if not armored:
        pytest.skip("no armored Debian key on this host")
    binary = dearmor_keyring(armored[0], tmp_path)
    assert binary.parent == tmp_path / "keyrings" and binary.read_bytes()[:1] in (b"\x98", b"\x99", b"\xc6")
    assert dearmor_keyring(KEYRING, tmp_path) == KEYRING  # binary keyrings are used as they are
    verify_inrelease(RECORDED, armored[0], what="t", cache_dir=tmp_path)
