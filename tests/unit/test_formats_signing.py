"""``build --sign-key/--sign-cert``: the flag rules (checked by the dry run too), the key and certificate
checked before a build, and sbsign's command (under faketime at the build's epoch). Signing for real,
sbverify and the Secure Boot boots are in tests/integration/test_secure_boot.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from linuxkit.cli.build_args import resolve
from linuxkit.cli.main import build_parser
from linuxkit.errors import UserError
from linuxkit.formats.signing import SigningKey, faketime_stamp, sign_argv, signing_key

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


def test_signing_key_checks_the_files(tmp_path: Path) -> None:
    key, cert = tmp_path / "db.key", tmp_path / "db.crt"
    key.write_text(KEY)
    cert.write_text(CERT)
    assert signing_key("", "") is None
    assert signing_key(str(key), str(cert)) == SigningKey(key, cert)
    rsa = tmp_path / "rsa.key"
    rsa.write_text(KEY.replace("PRIVATE", "RSA PRIVATE"))
    assert signing_key(str(rsa), str(cert)) == SigningKey(rsa, cert)
    with pytest.raises(UserError, match="is not a PEM private key"):
        signing_key(str(cert), str(cert))
    with pytest.raises(UserError, match="is not a PEM certificate"):
        signing_key(str(key), str(key))
    with pytest.raises(UserError, match="No such file"):
        signing_key(str(tmp_path / "none.key"), str(cert))
    encrypted = tmp_path / "enc.key"
    encrypted.write_text(KEY.replace("PRIVATE", "ENCRYPTED PRIVATE"))
    with pytest.raises(UserError, match="is encrypted") as err:
        signing_key(str(encrypted), str(cert))
    assert "openssl pkey" in (err.value.hint or "")


def test_sign_argv_stops_the_clock_at_the_epoch() -> None:
    assert faketime_stamp(0) == "1970-01-01 00:00:00"
    assert faketime_stamp(1700000000) == "2023-11-14 22:13:20"
    argv = sign_argv(Path("u.efi"), Path("s.efi"), SigningKey(Path("k"), Path("c")), epoch=86400, sbsign="/bin/sbs")
    assert argv == [
        "faketime", "-f", "1970-01-02 00:00:00", "/bin/sbs", "--key", "k", "--cert", "c", "--output", "s.efi", "u.efi"
    ]  # fmt: skip
