"""Hostile caches and archives through the real CLI: a tampered layer fails the build, broken
JSON and malformed digests are plain errors naming the file (never "internal error")."""

from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
from pathlib import Path

import pytest
from rootfs_fakes import directory, file, layer
from tests.conftest import RunLinuxkit

NAME = "docker.io/library/t:1"
#: Far more than the layer reader reads ahead of the tar reader (and than the 1 MiB once drained).
TAIL = random.Random(11).randbytes(24 << 20)
GOOD = layer(directory("etc/"), file("etc/motd", "hello")) + TAIL
BAD = layer(directory("etc/"), file("etc/motd", "HACKD")) + TAIL


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _archive(index: bytes | None = None, *, layers: tuple[bytes, ...] = (GOOD,)) -> bytes:
    """An OCI layout tar of one image named ``NAME`` whose layer blobs are ``layers`` (plain tars)."""
    blobs: dict[str, bytes] = {}

    def add(data: bytes) -> dict[str, object]:
        blobs[f"blobs/sha256/{_sha(data)[7:]}"] = data
        return {"digest": _sha(data), "size": len(data)}

    descs = [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **add(raw)} for raw in layers]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [_sha(r) for r in layers]},
    }
    cfg = add(json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
        "layers": descs,
    }
    root = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **add(json.dumps(manifest).encode())}
    root["annotations"] = {"io.containerd.image.name": NAME}
    if index is None:
        index = json.dumps({"schemaVersion": 2, "manifests": [root]}).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', **blobs, "index.json": index}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _no_internal_error(err: str) -> None:
    assert "internal error" not in err and "Traceback" not in err, err


def test_build_refuses_a_tampered_layer_of_the_same_size(linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    (tmp_path / "img.tar").write_bytes(_archive())
    (tmp_path / "t.yml").write_text("init:\n  - t:1\n")
    linuxkit("cache", "import", "img.tar")
    linuxkit("build", "--format", "tar", "--no-sbom", "--o", "good.tar", "t.yml")
    with tarfile.open(tmp_path / "good.tar") as tar:
        motd = tar.extractfile("etc/motd")
        assert motd is not None and motd.read() == b"hello"
    blob = tmp_path / "cache" / "blobs" / "sha256" / _sha(GOOD)[7:]
    blob.write_bytes(BAD)  # same size, other content, the change far before the blob's end
    proc = linuxkit("build", "--format", "tar", "--no-sbom", "--o", "bad.tar", "t.yml", check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    _no_internal_error(err)
    assert f"error: image {NAME} in the cache is damaged: layer 0 ({_sha(GOOD)}): content has digest" in err
    assert f"hint: run `linuxkit cache verify --repair {NAME}`" in err
    assert not (tmp_path / "bad.tar").exists()
    # what the hint says finds it too (the repair itself needs a registry)
    proc = linuxkit("cache", "verify", check=False)
    assert proc.returncode == 1 and "corrupt layer 0" in proc.stderr.decode()


NESTED = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("content", [NESTED, b'{"schemaVersion":2,"manifests":['])
def test_a_broken_index_json_is_a_plain_error_for_every_verb(
    linuxkit: RunLinuxkit, tmp_path: Path, content: bytes
) -> None:
    (tmp_path / "img.tar").write_bytes(_archive())
    (tmp_path / "t.yml").write_text("init:\n  - t:1\n")
    linuxkit("cache", "import", "img.tar")
    index = tmp_path / "cache" / "index.json"
    index.write_bytes(content)
    for args in (
        ["cache", "ls"],
        ["cache", "import", "img.tar"],
        ["cache", "rm", "t:1"],
        ["cache", "verify"],
        ["build", "--format", "tar", "--o", "out.tar", "t.yml"],
    ):
        proc = linuxkit(*args, check=False)
        err = proc.stderr.decode()
        _no_internal_error(err)
        assert proc.returncode == 1, (args, err)
        assert f"the image cache {tmp_path / 'cache'} is damaged: {index}" in err, (args, err)
        assert f"hint: repair or remove {index}" in err and "linuxkit cache clean" in err, (args, err)
    assert index.read_bytes() == content
    linuxkit("cache", "clean")  # what the hint offers works on it
    linuxkit("cache", "import", "img.tar")


@pytest.mark.parametrize(
    ("index", "message"),
    [
        (NESTED, "img.tar: index.json: nested more than 100 levels deep"),
        (
            json.dumps({"manifests": [{"mediaType": "x", "digest": "sha256:../../../etc/passwd", "size": 1}]}).encode(),
            r"img.tar: index.json manifests[0]: missing or unsupported digest 'sha256:../../../etc/passwd'",
        ),
        (
            json.dumps({"manifests": [{"mediaType": "x", "digest": f"sha256:{'a' * 64}\n", "size": 1}]}).encode(),
            "img.tar: index.json manifests[0]: missing or unsupported digest",
        ),
    ],
)
def test_importing_a_hostile_archive_is_a_user_error(
    linuxkit: RunLinuxkit, tmp_path: Path, index: bytes, message: str
) -> None:
    (tmp_path / "img.tar").write_bytes(_archive(index, layers=(b"x",)))
    proc = linuxkit("cache", "import", "img.tar", check=False)
    err = proc.stderr.decode()
    _no_internal_error(err)
    assert proc.returncode == 2, err
    assert message in err, err
