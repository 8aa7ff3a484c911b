"""Pull an image (index or manifest) for some platforms into the cache."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from ... import log
from .. import jsonfmt, reference
from ..cache import Cache
from ..descriptor import Descriptor, ManifestError, manifest_parts, matches, platform_of
from ..digest import DigestError, of_bytes
from ..image import Platform
from ..layout import Layout
from ..mediatypes import NON_DISTRIBUTABLE_TYPES, SCHEMA1_TYPES, is_image_manifest, is_index
from .client import Client
from .errors import RegistryError
from .manifests import fetch_blob, fetch_manifest
from .options import RegistryOptions
from .progress import Transfers, transfers
from .seen import remember_blob


def open_client(domain: str, options: RegistryOptions, what: str, *, pulling: bool) -> Client:
    """A client for ``domain`` (through its mirror when pulling and one is set)."""
    mirror = options.mirrors.get(domain) if pulling else None
    if mirror is None and pulling and domain in ("docker.io", "index.docker.io"):
        mirror = options.mirrors.get(options.registry_host(domain))
    if mirror is None and pulling:
        mirror = options.mirrors.get("*")  # upstream's mirror for every registry not named
    return Client(domain, options, what, mirror=mirror)


def pull(
    cache: Cache,
    ref: str,
    platforms: Sequence[Platform] | None = None,
    *,
    options: RegistryOptions | None = None,
    name: str | None = None,
) -> Descriptor:
    """Pull ``ref`` into ``cache`` and name it there; returns the root descriptor.

    From an index, the whole index is kept (so its digest is the registry's) but only the
    image manifests for ``platforms`` (all when ``None`` or empty) and attestation manifests are
    fetched with their blobs. Blobs already in the cache are not downloaded again. The name is
    written only when every blob of what was fetched is present and verified, so an interrupted
    pull leaves the cache as it was plus some complete blobs, and the next pull completes it.
    ``name``: the name to give it in the cache (default: ``ref`` normalised).
    """
    opts = options or RegistryOptions()
    parsed = reference.parse(ref)
    what = f"pulling {reference.normalize(ref)}"
    for leftover in cache.layout.remove_stale_temps_once():  # what interrupted pulls left behind
        log.debug(f"removed {leftover}, left behind by an interrupted process")
    name = reference.normalize(name or ref)
    with open_client(parsed.domain, opts, what, pulling=True) as client:
        object_ref = parsed.digest or parsed.tag or "latest"
        raw, media_type = fetch_manifest(client, parsed.path, object_ref, parsed.digest)
        root = Descriptor(media_type, of_bytes(raw), len(raw))
        if is_index(media_type):
            images = [
                (child, _child_manifest(client, cache, parsed.path, child))
                for child in _select(what, _manifests(what, raw), platforms)
            ]
        elif is_image_manifest(media_type):
            images = [(root, raw)]
        elif media_type in SCHEMA1_TYPES:
            raise RegistryError(
                f"{what}: the image uses the Docker schema 1 manifest format, which is not supported",
                hint="re-push the image with a current tool",
            )
        else:
            raise RegistryError(f"{what}: unsupported manifest media type {media_type!r}")
        blobs = {part.digest: part for desc, manifest in images for part in _parts(what, desc, manifest)}
        fetch_blobs(client, parsed.path, list(blobs.values()), cache.layout)
        for dig in blobs:
            remember_blob(parsed.domain, parsed.path, dig)
        layout = cache.layout
        for desc, manifest in images:  # manifests only once all their blobs are in
            layout.write_blob_bytes(manifest, desc.digest)
        if root.digest not in {desc.digest for desc, _ in images}:
            layout.write_blob_bytes(raw, root.digest)
        cache.tag(name, root.without_platform())
    log.debug(f"pulled {name} ({root.digest})")
    return root


def _manifests(what: str, raw: bytes) -> list[Descriptor]:
    obj = _json(what, raw, "index")
    items = obj.get("manifests") or []
    try:
        if not isinstance(items, list):
            raise ValueError("manifests is not a list")
        return [Descriptor.from_json(m, f"index manifests[{i}]") for i, m in enumerate(items)]
    except ValueError as exc:
        raise RegistryError(f"{what}: bad index: {exc}") from exc


def _json(what: str, raw: bytes, kind: str) -> dict[str, Any]:
    try:
        obj = jsonfmt.loads(raw, kind)
    except ValueError as exc:
        raise RegistryError(f"{what}: {exc}") from exc
    if not isinstance(obj, dict):
        raise RegistryError(f"{what}: {kind} is not a JSON object")
    return obj


def _select(what: str, children: list[Descriptor], platforms: Sequence[Platform] | None) -> list[Descriptor]:
    """The image manifests for ``platforms`` plus attestations (manifests without a real platform)."""
    images = [c for c in children if is_image_manifest(c.media_type)]
    if not platforms:
        return images
    chosen = [c for c in images if c.platform is None or c.is_attestation]
    missing = []
    for plat in platforms:
        found = [c for c in images if not c.is_attestation and matches(c.platform, plat)]
        if not found:
            missing.append(str(plat))
        chosen.extend(found[:1])
    if missing:
        offered = sorted({str(p) for c in images if not c.is_attestation and (p := platform_of(c.platform))})
        raise RegistryError(
            f"{what}: the image has no variant for {', '.join(missing)} (it offers {', '.join(offered) or 'none'})",
            hint="choose one of those with --platform/--arch, or build and push the image for that platform",
        )
    return list({c.digest: c for c in chosen}.values())


def _child_manifest(client: Client, cache: Cache, repository: str, desc: Descriptor) -> bytes:
    layout = cache.layout
    if layout.has_blob(desc.digest, desc.size):
        try:
            return layout.read_blob(desc.digest, desc.size)
        except DigestError:
            log.warn(f"{client.what}: cached manifest {desc.digest} is corrupt; fetching it again")
    raw, _ = fetch_manifest(client, repository, desc.digest, desc.digest)
    return raw


def _parts(what: str, desc: Descriptor, raw: bytes) -> list[Descriptor]:
    """The config and layers ``raw`` lists (non-distributable layers with URLs left out)."""
    obj = _json(what, raw, f"manifest {desc.digest}")
    try:
        config, layers = manifest_parts(obj, f"manifest {desc.digest}")
    except ManifestError as exc:
        raise RegistryError(f"{what}: bad manifest: {exc}") from exc
    out = []
    for part in (config, *layers):
        if part.media_type in NON_DISTRIBUTABLE_TYPES and part.extra.get("urls"):
            log.debug(f"{what}: skipping non-distributable layer {part.digest}")
            continue
        out.append(part)
    return out


def fetch_blobs(client: Client, repository: str, blobs: Sequence[Descriptor], layout: Layout) -> None:
    """Fetch the missing ``blobs`` with up to ``options.parallel`` threads, showing progress.

    The biggest blobs start first (the transfers end closer together). The first failure is
    raised once the transfers already running have ended, and no new one starts after it (none
    is left half-written: each blob becomes a cache file only when complete and verified).
    """
    missing = sorted((b for b in blobs if not layout.has_blob(b.digest, b.size)), key=lambda b: -b.size)
    if not missing:
        return
    label = client.what.removeprefix("pulling ")
    pending = list(reversed(missing))  # popped from the end: biggest first
    failures: list[BaseException] = []
    lock = threading.Lock()

    def worker(shown: Transfers) -> None:
        while True:
            with lock:
                if failures or not pending:
                    return
                desc = pending.pop()
            try:
                task, advance = shown.track(label, desc)
                fetch_blob(client, repository, desc, layout, advance)
                shown.done(task, label, desc)
            except BaseException as exc:  # handed to the calling thread, which raises it
                with lock:
                    failures.append(exc)
                return

    with transfers() as shown:
        # plain threads, not concurrent.futures: its import costs more than this whole function
        threads = [
            threading.Thread(target=worker, args=(shown,), name=f"pull-{i}", daemon=True)
            for i in range(1, min(client.options.parallel, len(missing)))
        ]
        for thread in threads:
            thread.start()
        try:
            worker(shown)  # this thread takes its share too
        finally:
            with lock:
                pending.clear()  # on an interrupt too: the others finish their blob and stop
            for thread in threads:
                thread.join()
    if failures:
        raise failures[0]
