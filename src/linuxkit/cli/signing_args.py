"""The image-signing flags of ``pkg build|push``, ``cache push`` (``--sign-key``), ``build`` and
``cache pull`` (``--verify-key``, ``--verify-policy``). The signing modules (and ``cryptography``)
are imported only when one of these flags is given."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import log
from ..errors import UserError
from ..oci import reference

if TYPE_CHECKING:
    from ..images import SignatureCheck
    from ..oci.cache import Cache
    from ..oci.registry import RegistryOptions
    from ..oci.signing.keys import SigningKey
    from ..oci.signing.policy import VerifyPolicy


def _need_cryptography(flag: str) -> None:
    """A clear error naming the ``signing`` extra when ``cryptography`` is not installed."""
    from ..cloud.extras import require

    require("signing", "cryptography", verb=f"{flag} (signed images)")


def signature_check(verify_key: str, policy_file: str, options: RegistryOptions) -> SignatureCheck | None:
    """The check of ``build --verify-key/--verify-policy``; ``None`` without those flags."""
    policy = verify_policy(verify_key, policy_file)
    if policy is None:
        return None
    from ..oci.signing.registry import image_verifier

    return image_verifier(policy, options)


def signing_key(path: str, *, push: bool = True) -> SigningKey | None:
    """The key of ``--sign-key`` (read before anything is built or pushed); ``None`` without it."""
    if not path:
        return None
    if not push:
        raise UserError("--sign-key signs what --push pushes", hint="add --push, or drop --sign-key")
    _need_cryptography("--sign-key")
    from ..oci.signing.keys import load_signing_key

    return load_signing_key(path)


def sign_pushed(
    cache: Cache, name: str, target: str, root_digest: str, key: SigningKey, options: RegistryOptions
) -> None:
    """Sign what the push of the cached ``name`` left in the registry under ``target``: the root it
    pushed (``root_digest``, the registry's index when merged) and the image manifest of every
    platform the cached image has (pushed by digest with it)."""
    from ..oci.mediatypes import is_image_manifest, is_index
    from ..oci.signing.registry import sign_digests

    digests = [root_digest]
    root = cache.find(name)
    if root is not None and is_index(root.media_type):
        digests += [
            child.digest
            for child in cache.children(root)
            if is_image_manifest(child.media_type)
            and not child.is_attestation
            and cache.layout.has_blob(child.digest, child.size)
        ]
    with log.step(f"Signing {reference.normalize(target)} with {key.path}"):
        sign_digests(target, digests, key, options)


def verify_policy(verify_key: str, policy_file: str) -> VerifyPolicy | None:
    """The policy of ``--verify-key``/``--verify-policy`` (keys read now); ``None`` without them."""
    if not verify_key and not policy_file:
        return None
    _need_cryptography("--verify-key" if verify_key else "--verify-policy")
    from ..oci.signing.policy import load_policy

    return load_policy(verify_key, policy_file)


def verified_pull(name: str, policy: VerifyPolicy, options: RegistryOptions) -> str | None:
    """``cache pull --verify-key``: the reference to pull (``name``'s digest in the registry, which
    verified), or ``None`` when the policy asks no signature of ``name``. Raises :class:`UserError`
    (nothing pulled) when the signature is missing or wrong."""
    from ..oci.registry.remote import lookup
    from ..oci.signing.registry import verify_digest

    key = policy.key_for(name)
    if key is None:
        return None
    normal = reference.normalize(name)
    parsed = reference.parse(normal)
    dig = parsed.digest or lookup(normal, options, f"looking up {normal}")
    if dig is None:
        raise UserError(f"image {normal} is not in its registry", hint="check the name and the tag")
    verdict = verify_digest(normal, dig, key, options)
    if not verdict.ok:
        raise UserError(
            f"image {normal} ({dig}) failed signature verification: {verdict.reason}",
            hint="nothing was pulled; pull an image signed with the key, or check the key and the --verify-policy",
        )
    log.info(f"{normal}: signature of {dig} verified with {key.path}")
    return f"{parsed.name}@{dig}"
