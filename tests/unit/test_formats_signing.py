"""``build --sign-key/--sign-cert``: the flag rules (checked by the dry run too), the key and certificate
checked before a build, and sbsign's command (under faketime at the build's epoch). Signing for real,
sbverify and the Secure Boot boots are in tests/integration/test_secure_boot.py."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from linuxkit.cli.build_args import resolve
from linuxkit.cli.main import build_parser, main
from linuxkit.errors import BuildError, UserError
from linuxkit.formats.fat import FatFile
from linuxkit.formats.signing import (
    SigningKey,
    authenticode_signed,
    check_esp_signed,
    faketime_stamp,
    sign_argv,
    signing_key,
)

KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
CERT = "-----BEGIN CERTIFICATE-----\nMIID\n-----END CERTIFICATE-----\n"


def _args(*flags: str) -> list[str]:
    return ["build", *flags, "x.yml"]


def test_build_flags_and_pair_rule() -> None:
    parser = build_parser(lazy=False)
    args = parser.parse_args(_args("--sign-key", "db.key", "--sign-cert", "db.crt", "-f", "uki"))
    assert (args.sign_key, args.sign_cert) == ("db.key", "db.crt")
    assert resolve(args).formats == ["uki"]
    plain = parser.parse_args(_args())
    assert (plain.sign_key, plain.sign_cert) == ("", "")
    for flags in (("--sign-key", "db.key"), ("--sign-cert", "db.crt")):
        with pytest.raises(UserError, match="--sign-key and --sign-cert go together"):
            resolve(parser.parse_args(_args(*flags)))


def _pair(folder: Path, name: str) -> tuple[Path, Path]:
    """A throw-away RSA key and its self-signed certificate (PEM), made by openssl."""
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    subprocess.run(
        [
            *("openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)),
        ],
        capture_output=True,
        check=True,
    )
    return key, cert


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is missing (scripts/setup installs it)")
    folder = tmp_path_factory.mktemp("keys")
    return {name: _pair(folder, name) for name in ("ours", "theirs")}


def test_signing_key_checks_the_files(keys: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    key, cert = keys["ours"]
    assert signing_key("", "") is None
    assert signing_key(str(key), str(cert)) == SigningKey(str(key), cert)
    # the traditional RSA spelling of the same key
    rsa = tmp_path / "rsa.key"
    subprocess.run(
        ["openssl", "rsa", "-traditional", "-in", str(key), "-out", str(rsa)], capture_output=True, check=True
    )
    assert b"BEGIN RSA PRIVATE KEY" in rsa.read_bytes()
    assert signing_key(str(rsa), str(cert)) == SigningKey(str(rsa), cert)
    with pytest.raises(UserError, match="is not a PEM private key"):
        signing_key(str(cert), str(cert))
    with pytest.raises(UserError, match="is not a PEM certificate"):
        signing_key(str(key), str(key))
    with pytest.raises(UserError, match="No such file"):
        signing_key(str(tmp_path / "none.key"), str(cert))
    with pytest.raises(UserError, match="No such file"):
        signing_key(str(key), str(tmp_path / "none.crt"))
    with pytest.raises(UserError, match="Is a directory") as err:
        signing_key(str(tmp_path), str(cert))  # unreadable as a file (root reads any mode)
    assert "openssl req" in (err.value.hint or "")
    encrypted = tmp_path / "enc.key"
    subprocess.run(
        ["openssl", "pkey", "-in", str(key), "-aes256", "-passout", "pass:secret", "-out", str(encrypted)],
        capture_output=True,
        check=True,
    )
    with pytest.raises(UserError, match="is encrypted") as err:
        signing_key(str(encrypted), str(cert))
    assert "openssl pkey" in (err.value.hint or "")


def test_key_must_be_the_certificates(keys: dict[str, tuple[Path, Path]]) -> None:
    (key, cert), (other_key, other_cert) = keys["ours"], keys["theirs"]
    with pytest.raises(UserError, match="is not the key of --sign-cert") as err:
        signing_key(str(key), str(other_cert))
    assert "openssl req -new -x509 -key" in (err.value.hint or "")
    with pytest.raises(UserError, match="is not the key of --sign-cert"):
        signing_key(str(other_key), str(cert))
    assert signing_key(str(other_key), str(other_cert)) == SigningKey(str(other_key), other_cert)


def test_certificate_must_be_pem_x509(keys: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    key, cert = keys["ours"]
    der = tmp_path / "db.der"
    subprocess.run(["openssl", "x509", "-in", str(cert), "-outform", "DER", "-out", str(der)], check=True)
    with pytest.raises(UserError, match="is not a PEM certificate"):
        signing_key(str(key), str(der))
    # the PEM armour around something that is not a certificate: OpenSSL's reason in the message
    fake = tmp_path / "fake.crt"
    fake.write_text("-----BEGIN CERTIFICATE-----\nMIID\n-----END CERTIFICATE-----\n")
    with pytest.raises(UserError, match=r"is not a PEM X\.509 certificate") as err:
        signing_key(str(key), str(fake))
    assert "openssl req" in (err.value.hint or "")
    # a private key whose PEM armour is right but whose body is not a key
    broken = tmp_path / "broken.key"
    broken.write_text(KEY)
    with pytest.raises(UserError, match="OpenSSL cannot read the private key"):
        signing_key(str(broken), str(cert))


def test_pkcs11_uri_needs_a_pin_and_signs_through_the_engine(keys: dict[str, tuple[Path, Path]]) -> None:
    _, cert = keys["ours"]
    with pytest.raises(UserError, match="names no PIN") as err:
        signing_key("pkcs11:token=lk;object=db;type=private", str(cert))
    assert "pkcs11:token=" in (err.value.hint or "")
    signing = SigningKey("pkcs11:token=lk;object=db;type=private;pin-value=1234", Path("c"), "pkcs11")
    argv = sign_argv(Path("u.efi"), Path("s.efi"), signing, epoch=0, sbsign="/bin/sbs")
    assert argv[3:8] == ["/bin/sbs", "--engine", "pkcs11", "--key", signing.key]


def test_build_refuses_a_bad_key_before_building(keys: dict[str, tuple[Path, Path]], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    key, _ = keys["ours"]
    _, other_cert = keys["theirs"]
    out = tmp_path / "out"
    config = tmp_path / "x.yml"
    config.write_text("kernel:\n  image: linuxkit/kernel:6.6.13\n  cmdline: console=ttyS0\n")
    argv = ["build", "-f", "uki", "--dir", str(out), "--sign-key", str(key), "--sign-cert", str(other_cert)]
    assert main([*argv, str(config)]) == 2
    assert "is not the key of --sign-cert" in capsys.readouterr().err
    assert not out.exists()


def test_sign_argv_stops_the_clock_at_the_epoch() -> None:
    assert faketime_stamp(0) == "1970-01-01 00:00:00"
    assert faketime_stamp(1700000000) == "2023-11-14 22:13:20"
    argv = sign_argv(Path("u.efi"), Path("s.efi"), SigningKey("k", Path("c")), epoch=86400, sbsign="/bin/sbs")
    assert argv == [
        "faketime", "-f", "1970-01-02 00:00:00", "/bin/sbs", "--key", "k", "--cert", "c", "--output", "s.efi", "u.efi"
    ]  # fmt: skip


def _pe(*, security_size: int, pe32_plus: bool = True, directories: int = 16) -> bytes:
    """The headers of a PE file: DOS stub pointing at 0x80, COFF header, optional header with
    ``directories`` data directories, the certificate table (index 4) ``security_size`` bytes long."""
    opt_magic, count_at = (0x20B, 108) if pe32_plus else (0x10B, 92)
    head = bytearray(4096)
    head[:2] = b"MZ"
    struct.pack_into("<I", head, 0x3C, 0x80)
    head[0x80:0x84] = b"PE\0\0"
    opt = 0x80 + 24
    struct.pack_into("<H", head, opt, opt_magic)
    struct.pack_into("<I", head, opt + count_at, directories)
    struct.pack_into("<II", head, opt + count_at + 4 + 8 * 4, 0x1000 if security_size else 0, security_size)
    return bytes(head)


def test_authenticode_signed_reads_the_certificate_table() -> None:
    assert authenticode_signed(_pe(security_size=1808))
    assert authenticode_signed(_pe(security_size=1808, pe32_plus=False))
    assert not authenticode_signed(_pe(security_size=0))
    assert not authenticode_signed(_pe(security_size=1808, directories=4))  # no certificate table entry
    assert not authenticode_signed(b"MZ" + b"\0" * 10)  # truncated
    assert not authenticode_signed(b"\x7fELF" + b"\0" * 4092)
    assert not authenticode_signed(_pe(security_size=1808).replace(b"PE\0\0", b"NE\0\0", 1))


def test_a_signing_build_refuses_an_unsigned_efi_binary_in_an_esp(tmp_path: Path) -> None:
    signed, unsigned = tmp_path / "signed.efi", tmp_path / "unsigned.efi"
    signed.write_bytes(_pe(security_size=1808))
    unsigned.write_bytes(_pe(security_size=0))
    key = SigningKey("k", Path("c"))
    files = [FatFile("EFI/BOOT/BOOTX64.EFI", signed), FatFile("syslinux.cfg", unsigned)]
    check_esp_signed(key, files)  # the EFI binary is signed; other files are not EFI binaries
    check_esp_signed(None, [FatFile("EFI/BOOT/BOOTX64.EFI", unsigned)])  # an unsigned build
    with pytest.raises(BuildError, match=r"EFI/systemd/loader\.efi would go into the ESP unsigned"):
        check_esp_signed(key, [*files, FatFile("EFI/systemd/loader.efi", unsigned)])
