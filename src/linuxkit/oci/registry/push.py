"""Push an image from the cache: blobs, then child manifests by digest, then the root by tag."""

from __future__ import annotations

from pathlib import Path
from typing import IO
from urllib.parse import quote

from .. import reference
from ..cache import Cache
from ..descriptor import Descriptor
from ..mediatypes import NON_DISTRIBUTABLE_TYPES, is_image_manifest, is_index
from .client import Client, http_error
from .errors import RegistryError
from .options import RegistryOptions

PUSH = "pull,push"


def push(
    cache: Cache, ref: str, remote_ref: str | None = None, *, options: RegistryOptions | None = None
) -> Descriptor:
    """Push the cached image ``ref`` to ``remote_ref`` (default: its own name); returns its root.

    Every platform an index lists must be in the cache. Blobs the registry has are not sent.
    """
    opts = options or RegistryOptions()
    root = cache.find(ref)
    if root is None:
        raise RegistryError(f"image {ref} is not in the cache", hint="pull or build it first")
    name = root.name or reference.normalize(ref)
    target = reference.parse(remote_ref or name)
    what = f"pushing {name} to {target}"
    with Client(target.domain, opts, what) as client:
        _push_tree(client, cache, target.path, root, name, top=True)
        tag = target.tag or (None if target.digest else "latest")
        _put_manifest(client, cache, target.path, root, tag or root.digest)
    return root.without_platform()


def _push_tree(client: Client, cache: Cache, repository: str, desc: Descriptor, name: str, *, top: bool) -> None:
    """Push what ``desc`` refers to (and ``desc`` itself by digest when it is not the top)."""
    layout = cache.layout
    if not layout.has_blob(desc.digest, desc.size):
        raise RegistryError(
            f"{client.what}: {desc.digest} is not in the cache",
            hint=f"pull {name} for all platforms first (or build it again)",
        )
    if is_index(desc.media_type):
        for child in cache.children(desc):
            _push_tree(client, cache, repository, child, name, top=False)
    elif is_image_manifest(desc.media_type):
        obj = layout.read_json_blob(desc.digest, desc.size)
        parts = [Descriptor.from_json(obj["config"]), *(Descriptor.from_json(x) for x in obj.get("layers") or [])]
        for part in parts:
            if part.media_type in NON_DISTRIBUTABLE_TYPES and part.extra.get("urls"):
                continue
            if not layout.has_blob(part.digest, part.size):
                raise RegistryError(
                    f"{client.what}: blob {part.digest} is not in the cache",
                    hint=f"pull {name} again to complete it",
                )
            push_blob(client, repository, part.digest, layout.blob_path(part.digest))
    if not top:
        _put_manifest(client, cache, repository, desc, desc.digest)


def push_blob(client: Client, repository: str, digest: str, path: Path) -> None:
    """HEAD the blob; when absent, start an upload (POST) and finish it in one PUT."""
    resp = client.request("HEAD", f"/v2/{repository}/blobs/{digest}", repository=repository, actions=PUSH)
    resp.close()
    if resp.status_code == 200:
        return
    if resp.status_code != 404:
        raise http_error(client.what, resp, f"checking blob {digest}")
    resp = client.request(
        "POST", f"/v2/{repository}/blobs/uploads/", repository=repository, actions=PUSH, body=lambda: b""
    )
    location = resp.headers.get("Location")
    if resp.status_code != 202 or not location:
        raise http_error(client.what, resp, f"starting the upload of blob {digest}")
    resp.close()
    url = client.url(location)
    url += ("&" if "?" in url else "?") + "digest=" + quote(digest, safe="")
    size = path.stat().st_size
    files: list[IO[bytes]] = []

    def body() -> IO[bytes]:
        for f in files:
            f.close()
        files.append(open(path, "rb"))  # noqa: SIM115 - closed below
        return files[-1]

    try:
        resp = client.request(
            "PUT",
            url,
            repository=repository,
            actions=PUSH,
            body=body,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
    finally:
        for f in files:
            f.close()
    if resp.status_code not in (201, 204):
        raise http_error(client.what, resp, f"uploading blob {digest}")
    resp.close()


def _put_manifest(client: Client, cache: Cache, repository: str, desc: Descriptor, tag: str) -> None:
    raw = cache.layout.read_blob(desc.digest, desc.size)
    resp = client.request(
        "PUT",
        f"/v2/{repository}/manifests/{tag}",
        repository=repository,
        actions=PUSH,
        headers={"Content-Type": desc.media_type},
        body=lambda: raw,
    )
    if resp.status_code not in (200, 201, 204):
        raise http_error(client.what, resp, f"uploading manifest {desc.digest} as {tag}")
    sent = resp.headers.get("Docker-Content-Digest")
    resp.close()
    if sent and sent != desc.digest:
        raise RegistryError(
            f"{client.what}: the registry stored manifest {desc.digest} as {sent}",
            hint="the registry rewrote the manifest; it may not support this media type",
        )
