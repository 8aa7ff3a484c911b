"""Writing images into the cache: blobs, reproducible layers, config, manifest, index, names.

Everything written is byte-deterministic for the same input: JSON in Go's field order without
timestamps we add, layers gzip-compressed with no file name and mtime 0. Per-architecture names
(upstream ``pkg build`` tags ``name:tag-amd64``) are the caller's choice of ``name``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from . import jsonfmt
from .descriptor import Descriptor
from .image import Platform
from .layers import gzip_stream
from .mediatypes import OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST

if TYPE_CHECKING:
    from .cache import Cache


@dataclass(frozen=True)
class LayerInfo:
    """A layer written to the cache: its (compressed) descriptor and its uncompressed digest."""

    descriptor: Descriptor
    diff_id: str
    uncompressed_size: int


def config_bytes(config: Mapping[str, Any]) -> bytes:
    """An image config as compact JSON: top-level keys in go-containerregistry's order, nested maps sorted."""
    top = jsonfmt.ordered(config, jsonfmt.CONFIG_KEYS)
    return jsonfmt.dumps({k: _sorted_deep(v) for k, v in top.items()})


def _sorted_deep(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _sorted_deep(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [_sorted_deep(v) for v in value]
    return value


class ImageWriter:
    """Adds content to a cache; nothing is visible under a name until :meth:`tag`."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.layout = cache.layout
        self.layout.ensure()

    def add_blob(self, data: bytes, media_type: str, *, digest: str | None = None) -> Descriptor:
        """Store ``data`` (checked against ``digest`` when given)."""
        dig, size = self.layout.write_blob_bytes(data, digest)
        return Descriptor(media_type, dig, size)

    def add_blob_stream(
        self, stream: IO[bytes], media_type: str, *, digest: str | None = None, size: int | None = None
    ) -> Descriptor:
        """Store a blob from a stream, hashing it while it is written; with ``digest`` (and
        ``size``) a mismatch raises :class:`~linuxkit.oci.digest.DigestError` and leaves nothing
        behind; an existing blob with that digest is kept and ``stream`` is not read."""
        dig, written = self.layout.write_blob(stream, digest, size)
        return Descriptor(media_type, dig, written)

    def add_layer(self, tar_stream: IO[bytes]) -> LayerInfo:
        """Compress an uncompressed tar stream reproducibly (gzip) into a layer blob."""
        with self.layout.new_blob() as out:
            diff_id, raw_size = gzip_stream(tar_stream, out)
            dig, size = out.commit()
        return LayerInfo(Descriptor(OCI_LAYER_GZIP, dig, size), diff_id, raw_size)

    def add_config(self, config: Mapping[str, Any], *, media_type: str = OCI_CONFIG) -> Descriptor:
        return self.add_blob(config_bytes(config), media_type)

    def add_manifest(
        self,
        config: Descriptor,
        layers: Sequence[Descriptor],
        *,
        annotations: Mapping[str, str] | None = None,
        media_type: str = OCI_MANIFEST,
    ) -> Descriptor:
        """An image manifest (OCI by default) for ``config`` and ``layers``."""
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": config.without_platform().to_json(),
            "layers": [layer.without_platform().to_json() for layer in layers],
        }
        if annotations:
            manifest["annotations"] = jsonfmt.sorted_map(annotations)
        return self.add_blob(jsonfmt.dumps(manifest), media_type)

    def add_index(self, manifests: Sequence[Descriptor], *, annotations: Mapping[str, str] | None = None) -> Descriptor:
        """An OCI image index over ``manifests`` (each should carry its platform)."""
        index: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [m.to_json() for m in manifests],
        }
        if annotations:
            index["annotations"] = jsonfmt.sorted_map(annotations)
        return self.add_blob(jsonfmt.dumps(index), OCI_INDEX)

    def add_image(
        self,
        config: Mapping[str, Any],
        layers: Sequence[IO[bytes]],
        *,
        platform: Platform | None = None,
    ) -> Descriptor:
        """Layers (uncompressed tar streams, bottom first) + config → manifest descriptor.

        ``rootfs.diff_ids`` is filled in, and ``os``/``architecture``/``variant`` from
        ``platform`` when the config lacks them. The returned descriptor carries ``platform``
        (for use in an index).
        """
        infos = [self.add_layer(layer) for layer in layers]
        full = dict(config)
        if platform is not None:
            full.setdefault("architecture", platform.architecture)
            full.setdefault("os", platform.os)
            if platform.variant:
                full.setdefault("variant", platform.variant)
        full["rootfs"] = {"type": "layers", "diff_ids": [i.diff_id for i in infos]}
        config_desc = self.add_config(full)
        manifest = self.add_manifest(config_desc, [i.descriptor for i in infos])
        return manifest.with_platform(platform) if platform is not None else manifest

    def tag(self, name: str, desc: Descriptor) -> str:
        """Name ``desc`` in the cache (see :meth:`Cache.tag`); the root entry carries no platform."""
        return self.cache.tag(name, desc.without_platform())


def write_image(
    cache: Cache,
    name: str,
    config: Mapping[str, Any],
    layers: Sequence[IO[bytes]],
    *,
    platform: Platform | None = None,
) -> Descriptor:
    """Write a single-platform image and name it; returns its manifest descriptor."""
    writer = cache.writer()
    desc = writer.add_image(config, layers, platform=platform)
    writer.tag(name, desc)
    return desc


def write_multiarch(
    cache: Cache,
    name: str,
    images: Mapping[Platform, tuple[Mapping[str, Any], Sequence[IO[bytes]]]],
) -> Descriptor:
    """Write one image per platform plus an index over them, and name the index."""
    writer = cache.writer()
    manifests = [writer.add_image(cfg, lays, platform=plat) for plat, (cfg, lays) in images.items()]
    index = writer.add_index(manifests)
    writer.tag(name, index)
    return index
