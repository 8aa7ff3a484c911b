"""cosign's signature format, without I/O: the "simple signing" payload that names an image digest,
and the signature image stored under the tag ``sha256-<hex>.sig`` (one layer per signature: the
payload as a blob of media type :data:`PAYLOAD_MEDIA_TYPE`, its base64 signature in the layer's
annotation :data:`SIGNATURE_ANNOTATION`). See cosign's ``specs/SIGNATURE_SPEC.md``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .. import digest as _digest
from .. import jsonfmt
from ..mediatypes import OCI_CONFIG, OCI_MANIFEST

PAYLOAD_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PAYLOAD_TYPE = "cosign container image signature"
#: a payload is ~250 bytes; anything much bigger is not one
MAX_PAYLOAD = 16 << 10


def signature_tag(digest: str) -> str:
    """The tag of the signatures of ``digest``: ``sha256:HEX`` → ``sha256-HEX.sig``."""
    if not _digest.is_valid(digest):
        raise ValueError(f"not a digest: {digest!r}")
    return digest.replace(":", "-", 1) + ".sig"


def docker_reference(domain: str, path: str) -> str:
    """The repository as cosign writes it in ``docker-reference`` (go-containerregistry's name:
    Docker Hub is ``index.docker.io``)."""
    return f"{'index.docker.io' if domain == 'docker.io' else domain}/{path}"


def payload(repository: str, digest: str) -> bytes:
    """The payload signing ``digest`` in ``repository``, as cosign marshals it (Go's compact JSON,
    fields in its struct order, ``optional`` null)."""
    doc = {
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": PAYLOAD_TYPE,
        },
        "optional": None,
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def signed_digest(data: bytes) -> str:
    """The image digest a payload signs; :class:`ValueError` when it is not a cosign payload."""
    # the one JSON reader for untrusted bytes: size and nesting bounded (a registry serves the payload)
    doc = jsonfmt.loads(data, "signature payload", max_size=MAX_PAYLOAD)
    critical = doc.get("critical") if isinstance(doc, dict) else None
    if not isinstance(critical, dict):
        raise ValueError("payload has no critical section")
    if critical.get("type") != PAYLOAD_TYPE:
        raise ValueError(f"payload type is {critical.get('type')!r}, not {PAYLOAD_TYPE!r}")
    image = critical.get("image")
    found = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if not isinstance(found, str) or not _digest.is_valid(found):
        raise ValueError("payload names no valid docker-manifest-digest")
    return found


@dataclass(frozen=True)
class SignatureLayer:
    """One signature of a signature image: its payload blob and base64 signature."""

    digest: str
    size: int
    signature: str

    def descriptor(self) -> dict[str, Any]:
        return {
            "mediaType": PAYLOAD_MEDIA_TYPE,
            "size": self.size,
            "digest": self.digest,
            "annotations": {SIGNATURE_ANNOTATION: self.signature},
        }


def signature_layers(manifest: bytes) -> list[SignatureLayer]:
    """The signature layers of a signature image's manifest (other layers are left out); a manifest
    that is not JSON or has no layer list raises :class:`ValueError`."""
    doc = jsonfmt.loads(manifest, "the signature manifest")  # the one JSON reader: size and nesting bounded
    layers = doc.get("layers") if isinstance(doc, dict) else None
    if not isinstance(layers, list):
        raise ValueError("the signature manifest has no layers")
    out = []
    for layer in layers:
        if not isinstance(layer, dict) or layer.get("mediaType") != PAYLOAD_MEDIA_TYPE:
            continue
        notes = layer.get("annotations")
        signature = notes.get(SIGNATURE_ANNOTATION) if isinstance(notes, dict) else None
        dig, size = layer.get("digest"), layer.get("size")
        if isinstance(signature, str) and isinstance(dig, str) and _digest.is_valid(dig) and isinstance(size, int):
            out.append(SignatureLayer(dig, size, signature))
    return out


def signature_image(layers: list[SignatureLayer]) -> tuple[bytes, bytes]:
    """The config and manifest bytes of a signature image holding ``layers`` (as cosign makes it:
    an OCI manifest over an empty image's config that lists the payloads as uncompressed layers)."""
    config = {
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"} for _ in layers],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        "config": {},
    }
    config_raw = json.dumps(config, separators=(",", ":")).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": len(config_raw), "digest": _digest.of_bytes(config_raw)},
        "layers": [layer.descriptor() for layer in layers],
    }
    return config_raw, json.dumps(manifest, separators=(",", ":")).encode()
