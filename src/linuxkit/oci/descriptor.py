"""OCI content descriptors and the platform matching upstream LinuxKit uses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from ..errors import BuildError
from . import digest as _digest
from . import jsonfmt
from .image import Platform
from .mediatypes import ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, is_attestation


@dataclass(frozen=True, eq=False)
class Descriptor:
    """A reference to a blob: media type, digest, size, plus the optional fields of the spec.

    ``platform`` is kept as the JSON object (it may carry ``os.version``, ``features``...);
    ``extra`` holds every other field (``urls``, ``data``, ``artifactType``, unknown keys).
    """

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, obj: Any, what: str = "descriptor") -> Descriptor:
        """Build from a parsed JSON object; ``ValueError`` when a required field is wrong."""
        if not isinstance(obj, dict):
            raise ValueError(f"{what}: not a JSON object")
        media_type = obj.get("mediaType", "")
        dig = obj.get("digest")
        size = obj.get("size")
        if not isinstance(media_type, str):
            raise ValueError(f"{what}: mediaType is not a string")
        if not isinstance(dig, str) or not _digest.is_valid(dig):
            raise ValueError(f"{what}: missing or unsupported digest {dig!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"{what}: missing or negative size")
        annotations = obj.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise ValueError(f"{what}: annotations is not an object")
        platform = obj.get("platform")
        if platform is not None and not isinstance(platform, dict):
            raise ValueError(f"{what}: platform is not an object")
        extra = {k: v for k, v in obj.items() if k not in ("mediaType", "digest", "size", "annotations", "platform")}
        return cls(media_type, dig, size, {str(k): str(v) for k, v in annotations.items()}, platform, extra)

    def to_json(self) -> dict[str, Any]:
        """The JSON object, fields in go-containerregistry's order, annotations sorted."""
        obj: dict[str, Any] = {"mediaType": self.media_type, "size": self.size, "digest": self.digest}
        obj.update(self.extra)
        if self.annotations:
            obj["annotations"] = jsonfmt.sorted_map(self.annotations)
        if self.platform is not None:
            obj["platform"] = jsonfmt.ordered(self.platform, jsonfmt.PLATFORM_KEYS)
        return jsonfmt.ordered(obj, jsonfmt.DESCRIPTOR_KEYS)

    @property
    def name(self) -> str | None:
        """The image name this descriptor carries in the root index, if any."""
        return self.annotations.get(ANNOTATION_REF_NAME) or self.annotations.get(ANNOTATION_IMAGE_NAME)

    def named(self, name: str) -> Descriptor:
        """This descriptor carrying ``name`` in both name annotations (as stored in the cache index)."""
        annotations = dict(self.annotations)
        annotations[ANNOTATION_REF_NAME] = name
        annotations[ANNOTATION_IMAGE_NAME] = name
        return replace(self, annotations=annotations)

    def with_platform(self, platform: Platform | Mapping[str, Any] | None) -> Descriptor:
        return replace(self, platform=platform_json(platform) if isinstance(platform, Platform) else platform)

    def without_platform(self) -> Descriptor:
        return replace(self, platform=None)

    @property
    def is_attestation(self) -> bool:
        return is_attestation(self.platform)


class ManifestError(BuildError, ValueError):
    """An image manifest that is malformed: not an object, no config, layers not a list, a bad descriptor.

    A :class:`BuildError` for the user, and a ``ValueError`` like every other malformed JSON the
    cache and registry code already report as damage.
    """


class ManifestParts(NamedTuple):
    """What an image manifest (OCI or Docker v2) refers to: its config and its layers, in order."""

    config: Descriptor
    layers: tuple[Descriptor, ...]


def manifest_parts(manifest: Any, what: str) -> ManifestParts:
    """The config and layer descriptors of a parsed image manifest; ``what`` names it in errors
    (``manifest sha256:…``). Raises :class:`ManifestError` when the manifest is malformed."""
    if not isinstance(manifest, dict):
        raise ManifestError(f"{what} is not a JSON object")
    if "config" not in manifest:
        raise ManifestError(f"{what} is not an image manifest: it has no config")
    items = manifest.get("layers")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise ManifestError(f"{what}: layers is not a list")
    try:
        config = Descriptor.from_json(manifest["config"], f"{what}: config")
        layers = tuple(Descriptor.from_json(x, f"{what}: layers[{i}]") for i, x in enumerate(items))
    except ValueError as exc:
        raise ManifestError(str(exc)) from exc
    return ManifestParts(config, layers)


def platform_json(platform: Platform) -> dict[str, Any]:
    obj: dict[str, Any] = {"architecture": platform.architecture, "os": platform.os}
    if platform.variant:
        obj["variant"] = platform.variant
    return obj


def platform_of(obj: Mapping[str, Any] | None) -> Platform | None:
    if not obj:
        return None
    return Platform(str(obj.get("os", "")), str(obj.get("architecture", "")), obj.get("variant") or None)


def matches(candidate: Mapping[str, Any] | None, wanted: Platform) -> bool:
    """Upstream's rule: same OS and architecture; a requested variant must be equal too."""
    if candidate is None:
        return False
    if candidate.get("os") != wanted.os or candidate.get("architecture") != wanted.architecture:
        return False
    return not wanted.variant or candidate.get("variant") == wanted.variant
