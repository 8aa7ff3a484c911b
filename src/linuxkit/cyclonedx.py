"""An SPDX 2.3 document (JSON) as a CycloneDX 1.5 JSON BOM: the same facts, nothing added.

SPDX packages become components (``container`` for an image, ``library`` otherwise) with version,
purl, licence expression, hashes and supplier; SPDX files become ``file`` components with their
hashes. CycloneDX has no relationship types, so ``CONTAINS`` and ``GENERATED_FROM`` are kept as
component properties (``linuxkit:contained-by``, ``linuxkit:generated-from``: the ``bom-ref`` of the
other end). Deterministic: the serial number is derived from the content, the timestamp is the SPDX
document's ``created``.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

_ALGORITHMS = {"SHA1": "SHA-1", "SHA256": "SHA-256", "SHA512": "SHA-512", "MD5": "MD5"}
_ABSENT = ("", "NOASSERTION", "NONE")


def _hashes(item: Mapping[str, Any]) -> list[dict[str, str]]:
    out = []
    for checksum in item.get("checksums") or []:
        alg = _ALGORITHMS.get(str(checksum.get("algorithm")))
        if alg is not None:
            out.append({"alg": alg, "content": str(checksum.get("checksumValue"))})
    return out


def _supplier(text: str) -> dict[str, str] | None:
    if text in _ABSENT:
        return None
    match = re.match(r"^(?:Person|Organization):\s*(.*?)\s*(?:\(([^)]*)\))?\s*$", text)
    if match is None:
        return {"name": text}
    name, mail = match.group(1), match.group(2)
    supplier: dict[str, Any] = {"name": name or mail or text}
    if mail:
        supplier["contact"] = [{"email": mail}]
    return supplier


def _properties(ref: str, relations: Mapping[str, list[tuple[str, str]]]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in sorted(relations.get(ref, []))]


def _package(item: Mapping[str, Any], relations: Mapping[str, list[tuple[str, str]]]) -> dict[str, Any]:
    ref = str(item.get("SPDXID"))
    component: dict[str, Any] = {
        "type": "container" if item.get("primaryPackagePurpose") == "CONTAINER" else "library",
        "bom-ref": ref,
        "name": str(item.get("name", "")),
    }
    supplier = _supplier(str(item.get("supplier", "")))
    if supplier is not None:
        component["supplier"] = supplier
    if item.get("versionInfo"):
        component["version"] = str(item["versionInfo"])
    if hashes := _hashes(item):
        component["hashes"] = hashes
    licence = str(item.get("licenseDeclared", ""))
    if licence not in _ABSENT:
        component["licenses"] = [{"expression": licence}]
    for external in item.get("externalRefs") or []:
        if external.get("referenceType") == "purl":
            component["purl"] = str(external.get("referenceLocator"))
            break
    if properties := _properties(ref, relations):
        component["properties"] = properties
    return component


def _file(item: Mapping[str, Any], relations: Mapping[str, list[tuple[str, str]]]) -> dict[str, Any]:
    ref = str(item.get("SPDXID"))
    component: dict[str, Any] = {"type": "file", "bom-ref": ref, "name": str(item.get("fileName", ""))}
    if hashes := _hashes(item):
        component["hashes"] = hashes
    if properties := _properties(ref, relations):
        component["properties"] = properties
    return component


def from_spdx(document: Mapping[str, Any]) -> dict[str, Any]:
    """The CycloneDX 1.5 BOM of an SPDX 2.3 JSON document."""
    relations: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for rel in document.get("relationships") or []:
        kind, source, target = rel.get("relationshipType"), rel.get("spdxElementId"), rel.get("relatedSpdxElement")
        if kind == "CONTAINS" and source != "SPDXRef-DOCUMENT":
            relations[str(target)].append(("linuxkit:contained-by", str(source)))
        elif kind == "GENERATED_FROM":
            relations[str(source)].append(("linuxkit:generated-from", str(target)))
    components = [_package(p, relations) for p in document.get("packages") or []]
    components += [_file(f, relations) for f in document.get("files") or []]
    body = {"components": components}
    serial = uuid.UUID(bytes=hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()[:16], version=5)
    created = (document.get("creationInfo") or {}).get("created")
    metadata: dict[str, Any] = {
        "tools": {"components": [{"type": "application", "name": "linuxkit"}]},
        "component": {"type": "operating-system", "bom-ref": "linuxkit-image", "name": str(document.get("name", ""))},
    }
    if created:
        metadata["timestamp"] = str(created)
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{serial}",
        "version": 1,
        "metadata": metadata,
        **body,
    }
