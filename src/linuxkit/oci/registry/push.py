"""Push an image from the cache: blobs, then child manifests by digest, then the root by tag."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO, NamedTuple
from urllib.parse import quote

from ... import log
from .. import reference
from ..cache import Cache
from ..descriptor import Descriptor, manifest_parts, platform_of
from ..digest import of_bytes
from ..indexmerge import index_bytes, index_entries, merge_manifests
from ..mediatypes import NON_DISTRIBUTABLE_TYPES, is_image_manifest, is_index
from .auth import scope
from .client import Client, http_error
from .errors import AuthError, RegistryError
from .options import RegistryOptions
from .remote import PUSH, RemoteManifest, put_manifest, remote_manifest
from .seen import remember_blob, repository_with


class Pushed(NamedTuple):
    """What a push left under the tag: its root descriptor, and ``outcome``: ``pushed``, ``merged``
    (the registry's index had other platforms: they were kept), ``unchanged`` (it was there already)
    or ``exists`` (something was there and ``override`` was off: nothing was sent)."""

    descriptor: Descriptor
    outcome: str


def push(
    cache: Cache,
    ref: str,
    remote_ref: str | None = None,
    *,
    options: RegistryOptions | None = None,
    with_arch_tags: bool = False,
) -> Descriptor:
    """Push the cached image ``ref`` to ``remote_ref`` (default: its own name); returns its root.

    Every platform an index lists must be in the cache. Blobs the registry has are not sent;
    blobs known to be in another repository of the same registry (the image was pulled from
    there, or pushed there by this process) are mounted from it instead of uploaded.
    ``with_arch_tags``: for an index, also tag each platform's image ``TAG-<arch>`` (upstream's
    ``--with-arch-tags``; attestations and platform-less entries are left out). Whatever the
    registry had under the tag is replaced (see :func:`push_image` for upstream's other ways).
    """
    return push_image(cache, ref, remote_ref, options=options, with_arch_tags=with_arch_tags).descriptor


def push_image(
    cache: Cache,
    ref: str,
    remote_ref: str | None = None,
    *,
    options: RegistryOptions | None = None,
    with_arch_tags: bool = False,
    override: bool = True,
    merge: bool = False,
) -> Pushed:
    """:func:`push`, with upstream's ``cache push`` rules: without ``override`` nothing is sent when
    the registry has the tag already; with ``merge``, an index replacing a different index in the
    registry keeps the registry's other platforms (the cached image wins for its own, see
    :func:`linuxkit.oci.indexmerge.merge_manifests`), so pushes of one platform each add up."""
    opts = options or RegistryOptions()
    root = cache.find(ref)
    if root is None:
        raise RegistryError(f"image {ref} is not in the cache", hint="pull or build it first")
    name = root.name or reference.normalize(ref)
    target = reference.parse(remote_ref or name)
    what = f"pushing {name} to {target}"
    source = reference.parse(name)
    sources = [source.path] if source.domain == target.domain and source.path != target.path else []
    tag = target.tag or (None if target.digest else "latest")
    with Client(target.domain, opts, what) as client:
        remote = remote_manifest(client, target.path, tag or root.digest) if (merge or not override) else None
        if remote is not None and not override:
            log.info(f"image {target} already exists in the registry, skipping")
            return Pushed(remote.descriptor, "exists")
        if remote is not None and remote.digest == root.digest:
            pushed = Pushed(root.without_platform(), "unchanged")
        else:
            _Pusher(client, cache, target.path, name, sources).tree(root, top=True)
            pushed = _put_root(client, cache, target.path, root, remote, tag)
        if with_arch_tags:
            _arch_tags(client, cache, target.path, root, tag or "latest")
    return pushed


def _put_root(
    client: Client, cache: Cache, repository: str, root: Descriptor, remote: RemoteManifest | None, tag: str | None
) -> Pushed:
    """Put the root under ``tag``: ``root`` itself, or its merge with the registry's index ``remote``."""
    merged = _merged(cache, root, remote) if remote is not None else None
    if merged is None:
        _put_manifest(client, cache, repository, root, tag or root.digest)
        return Pushed(root.without_platform(), "pushed")
    if remote is not None and merged.digest == remote.digest:
        return Pushed(merged.descriptor, "unchanged")
    put_manifest(client, repository, merged.raw, merged.media_type, tag or merged.digest)
    return Pushed(merged.descriptor, "merged")


def _merged(cache: Cache, root: Descriptor, remote: RemoteManifest) -> RemoteManifest | None:
    """The index to push when the registry has ``remote`` under the tag: ``None`` to push ``root``
    as it is (not both indexes), ``remote`` itself when it lists everything ``root`` does."""
    if not (is_index(root.media_type) and is_index(remote.media_type)):
        return None
    try:
        theirs = index_entries(remote.raw, f"index {remote.digest} in the registry")
    except ValueError as exc:
        log.warn(f"{exc}: replacing it")
        return None
    entries = merge_manifests(cache.children(root), theirs)
    if entries is None:
        return remote
    raw = index_bytes(entries, media_type=root.media_type)
    return RemoteManifest(raw, root.media_type, of_bytes(raw))


def _arch_tags(client: Client, cache: Cache, repository: str, root: Descriptor, tag: str) -> list[str]:
    """Tag each platform image of the index ``root`` as ``tag-<arch>``; returns the tags."""
    if not is_index(root.media_type):
        log.warn(f"{client.what}: --with-arch-tags: the image is not multi-platform; no arch tags pushed")
        return []
    done: list[str] = []
    for child in cache.children(root):
        plat = platform_of(child.platform)
        if child.is_attestation or plat is None or not is_image_manifest(child.media_type):
            continue
        if not cache.layout.has_blob(child.digest, child.size):  # as upstream: a platform never pulled here
            log.debug(f"{client.what}: {plat} is not in the cache; no {tag}-{plat.architecture} tag")
            continue
        arch_tag = f"{tag}-{plat.architecture}"
        if arch_tag in done:
            log.warn(f"{client.what}: several images for {plat.architecture}; {arch_tag} names the first")
            continue
        _put_manifest(client, cache, repository, child, arch_tag)
        log.info(f"tagged {client.domain}/{repository}:{arch_tag} ({child.digest})")
        done.append(arch_tag)
    return done


class _Pusher:
    """Pushes the blobs and child manifests of one image to one repository."""

    def __init__(self, client: Client, cache: Cache, repository: str, name: str, sources: list[str]) -> None:
        self.client, self.cache, self.repository, self.name, self.sources = client, cache, repository, name, sources

    def tree(self, desc: Descriptor, *, top: bool) -> None:
        _push_tree(self, desc, top=top)

    def mount_sources(self, digest: str) -> list[str]:
        seen = repository_with(self.client.domain, digest)
        out = [*([seen] if seen else []), *self.sources]
        return [r for r in dict.fromkeys(out) if r != self.repository]


def _push_tree(pusher: _Pusher, desc: Descriptor, *, top: bool) -> None:
    """Push what ``desc`` refers to (and ``desc`` itself by digest when it is not the top)."""
    client, cache, repository, name = pusher.client, pusher.cache, pusher.repository, pusher.name
    layout = cache.layout
    if not layout.has_blob(desc.digest, desc.size):
        raise RegistryError(
            f"{client.what}: {desc.digest} is not in the cache",
            hint=f"pull {name} for all platforms first (or build it again)",
        )
    if is_index(desc.media_type):
        for child in cache.children(desc):
            _push_tree(pusher, child, top=False)
    elif is_image_manifest(desc.media_type):
        config, layers = manifest_parts(layout.read_json_blob(desc.digest, desc.size), f"manifest {desc.digest}")
        for part in (config, *layers):
            if part.media_type in NON_DISTRIBUTABLE_TYPES and part.extra.get("urls"):
                continue
            if not layout.has_blob(part.digest, part.size):
                raise RegistryError(
                    f"{client.what}: blob {part.digest} is not in the cache",
                    hint=f"pull {name} again to complete it",
                )
            push_blob(client, repository, part.digest, layout.blob_path(part.digest), pusher.mount_sources(part.digest))
    if not top:
        _put_manifest(client, cache, repository, desc, desc.digest)


def push_blob(client: Client, repository: str, digest: str, path: Path, mount_from: Sequence[str] = ()) -> str:
    """HEAD the blob; when absent, mount it from a repository of ``mount_from`` that has it, else
    start an upload (POST) and finish it in one PUT. Returns ``present``, ``mounted`` or ``uploaded``."""
    resp = client.request("HEAD", f"/v2/{repository}/blobs/{digest}", repository=repository, actions=PUSH)
    resp.close()
    if resp.status_code == 200:
        remember_blob(client.domain, repository, digest)
        return "present"
    if resp.status_code != 404:
        raise http_error(client.what, resp, f"checking blob {digest}")
    location = None
    for source in mount_from[:1]:  # a failed mount already opened an upload: use that one
        location = _mount(client, repository, digest, source)
        if location == "":
            remember_blob(client.domain, repository, digest)
            return "mounted"
    if location is None:
        resp = client.request(
            "POST", f"/v2/{repository}/blobs/uploads/", repository=repository, actions=PUSH, body=lambda: b""
        )
        location = resp.headers.get("Location")
        if resp.status_code != 202 or not location:
            raise http_error(client.what, resp, f"starting the upload of blob {digest}")
        resp.close()
    _upload(client, repository, digest, path, location)
    remember_blob(client.domain, repository, digest)
    return "uploaded"


def _mount(client: Client, repository: str, digest: str, source: str) -> str | None:
    """Ask the registry to mount ``digest`` from ``source``: ``""`` when mounted, the upload URL
    it opened instead when not, ``None`` when the request itself was refused."""
    query = f"?mount={quote(digest, safe='')}&from={quote(source, safe='/')}"
    try:
        resp = client.request(
            "POST",
            f"/v2/{repository}/blobs/uploads/{query}",
            repository=repository,
            actions=PUSH,
            extra_scopes=(scope(source, "pull"),),
            body=lambda: b"",
        )
    except AuthError as exc:
        log.debug(f"{client.what}: no mount of {digest} from {source}: {exc.message}")
        return None
    location = resp.headers.get("Location")
    resp.close()
    if resp.status_code == 201:
        log.debug(f"{client.what}: mounted {digest} from {source}")
        return ""
    if resp.status_code == 202 and location:
        log.debug(f"{client.what}: {source} has no {digest}; uploading it")
        return location
    return None


def _upload(client: Client, repository: str, digest: str, path: Path, location: str) -> None:
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
    put_manifest(client, repository, cache.layout.read_blob(desc.digest, desc.size), desc.media_type, tag)
