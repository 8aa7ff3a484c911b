"""Fetching manifests and blobs, verified before anything is kept."""

from __future__ import annotations

from ...errors import BuildError
from .. import digest as _digest
from ..descriptor import Descriptor
from ..layout import MAX_JSON_BLOB, Layout
from ..mediatypes import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST
from .client import TRANSIENT, Client, http_error
from .errors import RegistryError

RETRYABLE: tuple[type[Exception], ...] = (*TRANSIENT, _digest.DigestError)
ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))


def fetch_manifest(client: Client, repository: str, ref: str, expected: str | None = None) -> tuple[bytes, str]:
    """The raw bytes and media type of manifest ``ref`` (tag or digest), checked.

    With a digest (``expected`` or ``ref`` itself) the bytes must hash to it; otherwise a
    ``Docker-Content-Digest`` header, when sent, must match.
    """
    if expected is None and _digest.is_valid(ref):
        expected = ref
    resp = client.request(
        "GET", f"/v2/{repository}/manifests/{ref}", repository=repository, headers={"Accept": ACCEPT}, stream=True
    )
    if resp.status_code != 200:
        raise http_error(client.what, resp, f"fetching manifest {ref}")
    try:
        data = _read_limited(resp.raw, MAX_JSON_BLOB)
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
    media_type = _media_type(data, resp.headers.get("Content-Type", ""))
    return data, media_type


def _read_limited(raw: object, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in raw.stream(_digest.CHUNK, decode_content=True):  # type: ignore[attr-defined]
        size += len(chunk)
        if size > limit:
            raise RegistryError(f"manifest larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _media_type(data: bytes, content_type: str) -> str:
    from .. import jsonfmt

    try:
        obj = jsonfmt.loads(data, "manifest")
    except ValueError as exc:
        raise RegistryError(f"manifest is not valid JSON: {exc}") from exc
    if isinstance(obj, dict) and isinstance(obj.get("mediaType"), str):
        return str(obj["mediaType"])
    return content_type.split(";")[0].strip()


def fetch_blob(client: Client, repository: str, desc: Descriptor, layout: Layout) -> None:
    """Download blob ``desc`` into ``layout`` unless present, hashing it while it streams.

    The bytes go to a temporary file that becomes the blob only when size and digest match;
    a broken transfer or a wrong byte is retried (``options.retries`` times), then reported.
    """
    if layout.has_blob(desc.digest, desc.size):
        return
    retries = client.options.retries
    for attempt in range(retries + 1):
        try:
            _download(client, repository, desc, layout)
            return
        except RETRYABLE as exc:
            if attempt >= retries:
                cause = exc.message if isinstance(exc, BuildError) else f"transfer failed: {exc}"
                raise RegistryError(
                    f"{client.what}: blob {desc.digest}: {cause}",
                    hint="nothing wrong was kept in the cache; pull again to complete it",
                ) from exc
            client.options.sleep(client.backoff(attempt))


def _download(client: Client, repository: str, desc: Descriptor, layout: Layout) -> None:
    resp = client.request("GET", f"/v2/{repository}/blobs/{desc.digest}", repository=repository, stream=True)
    try:
        if resp.status_code != 200:
            raise http_error(client.what, resp, f"fetching blob {desc.digest}")
        with layout.new_blob() as out:
            for chunk in resp.raw.stream(_digest.CHUNK, decode_content=False):
                out.write(chunk)
                if out.size > desc.size:
                    break
            out.commit(desc.digest, desc.size)
    finally:
        resp.close()
