"""Fetching manifests and blobs, verified before anything is kept."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from ... import log
from ...errors import BuildError
from ...http.client import content_range_start
from .. import digest as _digest
from .. import jsonfmt
from ..descriptor import Descriptor
from ..layout import MAX_JSON_BLOB, AtomicFile, Layout
from ..mediatypes import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST
from .client import TRANSIENT, Client, http_error
from .errors import RegistryError

RETRYABLE: tuple[type[Exception], ...] = (*TRANSIENT, _digest.DigestError)
ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
#: Bytes read from the socket, hashed and written at a time: big enough that the per-call cost of
#: Python disappears and hashing (which releases the GIL) overlaps other transfers.
READ_SIZE = 1 << 20


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

    The bytes go to a temporary file that becomes the blob only when size and digest match.
    A broken transfer is resumed where it stopped with ``Range`` when the registry honours it
    (the hash runs over every byte kept, so the whole blob is still verified); a wrong digest
    starts the blob again. Each is retried ``options.retries`` times, then reported.
    ``progress`` is called with the number of bytes received (negative when starting over).
    """
    if layout.has_blob(desc.digest, desc.size):
        return
    report = progress or (lambda _n: None)
    policy = client.http.policy
    retries = policy.retries
    out = _Partial(layout)
    try:
        for attempt in range(retries + 1):
            try:
                _download(client, repository, desc, out, report)
                out.commit(desc.digest, desc.size)
                return
            except RETRYABLE as exc:
                if isinstance(exc, _digest.DigestError) or out.size > desc.size:
                    report(-out.size)  # wrong content: nothing of it can be kept
                    out.restart()
                if attempt >= retries:
                    cause = exc.message if isinstance(exc, BuildError) else f"transfer failed: {exc}"
                    raise RegistryError(
                        f"{client.what}: blob {desc.digest}: {cause}",
                        hint="nothing wrong was kept in the cache; pull again to complete it",
                    ) from exc
                log.debug(f"{client.what}: blob {desc.digest}: {exc}; retrying")
                policy.sleep(policy.delay(attempt))
    finally:
        out.abort()


class _Partial:
    """The bytes of one blob received so far: hashed as they are written to a temporary file that
    becomes the blob (fsync'ed, renamed, directory synced) only when size and digest match."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        layout.blobs_dir.mkdir(parents=True, exist_ok=True)
        self._file: AtomicFile | None = None
        self._hash = hashlib.sha256()
        self.size = 0
        self.buffer = memoryview(bytearray(READ_SIZE))

    def write(self, data: memoryview) -> None:
        if self._file is None:
            self._file = AtomicFile(self.layout.blobs_dir / "blob")
        self._file.file.write(data)
        self._hash.update(data)
        self.size += len(data)

    def commit(self, digest: str, size: int) -> None:
        actual = f"{_digest.ALGORITHM}:{self._hash.hexdigest()}"
        if size >= 0 and self.size != size:
            raise _digest.DigestError(f"blob {digest}: {self.size} bytes, expected {size}")
        if actual != digest:
            raise _digest.DigestError(f"blob content has digest {actual}, expected {digest}")
        if self._file is None:  # an empty blob
            self._file = AtomicFile(self.layout.blobs_dir / "blob")
        self._file.commit(self.layout.blob_path(digest))

    def restart(self) -> None:
        self.abort()
        self._hash = hashlib.sha256()
        self.size = 0

    def abort(self) -> None:
        if self._file is not None:
            self._file.abort()
            self._file = None


def _download(client: Client, repository: str, desc: Descriptor, out: _Partial, report: Callable[[int], None]) -> None:
    """Append the blob's bytes from ``out.size`` on (asking with ``Range`` when that is not 0)."""
    start = out.size
    headers = {"Range": f"bytes={start}-"} if start else None
    resp = client.request("GET", f"/v2/{repository}/blobs/{desc.digest}", repository=repository, headers=headers)
    try:
        if start and resp.status_code == 206 and content_range_start(resp.headers.get("Content-Range")) == start:
            log.debug(f"{client.what}: blob {desc.digest}: resuming at byte {start}")
        elif resp.status_code == 200:
            if start:  # the registry ignored Range: the whole blob again
                report(-start)
                out.restart()
        else:
            raise http_error(client.what, resp, f"fetching blob {desc.digest}")
        buffer = out.buffer
        while n := resp.readinto(buffer):
            out.write(buffer[:n])
            report(n)
            if out.size > desc.size >= 0:
                break
    finally:
        resp.close()
