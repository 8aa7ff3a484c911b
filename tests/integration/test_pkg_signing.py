"""Signed packages against a real ``docker-registry``: ``pkg build --push --sign-key`` and ``cache push
--sign-key`` write cosign's keyed signature format (checked here independently: skopeo reads the
signature image, ``cryptography`` checks the signature over the payload), and ``build``/``cache pull``
with ``--verify-key`` or ``--verify-policy`` refuse unsigned, tampered and other-digest signatures."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests import plainhttp
from tests.conftest import RunLinuxkit
from tests.imagefactory import ImageSpec, directory, file, write_layout_tar
from tests.integration.test_pkg_build import lock_text, make_repo  # noqa: F401 - fixture
from tests.integration.test_pkg_push import debs, host, tags  # noqa: F401 - fixture
from tests.integration.test_registry_client import SKOPEO

pytestmark = [pytest.mark.integration]

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
ANNOTATION = "dev.cosignproject.cosign/signature"


def key_pair(where: Path, name: str) -> tuple[Path, Path]:
    """A fresh P-256 key pair as PEM files (PKCS#8 private key, SubjectPublicKeyInfo public key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = where / f"{name}.key"
    public = where / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


def raw_manifest(ref: str) -> bytes:
    """The manifest bytes the registry holds for ``ref``, read by skopeo (or plain HTTP without it)."""
    if SKOPEO is not None:
        cmd = [SKOPEO, "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"]
        return subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout
    registry, _, rest = ref.partition("/")
    repository, _, tag = rest.rpartition(":")
    accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
    status, _, body = plainhttp.request(
        "GET", f"http://{registry}/v2/{repository}/manifests/{tag}", headers={"Accept": accept}, timeout=10
    )
    assert status == 200, body
    return body


def blob(where: str, repository: str, digest: str) -> bytes:
    status, _, body = plainhttp.request("GET", f"http://{where}/v2/{repository}/blobs/{digest}", timeout=10)
    assert status == 200, body
    assert "sha256:" + hashlib.sha256(body).hexdigest() == digest
    return body


def put_manifest(where: str, repository: str, tag: str, raw: bytes) -> None:
    conn = http.client.HTTPConnection(where, timeout=10)
    try:
        conn.request(
            "PUT",
            f"/v2/{repository}/manifests/{tag}",
            body=raw,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        resp = conn.getresponse()
        assert resp.status == 201, resp.read()
    finally:
        conn.close()


def check_signature(where: str, repository: str, digest: str, public: Path) -> dict[str, object]:
    """Read the signature of ``digest`` as the format says (not with our verifier) and check it."""
    sig_ref = f"{where}/{repository}:{digest.replace(':', '-')}.sig"
    manifest = json.loads(raw_manifest(sig_ref))
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    blob(where, repository, manifest["config"]["digest"])
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == SIMPLESIGNING
    payload = blob(where, repository, layer["digest"])
    assert layer["size"] == len(payload)
    doc = json.loads(payload)
    assert doc == {
        "critical": {
            "identity": {"docker-reference": f"{where}/{repository}"},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    key = serialization.load_pem_public_key(public.read_bytes())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(base64.b64decode(layer["annotations"][ANNOTATION]), payload, ec.ECDSA(hashes.SHA256()))
    return doc


def digest_of(ref: str) -> str:
    return "sha256:" + hashlib.sha256(raw_manifest(ref)).hexdigest()


def test_signed_package_push_verifies(
    linuxkit: RunLinuxkit,
    tmp_path: Path,
    host: str,  # noqa: F811
    lock_text: str,  # noqa: F811
) -> None:
    private, public = key_pair(tmp_path, "cosign")
    _, other_public = key_pair(tmp_path, "other")
    repo = make_repo(tmp_path / "src", lock=lock_text)
    org = f"{host}/test"
    proc = linuxkit("--cache", "built", "pkg", "build", "--org", org, "--push", "--sign-key", private, repo, env=debs())
    name = linuxkit("pkg", "show-tag", "--org", org, "--canonical", repo).stdout.decode().strip()
    tag = name.rsplit(":", 1)[1]
    index = digest_of(name)
    image = digest_of(f"{name}-amd64")
    assert f"signed {host}/test/tiny@{index}".encode() in proc.stderr
    assert tags(host, "test/tiny") == sorted(
        [tag, f"{tag}-amd64", f"{index.replace(':', '-')}.sig", f"{image.replace(':', '-')}.sig"]
    )
    check_signature(host, "test/tiny", index, public)  # the index and the platform's image, each signed
    check_signature(host, "test/tiny", image, public)
    with pytest.raises(InvalidSignature):
        check_signature(host, "test/tiny", index, other_public)

    # pushed again: signed already with this key, nothing added (one layer still, checked above)
    again = linuxkit("--cache", "built", "pkg", "push", "--org", org, "--sign-key", private, repo, env=debs())
    assert b"is signed with" in again.stderr
    check_signature(host, "test/tiny", index, public)

    # cache pull --verify-key and build --verify-key accept it, from an empty cache and from the cache
    linuxkit("--cache", "pulled", "cache", "pull", "--verify-key", public, name)
    (tmp_path / "s.yml").write_text(f"onboot:\n  - name: tiny\n    image: {name}\n")
    for cache in ("fresh", "fresh"):
        out = linuxkit("--cache", cache, "build", "--verify-key", public, "--format", "tar", "--o", "s.tar", "s.yml")
        assert f"{name}: signature of {index} verified".encode() in out.stderr
    with tarfile.open(tmp_path / "s.tar") as tar:
        assert "containers/onboot/000-tiny/lower/bin/busybox" in tar.getnames()

    # another key: refused, at the image's line, exit 2, nothing written; so is cache pull (nothing pulled)
    bad = linuxkit("--cache", "fresh", "build", "--verify-key", other_public, "--dir", "out", "s.yml", check=False)
    err = bad.stderr.decode()
    assert bad.returncode == 2, err
    assert f"s.yml:3:12: onboot[0].image: image {name} ({index}) failed signature verification" in err
    assert f"does not verify with the key {other_public}" in err
    assert not (tmp_path / "out").exists()
    assert "not kept under its name" not in err  # it was in the cache before this build: left as it was
    bad = linuxkit("--cache", "new", "build", "--verify-key", other_public, "--dir", "out", "s.yml", check=False)
    assert bad.returncode == 2 and b"(the image pulled for this build was not kept under its name)" in bad.stderr
    assert name.encode() not in linuxkit("--cache", "new", "cache", "ls").stderr
    pull = linuxkit("--cache", "other", "cache", "pull", "--verify-key", other_public, name, check=False)
    assert pull.returncode == 2 and b"failed signature verification" in pull.stderr
    assert name.encode() not in linuxkit("--cache", "other", "cache", "ls").stderr


def _image(name: str, text: str) -> ImageSpec:
    return ImageSpec(name, [[directory("bin"), file("bin/hello", f"#!/bin/sh\necho {text}\n", 0o755)]])


def test_unsigned_tampered_and_other_digest_signatures_are_refused(
    linuxkit: RunLinuxkit,
    tmp_path: Path,
    host: str,  # noqa: F811
) -> None:
    private, public = key_pair(tmp_path, "cosign")
    names = {what: f"{host}/demo/{what}:1" for what in ("signed", "unsigned", "tampered", "swapped", "free")}
    write_layout_tar(tmp_path / "img.tar", [_image(name, what) for what, name in names.items()])
    linuxkit("cache", "import", "img.tar")
    for what, name in names.items():
        signing = [] if what in ("unsigned", "free") else ["--sign-key", str(private)]
        linuxkit("cache", "push", *signing, name)
    digests = {what: digest_of(name) for what, name in names.items()}

    # tampered: one byte of the signature flipped; swapped: the signature of "signed" under "swapped"'s tag
    tampered_tag = f"{digests['tampered'].replace(':', '-')}.sig"
    manifest = json.loads(raw_manifest(f"{host}/demo/tampered:{tampered_tag}"))
    signature = bytearray(base64.b64decode(manifest["layers"][0]["annotations"][ANNOTATION]))
    signature[-1] ^= 1
    manifest["layers"][0]["annotations"][ANNOTATION] = base64.b64encode(bytes(signature)).decode()
    put_manifest(host, "demo/tampered", tampered_tag, json.dumps(manifest).encode())
    signed_sig = raw_manifest(f"{host}/demo/signed:{digests['signed'].replace(':', '-')}.sig")
    for digest in (json.loads(signed_sig)["config"]["digest"], json.loads(signed_sig)["layers"][0]["digest"]):
        status, _, _ = plainhttp.request(
            "POST", f"http://{host}/v2/demo/swapped/blobs/uploads/?mount={digest}&from=demo/signed", timeout=10
        )
        assert status == 201
    put_manifest(host, "demo/swapped", f"{digests['swapped'].replace(':', '-')}.sig", signed_sig)

    lines = "".join(f"  - name: {what}\n    image: {name}\n" for what, name in names.items() if what != "free")
    (tmp_path / "s.yml").write_text("onboot:\n" + lines)
    proc = linuxkit("--cache", "fresh", "build", "--verify-key", public, "--dir", "out", "s.yml", check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "s.yml:3:12" not in err  # the signed one verified
    assert f"s.yml:5:12: onboot[1].image: image {names['unsigned']}" in err and "it is not signed" in err
    assert f"s.yml:7:12: onboot[2].image: image {names['tampered']}" in err
    assert f"does not verify with the key {public}" in err
    assert f"s.yml:9:12: onboot[3].image: image {names['swapped']}" in err
    assert f"its signature is for another image ({digests['signed']})" in err
    assert "(the image pulled for this build was not kept under its name)" in err
    assert not (tmp_path / "out").exists()
    listed = linuxkit("--cache", "fresh", "cache", "ls").stderr.decode()  # only the verified one keeps its name
    assert names["signed"] in listed and not any(names[w] in listed for w in ("unsigned", "tampered", "swapped"))
    for what in ("unsigned", "tampered", "swapped"):
        pull = linuxkit("--cache", "pulls", "cache", "pull", "--verify-key", public, names[what], check=False)
        assert pull.returncode == 2, pull.stderr
        assert names[what].encode() not in linuxkit("--cache", "pulls", "cache", "ls").stderr

    # a policy: demo/signed needs the key, demo/free needs none; other images (no --verify-key) need none
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "demo.pub").write_bytes(public.read_bytes())
    (tmp_path / "policy.yml").write_text(f"registries:\n  {host}/demo: keys/demo.pub\n  {host}/demo/free: none\n")
    (tmp_path / "ok.yml").write_text(
        f"onboot:\n  - name: a\n    image: {names['signed']}\n  - name: b\n    image: {names['free']}\n"
    )
    linuxkit("--cache", "fresh", "build", "--verify-policy", "policy.yml", "--format", "tar", "--o", "ok.tar", "ok.yml")
    proc = linuxkit("--cache", "fresh", "build", "--verify-policy", "policy.yml", "--dir", "out", "s.yml", check=False)
    assert proc.returncode == 2 and b"it is not signed" in proc.stderr
    (tmp_path / "bad.yml").write_text("registries:\n  demo: keys/missing.pub\n")
    proc = linuxkit("build", "--verify-policy", "bad.yml", "--dir", "out", "ok.yml", check=False)
    assert proc.returncode == 2 and b"bad.yml:2:" in proc.stderr and b"missing.pub" in proc.stderr
