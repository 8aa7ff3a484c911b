"""Secure Boot signatures on the EFI binaries a format writes (``build --sign-key KEY --sign-cert CERT``).

The one EFI binary every EFI format writes is the image's UKI (``NAME.efi``, and ``EFI/BOOT/BOOTX64.EFI``
or ``BOOTAA64.EFI`` in the ESP of ``raw-efi``/``qcow2-efi`` and the El Torito image of ``iso-efi``): it is
signed before it goes into the ESP or the ISO. Signatures are Authenticode (PKCS#7 over the PE's image
hash), made by Debian's ``sbsign`` (sbsigntool), the tool UEFI distributions sign their loaders with.

An Authenticode signature made by OpenSSL carries a signing time (a signed attribute); sbsign takes it
from the clock and knows no ``SOURCE_DATE_EPOCH``. So sbsign runs under ``faketime`` with the clock
stopped at the build's epoch (``SOURCE_DATE_EPOCH``, else 0, as every other time a build writes): RSA
PKCS#1 v1.5 signatures are deterministic, so the same UKI, key and epoch give the same bytes. UEFI
firmware ignores the signing time (edk2 checks no time when it verifies an image against ``db``).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import NamedTuple

from .. import runner
from ..errors import BuildError, UserError

_PEM_KEY = re.compile(rb"-----BEGIN (RSA |EC )?PRIVATE KEY-----")
_PEM_CERT = b"-----BEGIN CERTIFICATE-----"
SIGN_HINT = (
    "give a PEM private key and its PEM X.509 certificate, e.g. from: openssl req -new -x509 -newkey rsa:2048"
    " -nodes -keyout db.key -out db.crt -subj /CN=me -days 3650"
)


class SigningKey(NamedTuple):
    """The key and certificate EFI binaries are signed with (PEM files)."""

    key: Path
    cert: Path


def _read_head(path: Path, flag: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(1 << 16)
    except OSError as exc:
        raise UserError(f"{flag} {path}: {exc.strerror or exc}", hint=SIGN_HINT) from exc


def signing_key(key: str, cert: str) -> SigningKey | None:
    """``--sign-key``/``--sign-cert`` as a :class:`SigningKey` (``None`` when neither is given), the
    files checked to be a PEM private key and a PEM certificate before anything is built."""
    if not key and not cert:
        return None
    if not key or not cert:
        raise UserError("--sign-key and --sign-cert go together", hint=SIGN_HINT)
    head = _read_head(Path(key), "--sign-key")
    if b"ENCRYPTED" in head:
        # sbsign would ask for the passphrase on the terminal, in the middle of a build
        raise UserError(
            f"--sign-key {key} is encrypted", hint=f"give it unencrypted: openssl pkey -in {key} -out KEY.pem"
        )
    if not _PEM_KEY.search(head):
        raise UserError(f"--sign-key {key} is not a PEM private key", hint=SIGN_HINT)
    if _PEM_CERT not in _read_head(Path(cert), "--sign-cert"):
        raise UserError(f"--sign-cert {cert} is not a PEM certificate", hint=SIGN_HINT)
    return SigningKey(Path(key), Path(cert))


def faketime_stamp(epoch: int) -> str:
    """``faketime -f``'s absolute time (the clock frozen there) for ``epoch``, read in ``TZ=UTC``."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(max(epoch, 0)))


def sign_argv(unsigned: Path, signed: Path, signing: SigningKey, *, epoch: int, sbsign: str) -> list[str]:
    """The command signing ``unsigned`` into ``signed`` with the clock stopped at ``epoch``."""
    return [
        "faketime",
        "-f",  # the advanced format: this absolute time freezes the clock (without -f it starts there)
        faketime_stamp(epoch),
        sbsign,
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
