"""ECDSA P-256 keys as cosign uses them: PEM in, ASN.1 DER signatures over SHA-256 out.

``cryptography`` is imported here only, by the verbs that sign or verify.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ...errors import UserError

#: the environment variables read for the password of an encrypted PEM key (ours first, then cosign's)
PASSWORD_VARIABLES = ("LINUXKIT_SIGN_PASSWORD", "COSIGN_PASSWORD")
_MAX_KEY_FILE = 64 << 10
_COSIGN_ENCRYPTED = (b"ENCRYPTED SIGSTORE PRIVATE KEY", b"ENCRYPTED COSIGN PRIVATE KEY")
_MAKE_KEY_HINT = (
    "make a P-256 key pair with `openssl ecparam -genkey -name prime256v1 -noout | openssl pkcs8 -topk8 -nocrypt"
    " -out cosign.key` and `openssl ec -in cosign.key -pubout -out cosign.pub`"
)


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_KEY_FILE + 1)
    except OSError as exc:
        raise UserError(f"{what} {path}: {exc.strerror or exc}") from exc
    if len(data) > _MAX_KEY_FILE:
        raise UserError(f"{what} {path} is larger than {_MAX_KEY_FILE} bytes: not a PEM key")
    return data


def _password() -> bytes | None:
    for name in PASSWORD_VARIABLES:
        value = os.environ.get(name)
        if value:
            return value.encode()
    return None


@dataclass(frozen=True)
class SigningKey:
    """A P-256 private key read from ``path``."""

    path: str
    key: ec.EllipticCurvePrivateKey

    def sign(self, payload: bytes) -> str:
        """The base64 (standard alphabet) DER ECDSA signature of ``payload`` over its SHA-256."""
        return base64.b64encode(self.key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()

    @property
    def public(self) -> VerifyKey:
        return VerifyKey(self.path, self.key.public_key())


@dataclass(frozen=True)
class VerifyKey:
    """A P-256 public key read from ``path``."""

    path: str
    key: ec.EllipticCurvePublicKey

    def verifies(self, payload: bytes, signature_b64: str) -> bool:
        """Whether ``signature_b64`` (base64 DER ECDSA) signs ``payload`` under this key."""
        try:
            signature = base64.b64decode(signature_b64.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        try:
            self.key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    def fingerprint(self) -> str:
        """SHA-256 of the key's DER SubjectPublicKeyInfo, hex (to name the key in messages)."""
        der = self.key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        digest = hashes.Hash(hashes.SHA256())
        digest.update(der)
        return digest.finalize().hex()


def _p256(key: object, path: str, what: str) -> None:
    if not isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) or not isinstance(
        key.curve, ec.SECP256R1
    ):
        raise UserError(
            f"{what} {path} is not an ECDSA P-256 key",
            hint="cosign's keyed signatures are ECDSA P-256 with SHA-256; " + _MAKE_KEY_HINT,
        )


def load_signing_key(path: str) -> SigningKey:
    """The P-256 private key in the PEM file ``path`` (PKCS#8 or SEC1; encrypted ones with the
    password from ``LINUXKIT_SIGN_PASSWORD`` or ``COSIGN_PASSWORD``)."""
    data = _read(path, "--sign-key")
    if any(marker in data for marker in _COSIGN_ENCRYPTED):
        raise UserError(
            f"--sign-key {path} is in cosign's own encrypted key format, which is not read here",
            hint="give the key as PEM (PKCS#8, optionally encrypted with a password in LINUXKIT_SIGN_PASSWORD); "
            + _MAKE_KEY_HINT,
        )
    try:
        key = serialization.load_pem_private_key(data, password=_password())
    except TypeError as exc:  # encrypted without a password, or a password for a plain key
        raise UserError(
            f"--sign-key {path}: {exc}",
            hint="set LINUXKIT_SIGN_PASSWORD (or COSIGN_PASSWORD) to the key's password, or unset it",
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise UserError(f"--sign-key {path} is not a readable PEM private key: {exc}", hint=_MAKE_KEY_HINT) from exc
    _p256(key, path, "--sign-key")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return SigningKey(path, key)


def load_verify_key(path: str | Path, what: str = "--verify-key") -> VerifyKey:
    """The P-256 public key in the PEM file ``path`` (``PUBLIC KEY``, as ``cosign generate-key-pair`` writes)."""
    data = _read(str(path), what)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise UserError(
            f"{what} {path} is not a readable PEM public key: {exc}",
            hint="give the public key (-----BEGIN PUBLIC KEY-----), e.g. cosign.pub",
        ) from exc
    _p256(key, str(path), what)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return VerifyKey(str(path), key)
