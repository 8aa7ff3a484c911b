"""An SBOM attestation manifest, stored as BuildKit stores them (and upstream's ``build`` reads them).

A manifest for platform ``unknown/unknown`` in the image's index, annotated
``vnd.docker.reference.type: attestation-manifest`` and ``vnd.docker.reference.digest: <image
manifest digest>``; its one layer is an in-toto statement (``application/vnd.in-toto+json``,
annotation ``in-toto.io/predicate-type: https://spdx.dev/Document``) whose subject is the image
manifest and whose predicate is the SPDX document. Reproducible: the same document and image give
the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..oci.descriptor import Descriptor
from ..oci.mediatypes import ANNOTATION_DOCKER_REFERENCE_DIGEST, ANNOTATION_DOCKER_REFERENCE_TYPE
from ..oci.writer import ImageWriter
from ..sbom import INTOTO_MEDIA_TYPE, INTOTO_PREDICATE_TYPE, SPDX_PREDICATE

INTOTO_STATEMENT_TYPE = "https://in-toto.io/Statement/v0.1"
ATTESTATION_PLATFORM = {"architecture": "unknown", "os": "unknown"}


def subject_name(name: str, platform: str) -> str:
    """BuildKit's subject name: ``pkg:docker/NAME@TAG?platform=linux%2Famd64``."""
    repo, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "")
    return f"pkg:docker/{repo}@{tag}?platform={platform.replace('/', '%2F')}" if tag else f"pkg:docker/{repo}"


def statement(image: Descriptor, name: str, platform: str, document: Mapping[str, Any]) -> bytes:
    """The in-toto statement of ``document`` about ``image`` (its manifest)."""
    algorithm, _, value = image.digest.partition(":")
    body = {
        "_type": INTOTO_STATEMENT_TYPE,
        "predicateType": SPDX_PREDICATE,
        "subject": [{"name": subject_name(name, platform), "digest": {algorithm: value}}],
        "predicate": document,
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def add_sbom_attestation(
    writer: ImageWriter, image: Descriptor, name: str, platform: str, document: Mapping[str, Any]
) -> Descriptor:
    """Write the attestation manifest of ``document`` for ``image``; returns its index entry."""
    layer = writer.add_blob(statement(image, name, platform, document), INTOTO_MEDIA_TYPE)
    layer = Descriptor(layer.media_type, layer.digest, layer.size, {INTOTO_PREDICATE_TYPE: SPDX_PREDICATE})
    config = writer.add_config(
        {**ATTESTATION_PLATFORM, "config": {}, "rootfs": {"type": "layers", "diff_ids": [layer.digest]}}
    )
    manifest = writer.add_manifest(config, [layer])
    annotations = {
        ANNOTATION_DOCKER_REFERENCE_DIGEST: image.digest,
        ANNOTATION_DOCKER_REFERENCE_TYPE: "attestation-manifest",
    }
    return Descriptor(manifest.media_type, manifest.digest, manifest.size, annotations, dict(ATTESTATION_PLATFORM))
