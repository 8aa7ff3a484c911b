"""Signatures in a registry: push one for a digest (appended to the signature image under
``sha256-<hex>.sig``, as cosign does), and check that one valid for a digest exists there."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ... import log
from .. import digest as _digest
from .. import reference
from ..mediatypes import OCI_MANIFEST
from ..registry.client import Client
from ..registry.errors import RegistryError
from ..registry.options import RegistryOptions
from ..registry.pull import open_client
from ..registry.push import push_blob
from ..registry.remote import put_manifest, remote_manifest
from ..registry.smallblob import fetch_small_blob
from .keys import SigningKey, VerifyKey
from .policy import VerifyPolicy
from .simplesigning import (
    MAX_PAYLOAD,
    SignatureLayer,
    docker_reference,
    payload,
    signature_image,
    signature_layers,
    signature_tag,
    signed_digest,
)

#: signatures of one digest checked at most (each costs a request; a registry could list thousands)
MAX_SIGNATURES = 32


def sign_digests(name: str, digests: Sequence[str], key: SigningKey, options: RegistryOptions) -> list[str]:
    """Sign each of ``digests`` in the repository of ``name``; returns the signature tags written
    (a digest this key has signed already is left as it is)."""
    ref = reference.parse(name)
    written: list[str] = []
    with Client(ref.domain, options, f"signing {ref.name}") as client, tempfile.TemporaryDirectory() as tmp:
        for dig in dict.fromkeys(digests):
            if _sign_one(client, ref, dig, key, Path(tmp)):
                written.append(signature_tag(dig))
    return written


def _sign_one(client: Client, ref: reference.Reference, dig: str, key: SigningKey, tmp: Path) -> bool:
    tag = signature_tag(dig)
    body = payload(docker_reference(ref.domain, ref.path), dig)
    body_digest = _digest.of_bytes(body)
    layers: list[SignatureLayer] = []
    existing = remote_manifest(client, ref.path, tag)
    if existing is not None:
        try:
            layers = signature_layers(existing.raw)
        except ValueError as exc:
            log.warn(f"{client.what}: {ref.name}:{tag} is not a signature image ({exc}); replacing it")
    public = key.public
    if any(layer.digest == body_digest and public.verifies(body, layer.signature) for layer in layers):
        log.info(f"{ref.name}@{dig} is signed with {key.path} already")
        return False
    layers.append(SignatureLayer(body_digest, len(body), key.sign(body)))
    config, manifest = signature_image(layers)
    for data in (body, config):
        blob = _digest.of_bytes(data)
        path = tmp / _digest.hex_of(blob)
        path.write_bytes(data)
        push_blob(client, ref.path, blob, path)
    put_manifest(client, ref.path, manifest, OCI_MANIFEST, tag)
    log.info(f"signed {ref.name}@{dig} ({ref.name}:{tag})")
    return True


@dataclass(frozen=True)
class Verdict:
    """Whether ``digest`` has a valid signature under a key; ``reason`` says why not."""

    ok: bool
    reason: str = ""


def verify_digest(name: str, dig: str, key: VerifyKey, options: RegistryOptions) -> Verdict:
    """Whether the repository of ``name`` holds a signature of ``dig`` valid under ``key``: the
    signature image under ``sha256-<hex>.sig``, a layer whose payload names ``dig`` and whose
    signature verifies. A registry that cannot be reached raises :class:`RegistryError`."""
    ref = reference.parse(name)
    tag = signature_tag(dig)
    with open_client(ref.domain, options, f"verifying {ref.name}@{dig}", pulling=True) as client:
        found = remote_manifest(client, ref.path, tag)
        if found is None:
            return Verdict(False, f"it is not signed (no signature {ref.name}:{tag} in the registry)")
        try:
            layers = signature_layers(found.raw)
        except ValueError as exc:
            return Verdict(False, f"its signature image {ref.name}:{tag} is not readable: {exc}")
        reasons: list[str] = []
        if len(layers) > MAX_SIGNATURES:
            reasons.append(f"only the first {MAX_SIGNATURES} of its {len(layers)} signatures were checked")
        for layer in layers[:MAX_SIGNATURES]:
            reason = _check_layer(client, ref.path, layer, dig, key)
            if reason is None:
                return Verdict(True)
            reasons.append(reason)
    if not reasons:
        return Verdict(False, f"its signature image {ref.name}:{tag} holds no cosign signature")
    return Verdict(False, "; ".join(dict.fromkeys(reasons)))


def _check_layer(client: Client, repository: str, layer: SignatureLayer, dig: str, key: VerifyKey) -> str | None:
    """Why this signature does not sign ``dig`` under ``key`` (``None``: it does)."""
    if layer.size > MAX_PAYLOAD:
        return f"a signature payload of {layer.size} bytes (at most {MAX_PAYLOAD})"
    try:
        data = fetch_small_blob(client, repository, layer.digest, MAX_PAYLOAD)
    except RegistryError as exc:
        return f"a signature payload could not be read: {exc.message}"
    try:
        named = signed_digest(data)
    except ValueError as exc:
        return f"a signature payload is not cosign's: {exc}"
    if named != dig:
        return f"its signature is for another image ({named})"
    if not key.verifies(data, layer.signature):
        return f"its signature does not verify with the key {key.path}"
    return None


Verifier = Callable[[str, str], "str | None"]
"""Checks the signature of an image (reference, digest): ``None`` when it verifies or needs none, else why not."""


def image_verifier(policy: VerifyPolicy, options: RegistryOptions) -> Verifier:
    """The check ``build`` and ``cache pull`` run on each image before using it (see :mod:`.policy`)."""

    def check(ref: str, dig: str) -> str | None:
        key = policy.key_for(ref)
        if key is None:
            log.debug(f"{ref}: no signature needed ({policy.describe()})")
            return None
        try:
            verdict = verify_digest(ref, dig, key, options)
        except RegistryError as exc:
            return f"its signature could not be checked: {exc.message}"
        if not verdict.ok:
            return verdict.reason
        log.info(f"{ref}: signature of {dig} verified with {key.path}")
        return None

    return check
