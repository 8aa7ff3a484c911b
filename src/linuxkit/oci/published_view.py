"""What ``pkg verify`` compares: an image's root digest and each platform's manifest, config and
layers, as the cache holds it or as its registry serves it (:mod:`linuxkit.packages.rebuild_check`)."""

from __future__ import annotations

from typing import Any

from ..packages.rebuild_check import ImageView, Published
from . import jsonfmt, reference
from .cache import Cache
from .descriptor import Descriptor, ManifestError, manifest_parts
from .layout import MAX_JSON_BLOB
from .mediatypes import is_image_manifest, is_index
from .registry.errors import RegistryError
from .registry.manifests import fetch_manifest
from .registry.options import RegistryOptions
from .registry.pull import open_client
from .registry.remote import remote_manifest
from .registry.smallblob import fetch_small_blob


def _key(platform: Any) -> str | None:
    if not isinstance(platform, dict) or not platform.get("os") or not platform.get("architecture"):
        return None
    return f"{platform['os']}/{platform['architecture']}"


def _view(digest: str, manifest: Any, what: str) -> ImageView:
    try:
        config, layers = manifest_parts(manifest, what)
    except ManifestError as exc:
        raise RegistryError(f"{what}: {exc}") from exc
    return ImageView(digest, config.digest, tuple(layer.digest for layer in layers))


def _children(raw: Any, what: str) -> list[Descriptor]:
    items = raw.get("manifests") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        raise RegistryError(f"{what}: the index lists no manifests")
    try:
        return [Descriptor.from_json(item, f"{what} manifests[{i}]") for i, item in enumerate(items)]
    except ValueError as exc:
        raise RegistryError(f"{what}: {exc}") from exc


def _images(children: list[Descriptor]) -> list[tuple[str, Descriptor]]:
    """The platform images an index lists (attestations and platform-less entries left out)."""
    out = []
    for child in children:
        key = _key(child.platform)
        if key is not None and not child.is_attestation and is_image_manifest(child.media_type):
            out.append((key, child))
    return out


def from_cache(cache: Cache, name: str) -> Published | None:
    """``name`` in ``cache`` (``None``: not there)."""
    root = cache.find(name)
    if root is None:
        return None
    layout = cache.layout
    if is_index(root.media_type):
        images: dict[str, ImageView | None] = {}
        for key, child in _images(cache.children(root)):
            present = layout.has_blob(child.digest, child.size)
            what = f"manifest {child.digest}"
            images[key] = (
                _view(child.digest, layout.read_json_blob(child.digest, child.size, what), what) if present else None
            )
        return Published(root.digest, images)
    manifest = layout.read_json_blob(root.digest, root.size, f"manifest {root.digest}")
    view = _view(root.digest, manifest, f"manifest {root.digest}")
    config = layout.read_json_blob(view.config, None, f"config {view.config}")
    return Published(root.digest, {_key(config) or "unknown": view})


def from_registry(name: str, options: RegistryOptions) -> Published | None:
    """``name`` in its registry (``None``: the registry has no such tag)."""
    ref = reference.parse(name).with_default_tag()
    with open_client(ref.domain, options, f"reading {ref} from its registry", pulling=True) as client:
        found = remote_manifest(client, ref.path, ref.digest or ref.tag or "latest")
        if found is None:
            return None
        raw, media_type, root = found.raw, found.media_type, found.digest
        doc = _json(raw, f"{ref}")
        if is_index(media_type):
            images: dict[str, ImageView | None] = {}
            for key, child in _images(_children(doc, str(ref))):
                child_raw, _ = fetch_manifest(client, ref.path, child.digest, child.digest)
                images[key] = _view(child.digest, _json(child_raw, child.digest), f"manifest {child.digest}")
            return Published(root, images)
        view = _view(root, doc, f"manifest {root}")
        config = _json(fetch_small_blob(client, ref.path, view.config, MAX_JSON_BLOB), view.config)
        return Published(root, {_key(config) or "unknown": view})


def _json(raw: bytes, what: str) -> Any:
    try:
        return jsonfmt.loads(raw, what)
    except ValueError as exc:
        raise RegistryError(f"{what}: {exc}") from exc
