"""What a registry holds under a name, without pulling it: a manifest's digest or bytes, and writing
manifests by tag (``pkg manifest``, ``pkg remote-tag``, ``cache push --override``, ``--published-only``)."""

from __future__ import annotations

from dataclasses import dataclass

from .. import digest as _digest
from .. import reference
from ..descriptor import Descriptor
from .client import Client, http_error
from .errors import RegistryError
from .manifests import ACCEPT, fetch_manifest
from .options import RegistryOptions

PUSH = "pull,push"


@dataclass(frozen=True)
class RemoteManifest:
    """A manifest (image or index) as the registry serves it."""

    raw: bytes
    media_type: str
    digest: str

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))


def lookup(ref: str, options: RegistryOptions, what: str) -> str | None:
    """The digest the registry of ``ref`` has under it (``None``: nothing); an unreachable registry or
    refused credentials raise :class:`RegistryError` (``what`` names the operation)."""
    parsed = reference.parse(ref).with_default_tag()
    with Client(parsed.domain, options, what) as client:
        return remote_digest(client, parsed.path, parsed.digest or parsed.tag or "latest")


def remote_digest(client: Client, repository: str, ref: str) -> str | None:
    """The digest of manifest ``ref`` (tag or digest) in ``repository``; ``None`` when there is none.

    A ``HEAD`` request (the registry's ``Docker-Content-Digest``), or the manifest itself when the
    registry sends no digest header.
    """
    found, sent = _head(client, repository, ref)
    if not found:
        return None
    if sent and _digest.is_valid(sent):
        return sent
    manifest = remote_manifest(client, repository, ref)
    return manifest.digest if manifest else None


def remote_manifest(client: Client, repository: str, ref: str) -> RemoteManifest | None:
    """Manifest ``ref`` of ``repository`` (checked against its digest); ``None`` when there is none."""
    if not _head(client, repository, ref)[0]:
        return None
    raw, media_type = fetch_manifest(client, repository, ref)
    return RemoteManifest(raw, media_type, _digest.of_bytes(raw))


def _head(client: Client, repository: str, ref: str) -> tuple[bool, str | None]:
    """Whether manifest ``ref`` exists, and the digest the registry names for it."""
    path = f"/v2/{repository}/manifests/{ref}"
    resp = client.request("HEAD", path, repository=repository, headers={"Accept": ACCEPT})
    resp.close()
    if resp.status_code == 404:
        return False, None
    if resp.status_code != 200:
        raise http_error(client.what, resp, f"looking up {ref}")
    return True, resp.headers.get("Docker-Content-Digest")


def put_manifest(client: Client, repository: str, raw: bytes, media_type: str, ref: str) -> str:
    """Store manifest bytes ``raw`` as ``ref`` (a tag, or its digest); returns its digest."""
    expected = _digest.of_bytes(raw)
    resp = client.request(
        "PUT",
        f"/v2/{repository}/manifests/{ref}",
        repository=repository,
        actions=PUSH,
        headers={"Content-Type": media_type},
        body=lambda: raw,
    )
    if resp.status_code not in (200, 201, 204):
        raise http_error(client.what, resp, f"uploading manifest {expected} as {ref}")
    sent = resp.headers.get("Docker-Content-Digest")
    resp.close()
    if sent and sent != expected:
        raise RegistryError(
            f"{client.what}: the registry stored manifest {expected} as {sent}",
            hint="the registry rewrote the manifest; it may not support this media type",
        )
    return expected
