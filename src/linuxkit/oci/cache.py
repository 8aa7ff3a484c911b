"""The image cache: an OCI image layout shared with upstream LinuxKit (``~/.linuxkit/cache``).

Images are named in ``index.json`` by the annotations ``org.opencontainers.image.ref.name`` (what
upstream matches and lists) and ``io.containerd.image.name`` (what upstream's import reads), both
holding the full reference (``docker.io/library/alpine:3.20``). A name points at an image index
(multi-arch) or at a single image manifest.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .. import log
from ..errors import BuildError, UserError
from . import reference
from .descriptor import Descriptor, ManifestError, manifest_parts, matches, platform_of
from .digest import CHUNK, DigestError, VerifyingReader
from .image import Platform
from .layout import Layout, LayoutError
from .mediatypes import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    SCHEMA1_TYPES,
    is_image_manifest,
    is_index,
)

if TYPE_CHECKING:
    from .writer import ImageWriter

_DAMAGE = (FileNotFoundError, DigestError, LayoutError, ValueError, KeyError, TypeError)


def _fix_hint(name: str) -> str:
    return (
        f"run `linuxkit cache verify --repair {name}` to pull it again, or remove it with"
        f" `linuxkit cache rm {name}` and pull or build it again"
    )


def damaged(name: str, exc: BaseException) -> BuildError:
    """The error for a cache entry that is present but unusable."""
    detail = exc.message if isinstance(exc, BuildError) else str(exc)
    if isinstance(exc, FileNotFoundError):
        detail = f"missing blob {Path(exc.filename or '?').name}"
    return BuildError(f"image {name} in the cache is damaged: {detail}", hint=_fix_hint(name))


def name_candidates(ref: str) -> list[str]:
    """The names ``ref`` may be stored under: as given, fully expanded, expanded without ``:latest``."""
    out = [ref]
    try:
        out.append(reference.normalize(ref))
    except UserError:
        return out
    out.append(reference.expand(ref))
    return list(dict.fromkeys(out))


def _has_name(desc: Descriptor, names: Iterable[str]) -> bool:
    wanted = set(names)
    return desc.annotations.get(ANNOTATION_REF_NAME) in wanted or desc.annotations.get(ANNOTATION_IMAGE_NAME) in wanted


@dataclass(frozen=True, eq=False)
class CachedImage:
    """One single-platform image in the cache; an :class:`linuxkit.oci.image.ImageSource`.

    ``manifest`` and ``config`` were verified against their digests when it was resolved.
    ``open_layer`` verifies each layer blob while it streams (see :mod:`linuxkit.oci.layers`);
    :meth:`verify` checks every layer blob in full.
    """

    layout: Layout
    name: str
    root: Descriptor
    descriptor: Descriptor
    manifest: dict[str, Any]
    config_descriptor: Descriptor
    config_json: dict[str, Any]
    layers: tuple[Descriptor, ...]

    @property
    def ref(self) -> str:
        return self.name

    @property
    def digest(self) -> str:
        return self.descriptor.digest

    @property
    def config(self) -> dict[str, Any]:
        return self.config_json

    @property
    def platform(self) -> Platform | None:
        return platform_of(self.descriptor.platform) or platform_of(self.config_json)

    @property
    def diff_ids(self) -> list[str]:
        rootfs = self.config_json.get("rootfs") or {}
        return [str(d) for d in rootfs.get("diff_ids") or []]

    def layer_count(self) -> int:
        return len(self.layers)

    def _open_blob(self, index: int) -> VerifyingReader:
        layer = self.layers[index]
        try:
            blob = self.layout.open_blob(
                layer.digest, layer.size, f"image {self.name} in the cache is damaged: layer {index} ({layer.digest})"
            )
        except FileNotFoundError as exc:
            raise damaged(self.name, exc) from exc
        blob.hint = _fix_hint(self.name)
        return blob

    def open_layer(self, index: int) -> IO[bytes]:
        """Layer ``index`` (0 = bottom) as an uncompressed tar stream."""
        from .layers import open_uncompressed  # the decompressors: not needed to pull or list

        return open_uncompressed(self._open_blob(index))

    def open_compressed_layer(self, index: int) -> IO[bytes]:
        """Layer ``index`` as stored (checked against its digest when read to the end)."""
        return io.BufferedReader(self._open_blob(index), CHUNK)

    def raw_manifest(self) -> bytes:
        return self.layout.read_blob(self.descriptor.digest, self.descriptor.size)

    def raw_config(self) -> bytes:
        return self.layout.read_blob(self.config_descriptor.digest, self.config_descriptor.size)

    def verify(self) -> None:
        """Read every layer blob in full and check it; :class:`BuildError` naming the image if bad."""
        for i in range(len(self.layers)):
            blob = self._open_blob(i)
            try:
                with blob:
                    blob.drain()
            except DigestError as exc:
                raise damaged(self.name, exc) from exc


class Cache:
    """An upstream-compatible image cache directory (created on first write)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.layout = Layout(self.root)

    # -- names -----------------------------------------------------------------------------------

    def entries(self) -> list[Descriptor]:
        """The descriptors of the cache's ``index.json`` (named or not)."""
        try:
            return self.layout.read_index()
        except LayoutError as exc:
            raise self._broken_index(exc) from exc

    def _broken_index(self, exc: LayoutError) -> BuildError:
        return BuildError(
            f"the image cache {self.root} is damaged: {exc}",
            hint=f"repair or remove {self.layout.index_path} (the names are lost, the blobs stay), or empty"
            " the cache with `linuxkit cache clean`",
        )

    def _update_index(self, change: Callable[[list[Descriptor]], list[Descriptor]]) -> list[Descriptor]:
        """:meth:`Layout.update_index`, a broken ``index.json`` reported as :meth:`entries` does."""
        try:
            return self.layout.update_index(change)
        except LayoutError as exc:
            raise self._broken_index(exc) from exc

    def images(self) -> dict[str, str]:
        """Name → root digest (index or manifest), sorted by name, as ``cache ls`` shows them.

        Upstream lists only the ``org.opencontainers.image.ref.name`` annotation; we fall back to
        ``io.containerd.image.name`` for entries that only have that one.
        """
        out: dict[str, str] = {}
        for desc in self.entries():
            if desc.name:
                out[desc.name] = desc.digest
        return dict(sorted(out.items()))

    def find(self, ref: str) -> Descriptor | None:
        """The root descriptor stored for ``ref`` (by name, or by digest for ``name@sha256:...``)."""
        entries = self.entries()
        candidates = name_candidates(ref)
        for desc in entries:
            if desc.annotations.get(ANNOTATION_REF_NAME) in candidates:
                return desc
        for desc in entries:
            if _has_name(desc, candidates):
                return desc
        try:
            dig = reference.parse(ref).digest
        except UserError:
            return None
        if dig:
            for desc in entries:
                if desc.digest == dig:
                    return desc
        return None

    # -- reading ---------------------------------------------------------------------------------

    def resolve(self, ref: str, platform: Platform) -> CachedImage | None:
        """The image ``ref`` for ``platform``, or ``None`` when the cache does not have it.

        A name pointing at an index yields the image manifest for ``platform`` (same OS and
        architecture, and variant when one is asked for; attestation manifests never match);
        ``None`` when the index has no such platform. A name pointing at a single image
        manifest is accepted whatever its architecture, as upstream does (with a warning when its
        config says another one). A present but broken entry raises :class:`BuildError`.
        """
        root = self.find(ref)
        if root is None:
            return None
        name = root.name or reference.normalize(ref)
        try:
            return self._resolve_root(name, root, platform)
        except BuildError as exc:
            if isinstance(exc, (DigestError, ManifestError)):
                raise damaged(name, exc) from exc
            raise
        except _DAMAGE as exc:
            raise damaged(name, exc) from exc

    def platforms(self, ref: str) -> list[Platform]:
        """The platforms an indexed image offers (attestations left out); empty for single images."""
        root = self.find(ref)
        if root is None or not is_index(root.media_type):
            return []
        return [p for m in self._children(root) if not m.is_attestation and (p := platform_of(m.platform)) is not None]

    def children(self, index: Descriptor) -> list[Descriptor]:
        """The descriptors listed by the index ``index`` (attestations included)."""
        return self._children(index)

    def _children(self, index: Descriptor) -> list[Descriptor]:
        obj = self.layout.read_json_blob(index.digest, index.size, f"index {index.digest}")
        manifests = obj.get("manifests") or []
        if not isinstance(manifests, list):
            raise LayoutError(f"index {index.digest}: manifests is not a list")
        return [Descriptor.from_json(m, f"index {index.digest}: manifests[{i}]") for i, m in enumerate(manifests)]

    def _resolve_root(self, name: str, root: Descriptor, platform: Platform) -> CachedImage | None:
        if is_index(root.media_type):
            children = [
                m
                for m in self._children(root)
                if is_image_manifest(m.media_type) and not m.is_attestation and matches(m.platform, platform)
            ]
            if not children:
                log.debug(f"cache: {name} has no image for {platform}")
                return None
            if not self.layout.has_blob(children[0].digest):
                # the index lists the platform but it was never pulled (a pull writes a manifest
                # only after all its blobs): missing, not damaged, so the caller pulls it
                log.debug(f"cache: {name} lists {platform} but it was not pulled")
                return None
            return self._load(name, root, children[0], platform, single=False)
        if is_image_manifest(root.media_type):
            return self._load(name, root, root, platform, single=True)
        if root.media_type in SCHEMA1_TYPES:
            raise BuildError(
                f"image {name} uses the Docker schema 1 manifest format, which is not supported",
                hint="rebuild or re-push the image with a current tool",
            )
        raise LayoutError(f"unsupported media type {root.media_type!r} for {root.digest}")

    def _load(self, name: str, root: Descriptor, desc: Descriptor, platform: Platform, *, single: bool) -> CachedImage:
        manifest = self.layout.read_json_blob(desc.digest, desc.size, f"manifest {desc.digest}")
        if "manifests" in manifest:
            raise LayoutError(f"manifest {desc.digest} is not an image manifest")
        config_desc, layers = manifest_parts(manifest, f"manifest {desc.digest}")
        config = self.layout.read_json_blob(config_desc.digest, config_desc.size, f"config {config_desc.digest}")
        if single:
            arch, os_name = config.get("architecture"), config.get("os")
            if (arch and arch != platform.architecture) or (os_name and os_name != platform.os):
                log.warn(f"{name} is a single-platform image for {os_name}/{arch}, not {platform}; using it anyway")
        return CachedImage(self.layout, name, root, desc, manifest, config_desc, config, layers)

    # -- writing ---------------------------------------------------------------------------------

    def writer(self) -> ImageWriter:
        from .writer import ImageWriter

        return ImageWriter(self)

    def _check_complete(self, desc: Descriptor) -> None:
        """Refuse to name content that is not all present (a concurrent ``rm`` may have removed it)."""
        missing: list[str] = []
        if not self.layout.has_blob(desc.digest, desc.size):
            missing.append(desc.digest)
        elif is_image_manifest(desc.media_type):
            try:
                manifest = self.layout.read_json_blob(desc.digest, desc.size, f"manifest {desc.digest}")
                config, layers = manifest_parts(manifest, f"manifest {desc.digest}")
                parts = [config, *layers]
            except (ValueError, OSError) as exc:  # LayoutError too; a DigestError is a BuildError already
                raise BuildError(f"cannot name {desc.digest}: {exc}", hint="the image is malformed") from exc
            missing += [d.digest for d in parts if not self.layout.has_blob(d.digest, d.size)]
        if missing:
            raise BuildError(
                f"cannot name {desc.digest}: blobs missing from the cache: {', '.join(missing)}",
                hint="another process may have removed them (cache rm/clean); retry",
            )

    def tag(self, name: str, desc: Descriptor) -> str:
        """Point ``name`` (normalised to a full reference) at ``desc``, replacing any older entry
        of that name, atomically; returns the full name."""
        full = reference.normalize(name)
        entry = desc.named(full)

        def change(entries: list[Descriptor]) -> list[Descriptor]:
            self._check_complete(desc)
            return [e for e in entries if not _has_name(e, [full])] + [entry]

        self._update_index(change)
        return full

    def untag(self, name: str) -> list[Descriptor]:
        """Remove the entries named ``name`` from the index (blobs stay); returns them."""
        removed: list[Descriptor] = []
        candidates = name_candidates(name)

        def change(entries: list[Descriptor]) -> list[Descriptor]:
            removed.extend(e for e in entries if _has_name(e, candidates))
            return [e for e in entries if not _has_name(e, candidates)]

        if self.layout.exists():
            self._update_index(change)
        return removed

    def reachable(self, roots: Iterable[Descriptor]) -> set[str]:
        """Every blob digest reachable from ``roots`` that can be read (broken links are skipped)."""
        seen: set[str] = set()
        stack = list(roots)
        while stack:
            desc = stack.pop()
            if desc.digest in seen:
                continue
            seen.add(desc.digest)
            if not (is_index(desc.media_type) or is_image_manifest(desc.media_type)):
                continue
            try:
                obj = self.layout.read_json_blob(desc.digest, desc.size)
                stack.extend(Descriptor.from_json(c) for c in obj.get("manifests") or [])
                if "config" in obj:  # what the blob holds, whatever the descriptor says it is
                    config, layers = manifest_parts(obj, f"manifest {desc.digest}")
                    stack.extend((config, *layers))
            except (*_DAMAGE, DigestError):
                continue
        return seen

    def remove(self, ref: str) -> tuple[Descriptor, list[str]] | None:
        """Remove the name ``ref`` and the blobs that no other name still needs.

        Returns the removed root descriptor and the blobs deleted; ``None`` when not present.
        The index is rewritten before any blob is deleted, so a crash never leaves a name
        pointing at missing content. (Upstream deletes all the image's blobs, even ones other
        images share.)
        """
        if not self.layout.exists():
            return None
        candidates = name_candidates(ref)
        with self.layout.lock.exclusive():
            entries = self.entries()
            gone = [e for e in entries if _has_name(e, candidates)]
            if not gone:
                return None
            kept = [e for e in entries if not _has_name(e, candidates)]
            doomed = self.reachable(gone) - self.reachable(kept)
            self._update_index(lambda _entries: kept)
            deleted = sorted(d for d in doomed if self.layout.remove_blob(d))
        return gone[0], deleted
