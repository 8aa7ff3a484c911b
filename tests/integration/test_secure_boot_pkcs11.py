"""Secure Boot signing with a key in a PKCS#11 token, for real: a SoftHSM2 token in the test's directory
(``SOFTHSM2_CONF``), an RSA key generated inside it by ``pkcs11-tool`` (it never leaves the token), its
certificate made by ``openssl req`` through the ``pkcs11`` engine; ``build --sign-key pkcs11:URI`` signs
examples/minimal.yml's UKI through sbsign's engine (twice: identical bytes), ``sbverify --cert`` accepts it,
and ``run qemu --secure-boot --secure-boot-cert`` boots it under OVMF with Secure Boot enforced. A wrong PIN
and a certificate of another key are user errors before anything is built."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import ROOT
from tests.integration.test_secure_boot import (
    EPOCH,
    MARKERS,
    OVMF_CODE,
    _env,
    _key,
    _lk,
    _run_qemu,
    _same,
    _sbverify,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLE = ROOT / "examples" / "minimal.yml"
SOFTHSM = Path("/usr/lib/softhsm/libsofthsm2.so")
ENGINES = ("/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so", "/usr/lib/aarch64-linux-gnu/engines-3/pkcs11.so")
PIN = "4321"
URI = f"pkcs11:token=linuxkit-test;object=db;type=private;pin-value={PIN}"


class Token:
    """A SoftHSM2 token with one RSA key (label ``db``) generated inside it, and its certificate."""

    def __init__(self, root: Path) -> None:
        tokens = root / "tokens"
        tokens.mkdir(parents=True)
        self.conf = root / "softhsm2.conf"
        self.conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
        self.env = {"SOFTHSM2_CONF": str(self.conf)}
        self._run(
            "softhsm2-util", "--init-token", "--free", "--label", "linuxkit-test", "--so-pin", "8765", "--pin", PIN
        )
        self._run(
            *("pkcs11-tool", "--module", str(SOFTHSM), "--token-label", "linuxkit-test", "--login", "--pin", PIN),
            *("--keypairgen", "--key-type", "rsa:2048", "--label", "db", "--id", "01"),
        )
        self.cert = root / "db.crt"
        self._run(
            *("openssl", "req", "-new", "-x509", "-engine", "pkcs11", "-keyform", "engine", "-key", URI),
            *("-sha256", "-days", "3650", "-subj", "/CN=linuxkit test token", "-out", str(self.cert)),
        )

    def _run(self, *argv: str) -> None:
        done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **self.env})
        assert done.returncode == 0, (argv, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> Token:
    tools = ("softhsm2-util", "pkcs11-tool", "openssl", "sbsign", "sbverify", "faketime", "qemu-system-x86_64")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing or not SOFTHSM.is_file() or not any(Path(e).is_file() for e in ENGINES) or not OVMF_CODE.is_file():
        pytest.skip(f"missing: {missing or 'SoftHSM2 / the pkcs11 engine / OVMF'} (scripts/setup installs softhsm2,"
                    " opensc, libengine-pkcs11-openssl)")  # fmt: skip
    return Token(tmp_path_factory.mktemp("pkcs11"))


def test_token_key_signs_a_uki_that_boots_with_secure_boot(token: Token, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        argv = ["build", "-f", "uki", "--name", "m", "--dir", out, "--sign-key", URI, "--sign-cert", token.cert]
        _lk(cache, *argv, EXAMPLE, SOURCE_DATE_EPOCH=EPOCH, **token.env)
    uki = outs[0] / "m.efi"
    assert _same(uki, outs[1] / "m.efi"), "two signed builds with the token's key differ"
    ok = _sbverify(token.cert, uki)
    assert ok.returncode == 0 and "Signature verification OK" in ok.stdout + ok.stderr, ok
    console, seconds = _run_qemu(cache, uki, token.cert, tmp_path / "state")
    print(f"token-signed uki: run qemu --secure-boot start → markers in {seconds:.1f}s")
    assert all(m in console for m in MARKERS), console[-4000:]
    assert "EFI stub: UEFI Secure Boot is enabled." in console, console[:4000]


def _build_error(cache: Path, out: Path, key: str, cert: Path, env: dict[str, str]) -> str:
    argv = [sys.executable, "-m", "linuxkit.cli.main", "build", "-f", "uki", "--name", "m", "--dir", str(out)]
    argv += ["--sign-key", key, "--sign-cert", str(cert), str(EXAMPLE)]
    done = subprocess.run(argv, capture_output=True, text=True, env={**_env(cache), **env}, timeout=600)
    assert done.returncode == 2, done.stderr[-3000:]
    assert not out.exists()  # refused before anything was built
    return done.stderr


def test_wrong_pin_or_foreign_certificate_is_refused_before_building(token: Token, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    err = _build_error(cache, tmp_path / "o1", URI.replace(PIN, "0000"), token.cert, token.env)
    assert "OpenSSL cannot read the private key" in err and "pkcs11:token=" in err
    _, other = _key(tmp_path, "other")
    err = _build_error(cache, tmp_path / "o2", URI, other, token.env)
    assert "is not the key of --sign-cert" in err
    err = _build_error(cache, tmp_path / "o3", URI.replace(f";pin-value={PIN}", ""), token.cert, token.env)
    assert "names no PIN" in err
