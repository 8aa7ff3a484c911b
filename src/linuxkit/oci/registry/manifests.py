"""Fetching manifests and blobs, verified before anything is kept."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ...http.download import Mismatch, download
from ...http.transport import Response, TransportError
from .. import digest as _digest
from .. import jsonfmt
from ..descriptor import Descriptor
from ..layout import MAX_JSON_BLOB, AtomicFile, Layout
from ..mediatypes import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST
from .client import TRANSIENT, Client, http_error
from .errors import RegistryError

ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))


def fetch_manifest(client: Client, repository: str, ref: str, expected: str | None = None) -> tuple[bytes, str]:
    """The raw bytes and media type of manifest ``ref`` (tag or digest), checked.

    With a digest (``expected`` or ``ref`` itself) the bytes must hash to it; otherwise a
    ``Docker-Content-Digest`` header, when sent, must match.
    """
    if expected is None and _digest.is_valid(ref):
        expected = ref
    resp = client.request("GET", f"/v2/{repository}/manifests/{ref}", repository=repository, headers={"Accept": ACCEPT})
    if resp.status_code != 200:
        raise http_error(client.what, resp, f"fetching manifest {ref}")
    try:
        data = resp.read(MAX_JSON_BLOB)
        if len(data) > MAX_JSON_BLOB:
            raise RegistryError(f"{client.what}: manifest {ref} is larger than {MAX_JSON_BLOB} bytes")
    except TRANSIENT as exc:
        raise RegistryError(f"{client.what}: manifest {ref}: download failed: {exc}", hint="retry") from exc
    finally:
        resp.close()
    actual = _digest.of_bytes(data)
    header = resp.headers.get("Docker-Content-Digest")
    want = expected or (header if header and _digest.is_valid(header) else None)
    if want is not None and actual != want:
        raise RegistryError(
            f"{client.what}: manifest {ref} from {client.host} has digest {actual}, expected {want}",
            hint="the transfer was corrupted or the registry is misbehaving; retry",
        )
    media_type = _media_type(data, resp.headers.get("Content-Type") or "")
    return data, media_type


def _media_type(data: bytes, content_type: str) -> str:
    try:
        obj = jsonfmt.loads(data, "manifest")
    except ValueError as exc:
        raise RegistryError(f"manifest is not valid JSON: {exc}") from exc
    if isinstance(obj, dict) and isinstance(obj.get("mediaType"), str):
        return str(obj["mediaType"])
    return content_type.split(";")[0].strip()


def fetch_blob(
    client: Client, repository: str, desc: Descriptor, layout: Layout, progress: Callable[[int], None] | None = None
) -> None:
    """Download blob ``desc`` into ``layout`` unless present, hashing it while it streams.

    The bytes go to a temporary file (locked, ``.tmp-*``: see :class:`AtomicFile`) that becomes the
    blob only when size and digest match. A broken transfer is resumed where it stopped with
    ``Range`` when the registry honours it (the hash runs over every byte kept, so the whole blob
    is still verified); a wrong digest starts the blob again. Each is retried ``options.retries``
    times, then reported (:func:`linuxkit.http.download.download` does the transfer).
    ``progress`` is called with the number of bytes received (negative when starting over).
    """
    if layout.has_blob(desc.digest, desc.size):
        return
    path = f"/v2/{repository}/blobs/{desc.digest}"

    def get(headers: Mapping[str, str]) -> Response:
        return client.request("GET", path, repository=repository, headers=headers)

    try:
        download(
            get,
            layout.blob_path(desc.digest),
            refused=lambda resp: http_error(client.what, resp, f"fetching blob {desc.digest}"),
            size=desc.size if desc.size >= 0 else None,
            sha256=_digest.hex_of(desc.digest),
            policy=client.http.policy,
            on_chunk=progress,
            temp=AtomicFile,
            retry_mismatch=True,
            what=f"{client.what}: blob {desc.digest}",
        )
    except Mismatch as exc:
        raise RegistryError(f"{client.what}: blob {desc.digest}: {_mismatch(desc, exc)}", hint=_KEPT) from exc
    except TransportError as exc:
        raise RegistryError(f"{client.what}: blob {desc.digest}: transfer failed: {exc}", hint=_KEPT) from exc


_KEPT = "nothing wrong was kept in the cache; pull again to complete it"


def _mismatch(desc: Descriptor, exc: Mismatch) -> str:
    if exc.kind == "sha256":
        return f"content has digest {_digest.ALGORITHM}:{exc.actual}, expected {desc.digest}"
    return f"{exc.actual} bytes, expected {desc.size}"
