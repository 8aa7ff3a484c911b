"""Merging two image indexes the way upstream's pushes do (pure logic, no I/O).

When a push meets a different index already in the registry, or ``pkg manifest`` rebuilds an index
from the ``TAG-<arch>`` images, upstream keeps every platform of both: the new index (``primary``)
wins for the platforms it has, the registry's (``secondary``) adds the others, and an attestation
(BuildKit's ``unknown/unknown`` manifests) is kept only while the image it describes is listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import jsonfmt
from .descriptor import Descriptor
from .mediatypes import ANNOTATION_DOCKER_REFERENCE_DIGEST, OCI_INDEX

#: upstream's ``platformsToSearchForIndex``: the platforms ``pkg manifest`` looks for as ``TAG-<arch>``
INDEX_PLATFORMS = ("linux/amd64", "linux/arm64", "linux/s390x", "linux/riscv64", "linux/ppc64le")


def _platform_key(desc: Descriptor) -> tuple[str, str, str] | None:
    plat = desc.platform
    if not plat or not plat.get("architecture") or desc.is_attestation:
        return None
    return (str(plat.get("architecture")), str(plat.get("os", "")), str(plat.get("variant") or ""))


def _describes(desc: Descriptor) -> str | None:
    """The digest an attestation manifest describes (``vnd.docker.reference.digest``)."""
    if not desc.is_attestation:
        return None
    return desc.annotations.get(ANNOTATION_DOCKER_REFERENCE_DIGEST) or None


def merge_manifests(primary: Sequence[Descriptor], secondary: Sequence[Descriptor]) -> list[Descriptor] | None:
    """The entries of ``primary`` plus those of ``secondary`` it lacks, as upstream's ``AppendIndex``.

    ``None`` when ``secondary`` already lists every entry of ``primary`` (it is the merge: nothing to
    push). Platforms of ``secondary`` that ``primary`` has are dropped (``primary`` wins); its
    attestations are kept only when the image they describe is in the result.
    """
    if len(primary) <= len(secondary) and {d.digest for d in primary} <= {d.digest for d in secondary}:
        return None
    out = list(primary)
    digests = {d.digest for d in primary if _platform_key(d) is not None}
    platforms = {key for d in primary if (key := _platform_key(d)) is not None}
    for desc in secondary:
        key = _platform_key(desc)
        if key is None or key in platforms or desc.digest in digests:
            continue
        out.append(desc)
        digests.add(desc.digest)
        platforms.add(key)
    have = {d.digest for d in out}
    for desc in secondary:
        target = _describes(desc)
        if target is not None and desc.digest not in have and target in digests:
            out.append(desc)
            have.add(desc.digest)
    return without_dangling(out)


def without_dangling(manifests: Sequence[Descriptor]) -> list[Descriptor]:
    """``manifests`` without the attestations describing an image that is not listed (upstream's
    ``cleanDanglingReferences``)."""
    images = {d.digest for d in manifests if _platform_key(d) is not None}
    return [d for d in manifests if (target := _describes(d)) is None or target in images]


def index_bytes(manifests: Sequence[Descriptor], *, media_type: str = OCI_INDEX) -> bytes:
    """An image index over ``manifests`` as the cache writes one (Go's field order, no annotations)."""
    index: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [m.to_json() for m in manifests],
    }
    return jsonfmt.dumps(index)


def index_entries(raw: bytes, what: str) -> list[Descriptor]:
    """The descriptors an index's bytes list; ``ValueError`` naming ``what`` when malformed."""
    obj = jsonfmt.loads(raw, what)
    if not isinstance(obj, dict):
        raise ValueError(f"{what} is not a JSON object")
    items = obj.get("manifests") or []
    if not isinstance(items, list):
        raise ValueError(f"{what}: manifests is not a list")
    return [Descriptor.from_json(m, f"{what}: manifests[{i}]") for i, m in enumerate(items)]
