"""Secure Boot signatures on the EFI binaries a format writes (``build --sign-key KEY --sign-cert CERT``).

The one EFI binary every EFI format writes is the image's UKI (``NAME.efi`` of ``uki``, and
``EFI/BOOT/BOOTX64.EFI`` or ``BOOTAA64.EFI``, the only file of the ESP of ``raw-efi``/``qcow2-efi`` and of
the El Torito image of ``iso-efi``/``iso-efi-initrd``; no format installs a separate loader such as
systemd-boot, and the cloud disks ``aws``/``gcp`` boot by BIOS): it is signed before it goes into the ESP
or the ISO. Signatures are Authenticode (PKCS#7 over the PE's image hash), made by Debian's ``sbsign``
(sbsigntool), the tool UEFI distributions sign their loaders with. The key is a PEM file or a PKCS#11
URI (``pkcs11:...``, a key in a token or HSM that sbsign uses through OpenSSL's ``pkcs11`` engine); it is
checked against the certificate with ``openssl`` before anything is built.

An Authenticode signature made by OpenSSL carries a signing time (a signed attribute); sbsign takes it
from the clock and knows no ``SOURCE_DATE_EPOCH``. So sbsign runs under ``faketime`` with the clock
stopped at the build's epoch (``SOURCE_DATE_EPOCH``, else 0, as every other time a build writes): RSA
PKCS#1 v1.5 signatures are deterministic, so the same UKI, key and epoch give the same bytes. UEFI
firmware ignores the signing time (edk2 checks no time when it verifies an image against ``db``).
"""

from __future__ import annotations

import os
import re
import struct
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .. import runner
from ..errors import BuildError, UserError

if TYPE_CHECKING:
    from .fat import FatFile

_PEM_KEY = re.compile(rb"-----BEGIN (RSA |EC )?PRIVATE KEY-----")
_PEM_CERT = b"-----BEGIN CERTIFICATE-----"
SIGN_HINT = (
    "give a PEM private key and its PEM X.509 certificate, e.g. from: openssl req -new -x509 -newkey rsa:2048"
    " -nodes -keyout db.key -out db.crt -subj /CN=me -days 3650"
)


#: ``--sign-key``'s prefix for a key in a PKCS#11 token (RFC 7512), which sbsign reaches through OpenSSL's
#: ``pkcs11`` engine (Debian's libengine-pkcs11-openssl, libp11)
PKCS11_PREFIX = "pkcs11:"
PKCS11_ENGINE = "pkcs11"
PKCS11_HINT = (
    "give the token's key as a PKCS#11 URI, e.g. 'pkcs11:token=TOKEN;object=LABEL;type=private;pin-value=PIN'"
    " (list them with p11tool --list-all-privkeys --login, Debian's gnutls-bin),"
    " with libengine-pkcs11-openssl installed"
)


class SigningKey(NamedTuple):
    """The key and certificate EFI binaries are signed with: a PEM key file, or a PKCS#11 URI signed
    through OpenSSL's ``engine``; the certificate is a PEM X.509 file."""

    key: str
    cert: Path
    engine: str = ""


def _read_head(path: Path, flag: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(1 << 16)
    except OSError as exc:
        raise UserError(f"{flag} {path}: {exc.strerror or exc}", hint=SIGN_HINT) from exc


def _openssl_public_key(argv: list[str]) -> tuple[bytes, str]:
    """The PEM public key ``openssl ARGV`` prints, or ``b""`` and openssl's last error line."""
    done = runner.run([runner.find_tool("openssl"), *argv], check=False, capture=True)
    out = done.stdout if done.returncode == 0 else b""
    if b"-----BEGIN PUBLIC KEY-----" in out:
        return out[out.index(b"-----BEGIN PUBLIC KEY-----") :].strip(), ""
    lines = [ln.strip() for ln in done.stderr.decode(errors="replace").splitlines() if ln.strip()]
    return b"", (lines[-1] if lines else f"openssl exit {done.returncode}")


def cert_public_key(cert: Path) -> bytes:
    """The public key of ``cert`` (PEM X.509), or a :class:`UserError` when OpenSSL cannot read it."""
    key, error = _openssl_public_key(["x509", "-in", str(cert), "-noout", "-pubkey"])
    if not key:
        raise UserError(f"--sign-cert {cert} is not a PEM X.509 certificate ({error})", hint=SIGN_HINT)
    return key


def key_public_key(signing: SigningKey) -> bytes:
    """The public half of ``signing``'s private key (read from its file, or from its token)."""
    if signing.engine:
        argv = ["pkey", "-engine", signing.engine, "-inform", "ENGINE", "-in", signing.key, "-pubout"]
    else:
        argv = ["pkey", "-in", signing.key, "-pubout", "-passin", "pass:"]
    key, error = _openssl_public_key(argv)
    if not key:
        hint = PKCS11_HINT if signing.engine else SIGN_HINT
        raise UserError(f"--sign-key {signing.key}: OpenSSL cannot read the private key ({error})", hint=hint)
    return key


def _pkcs11_key(key: str, cert: str) -> SigningKey:
    if "pin-value=" not in key and "pin-source=" not in key:
        # the engine would ask for the PIN on the terminal, in the middle of a build
        raise UserError(f"--sign-key {key} names no PIN", hint=PKCS11_HINT)
    return SigningKey(key, Path(cert), PKCS11_ENGINE)


def signing_key(key: str, cert: str) -> SigningKey | None:
    """``--sign-key``/``--sign-cert`` as a :class:`SigningKey` (``None`` when neither is given), checked
    before anything is built: the key readable (unencrypted PEM, or a PKCS#11 URI with its PIN), the
    certificate a PEM X.509 certificate, and the key the certificate's."""
    if not key and not cert:
        return None
    if not key or not cert:
        raise UserError("--sign-key and --sign-cert go together", hint=SIGN_HINT)
    if _PEM_CERT not in _read_head(Path(cert), "--sign-cert"):
        raise UserError(f"--sign-cert {cert} is not a PEM certificate", hint=SIGN_HINT)
    if key.startswith(PKCS11_PREFIX):
        signing = _pkcs11_key(key, cert)
    else:
        head = _read_head(Path(key), "--sign-key")
        if b"ENCRYPTED" in head:
            # sbsign would ask for the passphrase on the terminal, in the middle of a build
            raise UserError(
                f"--sign-key {key} is encrypted", hint=f"give it unencrypted: openssl pkey -in {key} -out KEY.pem"
            )
        if not _PEM_KEY.search(head):
            raise UserError(f"--sign-key {key} is not a PEM private key", hint=SIGN_HINT)
        signing = SigningKey(key, Path(cert))
    if key_public_key(signing) != cert_public_key(signing.cert):
        raise UserError(
            f"--sign-key {key} is not the key of --sign-cert {cert}",
            hint="give the certificate made for this key (openssl req -new -x509 -key KEY ...)",
        )
    return signing


def faketime_stamp(epoch: int) -> str:
    """``faketime -f``'s absolute time (the clock frozen there) for ``epoch``, read in ``TZ=UTC``."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(max(epoch, 0)))


def sign_argv(unsigned: Path, signed: Path, signing: SigningKey, *, epoch: int, sbsign: str) -> list[str]:
    """The command signing ``unsigned`` into ``signed`` with the clock stopped at ``epoch`` (through
    OpenSSL's engine for a key in a token)."""
    return [
        "faketime",
        "-f",  # the advanced format: this absolute time freezes the clock (without -f it starts there)
        faketime_stamp(epoch),
        sbsign,
        *(["--engine", signing.engine] if signing.engine else []),
        "--key",
        str(signing.key),
        "--cert",
        str(signing.cert),
        "--output",
        str(signed),
        str(unsigned),
    ]


def sign_efi(unsigned: Path, signed: Path, signing: SigningKey, *, epoch: int) -> None:
    """Write ``unsigned`` (a PE/EFI binary) signed with ``signing`` to ``signed``."""
    sbsign = runner.find_tool("sbsign")  # faketime runs it: name sbsign's package when it is missing
    argv = sign_argv(unsigned, signed, signing, epoch=epoch, sbsign=sbsign)
    done = runner.run(argv, check=False, capture=True, extra_env={"TZ": "UTC"})
    if done.returncode == 0 and signed.is_file():
        return
    errors = done.stderr.decode(errors="replace")
    if "does not match" in errors or "key values mismatch" in errors:
        raise UserError(f"--sign-key {signing.key} is not the key of --sign-cert {signing.cert}", hint=SIGN_HINT)
    lines = [ln for ln in errors.splitlines() if ln.strip() and not ln.startswith(("warning:", "    ", "gaps "))]
    if "unable to load" in errors.lower() or "Can't" in errors:
        raise UserError(f"sbsign cannot use {signing.key} / {signing.cert}: {' '.join(lines[-2:])}", hint=SIGN_HINT)
    raise BuildError(
        f"sbsign failed (exit {done.returncode}) signing {os.path.basename(unsigned)}: {' '.join(lines[-3:])}"
    )


#: PE optional header magic → offset of its data directory count in that header (PE32, PE32+)
_DIRECTORY_COUNT = {0x10B: 92, 0x20B: 108}
#: the certificate table's index among the data directories (IMAGE_DIRECTORY_ENTRY_SECURITY)
_SECURITY_DIRECTORY = 4


def authenticode_signed(head: bytes) -> bool:
    """Whether the PE file starting with ``head`` (its headers: the first 4 KiB are plenty) has a
    certificate table, the place of an Authenticode signature; ``False`` for anything not a PE."""
    try:
        if head[:2] != b"MZ":
            return False
        pe = struct.unpack_from("<I", head, 0x3C)[0]
        if head[pe : pe + 4] != b"PE\0\0":
            return False
        opt = pe + 24
        offset = _DIRECTORY_COUNT.get(struct.unpack_from("<H", head, opt)[0])
        if offset is None or struct.unpack_from("<I", head, opt + offset)[0] <= _SECURITY_DIRECTORY:
            return False
        _, size = struct.unpack_from("<II", head, opt + offset + 4 + 8 * _SECURITY_DIRECTORY)
        return bool(size)
    except struct.error:
        return False


def check_esp_signed(signing: SigningKey | None, files: Sequence[FatFile]) -> None:
    """When the build signs, every EFI binary going into an ESP (``*.EFI``) must carry a signature: a format
    adding a loader it forgot to sign is a build error rather than an image the firmware refuses."""
    if signing is None:
        return
    for file in files:
        if file.dest.lower().endswith(".efi"):
            with open(file.source, "rb") as fh:
                if not authenticode_signed(fh.read(4096)):
                    raise BuildError(f"{file.dest} would go into the ESP unsigned although the build signs")
