"""A small blob (a signature payload, an image config) read into memory, bounded and checked."""

from __future__ import annotations

from .. import digest as _digest
from .client import Client, http_error
from .errors import RegistryError


def fetch_small_blob(client: Client, repository: str, dig: str, limit: int) -> bytes:
    """Blob ``dig`` of ``repository`` (at most ``limit`` bytes), checked against its digest."""
    resp = client.request("GET", f"/v2/{repository}/blobs/{dig}", repository=repository)
    try:
        if resp.status_code != 200:
            raise http_error(client.what, resp, f"fetching blob {dig}")
        data = resp.read(limit + 1)
    finally:
        resp.close()
    if len(data) > limit:
        raise RegistryError(f"{client.what}: blob {dig} is larger than {limit} bytes")
    if _digest.of_bytes(data) != dig:
        raise RegistryError(f"{client.what}: blob {dig} does not match its digest", hint="retry")
    return data
