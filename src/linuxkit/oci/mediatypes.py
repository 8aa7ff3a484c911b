"""OCI and Docker media types, annotation names and small predicates on them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_ND = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_ND_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"

DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_UNCOMPRESSED = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

#: The annotation go-containerregistry matches names on (``match.Name``); upstream's ``cache ls`` reads it.
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
#: The annotation containerd uses; upstream's ``cache import`` names an image only from this one.
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
#: BuildKit attestation manifests point at the image they describe with these.
ANNOTATION_DOCKER_REFERENCE_TYPE = "vnd.docker.reference.type"
ANNOTATION_DOCKER_REFERENCE_DIGEST = "vnd.docker.reference.digest"

IMAGE_MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
SCHEMA1_TYPES = frozenset({DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED})
LAYER_TYPES = frozenset(
    {
        OCI_LAYER,
        OCI_LAYER_GZIP,
        OCI_LAYER_ZSTD,
        OCI_LAYER_ND,
        OCI_LAYER_ND_GZIP,
        DOCKER_LAYER,
        DOCKER_LAYER_UNCOMPRESSED,
        DOCKER_FOREIGN_LAYER,
    }
)
NON_DISTRIBUTABLE_TYPES = frozenset({OCI_LAYER_ND, OCI_LAYER_ND_GZIP, DOCKER_FOREIGN_LAYER})


def is_image_manifest(media_type: str) -> bool:
    return media_type in IMAGE_MANIFEST_TYPES


def is_index(media_type: str) -> bool:
    return media_type in INDEX_TYPES


def is_attestation(platform: Mapping[str, Any] | None) -> bool:
    """BuildKit stores attestations (SBOM, provenance) as manifests for platform ``unknown/unknown``."""
    return platform is not None and platform.get("os") == "unknown" and platform.get("architecture") == "unknown"
