"""cosign's keyed signature format without a registry: the payload bytes, the signature image, key
loading and signature checks, and which key a verify policy asks of an image."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from linuxkit.errors import ConfigError, UserError
from linuxkit.oci.signing.keys import load_signing_key, load_verify_key
from linuxkit.oci.signing.policy import load_policy
from linuxkit.oci.signing.simplesigning import (
    SignatureLayer,
    payload,
    signature_image,
    signature_layers,
    signature_tag,
    signed_digest,
)

DIGEST = "sha256:" + "ab" * 32


def write_pair(where: Path, name: str, password: bytes | None = None) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    (where / f"{name}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    )
    (where / f"{name}.pub").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return where / f"{name}.key", where / f"{name}.pub"


def test_payload_is_cosigns_compact_json() -> None:
    raw = payload("localhost:5000/org/img", DIGEST)
    assert raw == (
        b'{"critical":{"identity":{"docker-reference":"localhost:5000/org/img"},'
        b'"image":{"docker-manifest-digest":"' + DIGEST.encode() + b'"},'
        b'"type":"cosign container image signature"},"optional":null}'
    )
    assert signed_digest(raw) == DIGEST
    assert signature_tag(DIGEST) == "sha256-" + "ab" * 32 + ".sig"


@pytest.mark.parametrize(
    "doc",
    [
        {"critical": {"type": "atomic container signature", "image": {"docker-manifest-digest": DIGEST}}},
        {"critical": {"type": "cosign container image signature", "image": {"docker-manifest-digest": "sha256:x"}}},
        {"critical": {"type": "cosign container image signature"}},
        [],
    ],
)
def test_other_payloads_are_refused(doc: object) -> None:
    with pytest.raises(ValueError):
        signed_digest(json.dumps(doc).encode())


def test_signature_image_lists_each_payload_with_its_signature() -> None:
    body = payload("r/x", DIGEST)
    layers = [SignatureLayer("sha256:" + hashlib.sha256(body).hexdigest(), len(body), "c2ln")]
    config, manifest = signature_image(layers)
    doc = json.loads(manifest)
    assert doc["config"]["digest"] == "sha256:" + hashlib.sha256(config).hexdigest()
    assert json.loads(config)["rootfs"]["diff_ids"] == [layers[0].digest]
    assert signature_layers(manifest) == layers
    # a layer of another media type, or without a signature, is not a signature
    doc["layers"].append({"mediaType": "application/octet-stream", "digest": DIGEST, "size": 1})
    doc["layers"].append({"mediaType": layers[0].descriptor()["mediaType"], "digest": DIGEST, "size": 1})
    assert signature_layers(json.dumps(doc).encode()) == layers


def test_sign_then_verify_with_the_pair_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private, public = write_pair(tmp_path, "a")
    _, other = write_pair(tmp_path, "b")
    body = payload("r/x", DIGEST)
    signature = load_signing_key(str(private)).sign(body)
    assert load_verify_key(public).verifies(body, signature)
    assert not load_verify_key(other).verifies(body, signature)
    assert not load_verify_key(public).verifies(body + b" ", signature)
    assert not load_verify_key(public).verifies(body, "not base64!")
    # an encrypted PEM key: read with the password of LINUXKIT_SIGN_PASSWORD, refused without it
    encrypted, _ = write_pair(tmp_path, "c", b"secret")
    monkeypatch.delenv("LINUXKIT_SIGN_PASSWORD", raising=False)
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)
    with pytest.raises(UserError, match="LINUXKIT_SIGN_PASSWORD"):
        load_signing_key(str(encrypted))
    monkeypatch.setenv("LINUXKIT_SIGN_PASSWORD", "secret")
    load_signing_key(str(encrypted))


def test_keys_other_than_p256_are_refused(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "rsa.key"
    path.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(UserError, match="not an ECDSA P-256 key"):
        load_signing_key(str(path))
    (tmp_path / "cosign.key").write_text("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nx\n")
    with pytest.raises(UserError, match="cosign's own encrypted key format"):
        load_signing_key(str(tmp_path / "cosign.key"))
    with pytest.raises(UserError, match="not a readable PEM public key"):
        load_verify_key(path)


def test_policy_longest_prefix_wins_and_the_key_covers_the_rest(tmp_path: Path) -> None:
    write_pair(tmp_path, "org")
    _, every = write_pair(tmp_path, "every")
    (tmp_path / "p.yml").write_text(
        "registries:\n  localhost:5000: org.pub\n  localhost:5000/org/free: none\n  alpine: org.pub\n"
    )
    policy = load_policy(str(every), str(tmp_path / "p.yml"))
    assert policy is not None
    key = policy.key_for("localhost:5000/org/img:1")
    assert key is not None and key.path == str(tmp_path / "org.pub")
    assert policy.key_for("localhost:5000/org/free:1") is None
    assert policy.key_for("localhost:5000/org/freedom:1") is not None  # whole components only
    assert policy.key_for("docker.io/library/alpine:3") is not None
    other = policy.key_for("docker.io/linuxkit/init:v1")
    assert other is not None and other.path == str(every)
    only_policy = load_policy("", str(tmp_path / "p.yml"))
    assert only_policy is not None and only_policy.key_for("docker.io/linuxkit/init:v1") is None
    assert load_policy("", "") is None


def test_policy_problems_are_located(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text("registries:\n  ok/x: none\n  bad:tag/x: k.pub\n  org/y: missing.pub\n")
    with pytest.raises(ConfigError) as info:
        load_policy("", str(tmp_path / "p.yml"))
    found = [(d.location.line if d.location else 0, d.message) for d in info.value.diagnostics]
    assert [line for line, _ in found] == [3, 4]
    assert "is not a registry or repository name" in found[0][1] and "missing.pub" in found[1][1]
    (tmp_path / "q.yml").write_text("keys: {}\n")
    with pytest.raises(ConfigError, match="one key, registries:"):
        load_policy("", str(tmp_path / "q.yml"))


def test_a_deeply_nested_payload_from_a_registry_is_a_plain_refusal() -> None:
    # within the size limit, nested deeper than Python's parser recurses: a ValueError, never a RecursionError
    with pytest.raises(ValueError, match="nested more than"):
        signed_digest(b"[" * 8000 + b"]" * 8000)
