"""Volumes with ``format: oci``: an image index from the cache as an OCI image layout, as tar entries.

Upstream (``cache/indexsource.go OCITarReader`` and ``cache/layout.go``) writes, in this order:
``oci-layout``, ``blobs/``, ``blobs/sha256/``; then for each image manifest of the index (in
index order, only the requested platforms when some are given) its config, its layers (in
manifest order, a repeated layer written again) and the manifest itself; then the index blob and
an ``index.json`` naming the index. Its entries carry no times (Go's zero time, written as 0),
owner 0:0, mode 0644 (files) or 0755 (directories). The entries are yielded below no prefix; the
assembler moves them into the volume.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import log
from ..errors import BuildError
from ..oci import digest as _digest
from ..oci import jsonfmt, reference
from ..oci.cache import Cache, damaged
from ..oci.descriptor import Descriptor, manifest_parts
from ..oci.image import Platform
from ..oci.mediatypes import ANNOTATION_REF_NAME, IMAGE_MANIFEST_TYPES, OCI_INDEX, is_index
from ..oci.registry import pull
from ..tar.header import DIR, REG, Header
from ..tar.reader import Entry

#: The ``oci-layout`` file as go-containerregistry writes it.
LAYOUT_FILE = b'{\n\t\t"imageLayoutVersion": "1.0.0"\n\t}'
_ZERO_TIME = (0, 0)

if TYPE_CHECKING:  # the registry client loads only when a volume image must be pulled
    from ..oci.registry import RegistryOptions


def _file(name: str, size: int, data: Any) -> Entry:
    return Entry(Header(name=name, typeflag=REG, mode=0o644, size=size, mtime=_ZERO_TIME), data)


def _dir(name: str) -> Entry:
    return Entry(Header(name=name, typeflag=DIR, mode=0o755, mtime=_ZERO_TIME), io.BytesIO())


def wanted(platform: Mapping[str, Any] | None, platforms: Sequence[Platform]) -> bool:
    """Upstream's filter: no platforms means all; else same OS and architecture, and the variant when given."""
    if not platforms:
        return True
    if platform is None:
        return False
    return any(
        p.os == platform.get("os")
        and p.architecture == platform.get("architecture")
        and (not p.variant or p.variant == platform.get("variant"))
        for p in platforms
    )


def find_index(cache: Cache, ref: str) -> Descriptor:
    """The root index of ``ref`` in ``cache``; :class:`BuildError` when missing or a single image."""
    key = reference.normalize(ref)
    root = cache.find(key)
    if root is None:
        raise BuildError(
            f"volume image {key} is not in the cache {cache.root}",
            hint="pull it (`linuxkit cache pull`) or import it (`linuxkit cache import FILE`)",
        )
    if not is_index(root.media_type):
        raise BuildError(
            f"volume image {key} is a single-platform image; format: oci needs a multi-platform index",
            hint="use format: filesystem for it, or store the image with its index",
        )
    return root


def _blobs(cache: Cache, root: Descriptor, platforms: Sequence[Platform]) -> Iterator[Descriptor]:
    """Every blob written for the images of ``root``, in upstream's order (the index itself excluded)."""
    for child in cache.children(root):
        if not wanted(child.platform, platforms) or child.media_type not in IMAGE_MANIFEST_TYPES:
            continue
        manifest = cache.layout.read_json_blob(child.digest, child.size, f"manifest {child.digest}")
        config, layers = manifest_parts(manifest, f"manifest {child.digest}")
        yield config
        yield from layers
        yield child


def missing_blobs(cache: Cache, ref: str, platforms: Sequence[Platform]) -> list[str]:
    """The blobs :func:`layout_entries` needs that the cache lacks (:class:`BuildError` without the index)."""
    root = find_index(cache, ref)
    try:
        return [d.digest for d in _blobs(cache, root, platforms) if not cache.layout.has_blob(d.digest, d.size)]
    except (OSError, ValueError) as exc:
        raise damaged(reference.normalize(ref), exc) from exc


def ensure_index(
    cache: Cache, ref: str, platforms: Sequence[Platform], *, registry: RegistryOptions | None, always_pull: bool
) -> None:
    """Upstream's ``indexSource``: pull ``ref`` (for ``platforms``, all when empty) when asked to or
    when the cache lacks it or some of its blobs, then require everything the layout needs."""
    key = reference.normalize(ref)

    def fetch() -> None:
        assert registry is not None
        with log.step(f"Pulling {key}"):
            pull(cache, key, list(platforms), options=registry)

    if registry is not None and (always_pull or cache.find(key) is None):
        fetch()
    missing = missing_blobs(cache, ref, platforms)
    if missing and registry is not None and not always_pull:
        fetch()
        missing = missing_blobs(cache, ref, platforms)
    if missing:
        raise BuildError(
            f"volume image {key} is incomplete in the cache: {len(missing)} blobs are missing (first {missing[0]})",
            hint="pull it again for the platforms the volume names",
        )


def layout_entries(cache: Cache, ref: str, platforms: Sequence[Platform]) -> Iterator[Entry]:
    """The OCI layout of ``ref``'s index as tar entries; read each entry's data before the next."""
    root = find_index(cache, ref)
    yield _file("oci-layout", len(LAYOUT_FILE), io.BytesIO(LAYOUT_FILE))
    yield _dir("blobs/")
    yield _dir("blobs/sha256/")
    try:
        for blob in _blobs(cache, root, platforms):
            with cache.layout.open_blob(blob.digest, blob.size, blob.digest) as data:
                yield _file(f"blobs/sha256/{_digest.hex_of(blob.digest)}", blob.size, data)
        raw_index = cache.layout.read_blob(root.digest, root.size)
    except (OSError, ValueError) as exc:
        raise damaged(reference.normalize(ref), exc) from exc
    yield _file(f"blobs/sha256/{_digest.hex_of(root.digest)}", len(raw_index), io.BytesIO(raw_index))
    named = Descriptor(OCI_INDEX, root.digest, len(raw_index), {ANNOTATION_REF_NAME: ref})
    index = jsonfmt.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [named.to_json()]}, indent=3)
    yield _file("index.json", len(index), io.BytesIO(index))
