"""The consolidated SBOM written into the root filesystem (``sbom.spdx.json``).

Upstream merges the SPDX documents attached to the images (BuildKit attestation manifests) into
one SPDX 2.3 document, prefixing every file path with where the image lands in the rootfs. It
names the document with a random UUID, so its outputs differ on every build; ours derives the
namespace from the merged content, so the same inputs give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .errors import BuildError
from .gocompat.path import go_join
from .oci import jsonfmt
from .oci.cache import Cache, damaged
from .oci.descriptor import manifest_parts, matches
from .oci.digest import DigestError
from .oci.image import Platform
from .oci.mediatypes import ANNOTATION_DOCKER_REFERENCE_DIGEST, ANNOTATION_DOCKER_REFERENCE_TYPE, is_index

SPDX_PREDICATE = "https://spdx.dev/Document"
INTOTO_PREDICATE_TYPE = "in-toto.io/predicate-type"
INTOTO_MEDIA_TYPE = "application/vnd.in-toto+json"
DEFAULT_BUILD_TIME = datetime(2017, 4, 18, 16, 30, 0, tzinfo=UTC)
_MERGED_KEYS = (
    "packages",
    "files",
    "hasExtractedLicensingInfos",
    "relationships",
    "annotations",
    "externalDocumentRefs",
)


def _prefixed(prefix: str, name: str) -> str:
    # Go's filepath.Join: join, then clean (drops "./", duplicate and trailing slashes).
    joined = go_join(prefix, name)
    return "" if joined == "." else joined


@dataclass
class SbomCollector:
    """Collects SPDX documents (JSON) and writes the merged one."""

    build_time: datetime = DEFAULT_BUILD_TIME
    _parts: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in _MERGED_KEYS})
    _elements: dict[str, str] = field(default_factory=dict)  # SPDXID → the element's JSON
    _seen: set[str] = field(default_factory=set)  # relationships and licence ids already merged
    _count: int = 0

    def add(self, prefix: str, document: bytes, *, source: str = "") -> None:
        try:
            doc = jsonfmt.loads(document, "SBOM attestation")
        except ValueError as exc:
            raise BuildError(f"{source or 'image'}: its {exc}") from exc
        if not isinstance(doc, dict):
            raise BuildError(f"{source or 'image'}: its SBOM attestation is not an SPDX JSON document")
        for item in doc.get("files") or []:
            if isinstance(item, dict) and "fileName" in item:
                item["fileName"] = _prefixed(prefix, str(item["fileName"]))
        for item in doc.get("packages") or []:
            if isinstance(item, dict) and item.get("packageFileName"):
                item["packageFileName"] = _prefixed(prefix, str(item["packageFileName"]))
        self._count += 1
        renames = self._claim_ids(doc)
        for key in _MERGED_KEYS:
            values = doc.get(key) or []
            if isinstance(values, list):
                self._parts[key].extend(v for v in values if self._keep(key, v, renames))

    def _claim_ids(self, doc: dict[str, Any]) -> dict[str, str | None]:
        """Identifiers of ``doc``'s packages and files already merged: ``None`` for the same element (one
        Debian package in several images is listed once), a new name for another element under the same
        identifier (the same image in two places). Upstream concatenates, which makes such a merge an
        invalid SPDX document; merges without clashes come out as upstream's."""
        renames: dict[str, str | None] = {}
        for key in ("packages", "files"):
            for item in doc.get(key) or []:
                if not isinstance(item, dict) or not isinstance(item.get("SPDXID"), str):
                    continue
                sid = item["SPDXID"]
                body = json.dumps(item, sort_keys=True)
                if sid not in self._elements:
                    self._elements[sid] = body
                elif self._elements[sid] == body:
                    renames[sid] = None
                else:
                    n = self._count
                    while f"{sid}-{n}" in self._elements:
                        n += 1
                    renames[sid] = item["SPDXID"] = f"{sid}-{n}"
                    self._elements[item["SPDXID"]] = body
        return renames

    def _keep(self, key: str, item: Any, renames: dict[str, str | None]) -> bool:
        if not isinstance(item, dict):
            return True
        if key in ("packages", "files"):
            sid = item.get("SPDXID")
            return not (isinstance(sid, str) and sid in renames and renames[sid] is None)
        if key == "relationships":
            for end in ("spdxElementId", "relatedSpdxElement"):
                new = renames.get(str(item.get(end)))
                if new is not None:
                    item[end] = new
            mark = "rel:" + json.dumps(item, sort_keys=True)
        elif key == "hasExtractedLicensingInfos":
            mark = "licence:" + str(item.get("licenseId"))  # the first text of a LicenseRef names it
        else:
            return True
        if mark in self._seen:
            return False
        self._seen.add(mark)
        return True

    def render(self) -> bytes:
        body: dict[str, Any] = {key: values for key, values in self._parts.items() if values}
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()
        namespace_id = uuid.UUID(bytes=digest[:16], version=5)
        doc: dict[str, Any] = {
            "spdxVersion": "SPDX-2.3",
            "dataLicense": "CC0-1.0",
            "SPDXID": "SPDXRef-DOCUMENT",
            "name": "sbom",
            "documentNamespace": f"https://github.com/linuxkit/linuxkit/sbom-{namespace_id}",
            "creationInfo": {
                "licenseListVersion": "3.20",
                "creators": ["Organization: LinuxKit", "Tool: linuxkit"],
                "created": self.build_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            **body,
        }
        # Compact, one line plus a newline: the shape upstream's SPDX writer produces.
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def statement_predicate(statement: bytes, *, source: str = "") -> bytes:
    """The SPDX document inside an in-toto statement (an attestation layer)."""
    try:
        stmt = jsonfmt.loads(statement, "attestation")
    except ValueError as exc:
        raise BuildError(f"{source or 'image'}: its {exc}") from exc
    kind = stmt.get("predicateType") if isinstance(stmt, dict) else None
    if kind != SPDX_PREDICATE:
        raise BuildError(f"{source or 'image'}: unexpected attestation predicate type {kind!r}")
    return json.dumps(stmt.get("predicate"), ensure_ascii=False).encode()


def attestation_sboms(cache: Cache, ref: str, platform: Platform) -> list[bytes]:
    """The SPDX documents attached to image ``ref`` for ``platform`` in the cache (BuildKit
    attestation manifests: ``vnd.docker.reference.type: attestation-manifest`` pointing at the
    image manifest's digest, with in-toto SPDX layers). Empty when the image has none."""
    root = cache.find(ref)
    if root is None or not is_index(root.media_type):
        return []
    children = cache.children(root)
    images = [c for c in children if not c.is_attestation and matches(c.platform, platform)]
    if not images:
        return []
    target = images[0].digest
    attestations = [
        c
        for c in children
        if c.annotations.get(ANNOTATION_DOCKER_REFERENCE_TYPE) == "attestation-manifest"
        and c.annotations.get(ANNOTATION_DOCKER_REFERENCE_DIGEST) == target
    ]
    if not attestations:
        return []
    if len(attestations) > 1:
        raise BuildError(f"image {ref}: several attestation manifests for {platform}")
    try:
        manifest = cache.layout.read_json_blob(attestations[0].digest, attestations[0].size, f"attestation of {ref}")
        out = []
        for layer in manifest_parts(manifest, f"attestation of {ref}").layers:
            if layer.annotations.get(INTOTO_PREDICATE_TYPE) != SPDX_PREDICATE or layer.media_type != INTOTO_MEDIA_TYPE:
                continue
            statement = cache.layout.read_blob(layer.digest, layer.size, f"SBOM of {ref}")
            out.append(statement_predicate(statement, source=ref))
    except (OSError, ValueError, DigestError) as exc:
        raise damaged(ref, exc) from exc
    return out
