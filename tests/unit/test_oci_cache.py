"""Writing images into the cache and resolving them back."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
import zstandard
from oci_testutil import AMD64, ARM64, make_tar

from linuxkit.errors import BuildError, UserError
from linuxkit.oci import mediatypes as mt
from linuxkit.oci.cache import Cache
from linuxkit.oci.descriptor import Descriptor
from linuxkit.oci.image import Platform
from linuxkit.oci.verbs import clean, ls_lines, remove_images
from linuxkit.oci.writer import write_image, write_multiarch


def config_for(arch: str) -> dict[str, object]:
    return {"architecture": arch, "os": "linux", "config": {"Env": ["A=1"], "Labels": {"b": "2", "a": "1"}}}


def test_write_read_roundtrip_and_determinism(tmp_path: Path) -> None:
    layer = make_tar({"etc/hello": b"hello\n"})
    digests = []
    for n in range(2):
        cache = Cache(tmp_path / f"c{n}")
        desc = write_image(cache, "example/img:1", config_for("amd64"), [io.BytesIO(layer)], platform=AMD64)
        digests.append(desc.digest)
        image = cache.resolve("example/img:1", AMD64)
        assert image is not None
        assert image.ref == "docker.io/example/img:1"
        assert image.digest == desc.digest
        assert image.layer_count() == 1
        assert image.config["config"]["Env"] == ["A=1"]
        assert image.diff_ids == ["sha256:" + hashlib.sha256(layer).hexdigest()]
        with image.open_layer(0) as f:
            assert f.read() == layer
        image.verify()
        assert image.manifest["mediaType"] == mt.OCI_MANIFEST
    assert digests[0] == digests[1]
    assert (tmp_path / "c0" / "index.json").read_bytes() == (tmp_path / "c1" / "index.json").read_bytes()
    blob = (tmp_path / "c0" / "blobs" / "sha256").iterdir()
    for path in blob:
        assert (tmp_path / "c1" / "blobs" / "sha256" / path.name).read_bytes() == path.read_bytes()


def test_layer_gzip_is_deterministic(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    info = cache.writer().add_layer(io.BytesIO(make_tar({"a": b"x" * 1000})))
    raw = cache.layout.blob_path(info.descriptor.digest).read_bytes()
    assert raw[:2] == b"\x1f\x8b" and raw[4:8] == b"\0\0\0\0"  # mtime 0
    assert raw[3] & 0x08 == 0  # no file name
    assert gzip.decompress(raw) == make_tar({"a": b"x" * 1000})


def test_multiarch_resolution_skips_attestations(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    index = write_multiarch(
        cache,
        "docker.io/library/multi:1",
        {
            AMD64: (config_for("amd64"), [io.BytesIO(make_tar({"arch": b"amd64"}))]),
            ARM64: (config_for("arm64"), [io.BytesIO(make_tar({"arch": b"arm64"}))]),
        },
    )
    # add an attestation manifest (unknown/unknown) to the index, as BuildKit does
    writer = cache.writer()
    children = Cache(tmp_path)._children(index)
    att_cfg = writer.add_blob(b"{}", "application/vnd.oci.image.config.v1+json")
    att = writer.add_manifest(att_cfg, []).with_platform({"architecture": "unknown", "os": "unknown"})
    new_index = writer.add_index([att, *children])
    writer.tag("multi:1", new_index)

    for plat in (AMD64, ARM64):
        image = cache.resolve("multi:1", plat)
        assert image is not None
        assert image.config["architecture"] == plat.architecture
        with image.open_layer(0) as f, tarfile.open(fileobj=f, mode="r|") as tar:
            member = tar.next()
            assert member is not None
            data = tar.extractfile(member)
            assert data is not None and data.read() == plat.architecture.encode()
    assert cache.resolve("multi:1", Platform("linux", "riscv64")) is None
    assert cache.resolve("multi:1", Platform("linux", "arm64", "v8")) is None  # variant asked, none recorded
    assert [str(p) for p in cache.platforms("multi:1")] == ["linux/amd64", "linux/arm64"]
    assert list(cache.images()) == ["docker.io/library/multi:1"]


def _docker_image(cache: Cache, layer_blob: bytes, layer_type: str, arch: str = "amd64") -> Descriptor:
    writer = cache.writer()
    layer = writer.add_blob(layer_blob, layer_type)
    cfg = writer.add_blob(json.dumps(config_for(arch)).encode(), mt.DOCKER_CONFIG)
    return writer.add_manifest(cfg, [layer], media_type=mt.DOCKER_MANIFEST)


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_docker_schema2_and_compressions(tmp_path: Path, compression: str) -> None:
    cache = Cache(tmp_path)
    layer = make_tar({"file": b"data" * 100})
    blob = {
        "gzip": gzip.compress(layer),
        "zstd": zstandard.ZstdCompressor().compress(layer),
        "none": layer,
    }[compression]
    desc = _docker_image(cache, blob, mt.DOCKER_LAYER)
    cache.tag("docker.io/library/d2:1", desc)
    image = cache.resolve("d2:1", AMD64)
    assert image is not None and image.manifest["mediaType"] == mt.DOCKER_MANIFEST
    with image.open_layer(0) as f:
        assert f.read() == layer


def test_single_platform_image_accepted_for_other_arch(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    write_image(cache, "single:1", config_for("amd64"), [io.BytesIO(make_tar({"a": b"1"}))])
    image = cache.resolve("single:1", ARM64)
    assert image is not None and image.config["architecture"] == "amd64"


def test_missing_image_is_none(tmp_path: Path) -> None:
    assert Cache(tmp_path / "nonexistent").resolve("alpine:3.20", AMD64) is None
    assert not (tmp_path / "nonexistent").exists()


def test_corrupted_layer_is_detected(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    layer = make_tar({"a": b"1" * 5000})
    desc = write_image(cache, "bad:1", config_for("amd64"), [io.BytesIO(layer)])
    image = cache.resolve("bad:1", AMD64)
    assert image is not None
    path = cache.layout.blob_path(image.layers[0].digest)
    blob = gzip.compress(make_tar({"a": b"2" * 5000}), mtime=0)
    path.write_bytes(blob[: image.layers[0].size].ljust(image.layers[0].size, b"\0"))
    with pytest.raises(BuildError, match="damaged") as err:
        image.verify()
    assert "linuxkit cache rm docker.io/library/bad:1" in (err.value.hint or "")
    with pytest.raises(BuildError), image.open_layer(0) as f:
        f.read()
    assert desc.digest == image.digest


def test_corrupted_config_and_missing_blob(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    write_image(cache, "bad:2", config_for("amd64"), [io.BytesIO(make_tar({"a": b"1"}))])
    image = cache.resolve("bad:2", AMD64)
    assert image is not None
    cfg = cache.layout.blob_path(image.config_descriptor.digest)
    cfg.write_bytes(cfg.read_bytes().replace(b"amd64", b"arm64"))
    with pytest.raises(BuildError, match=r"image docker.io/library/bad:2 in the cache is damaged") as err:
        cache.resolve("bad:2", AMD64)
    assert "cache rm" in (err.value.hint or "")
    cfg.unlink()
    with pytest.raises(BuildError, match="missing blob"):
        cache.resolve("bad:2", AMD64)


def test_tag_replaces_and_requires_complete_content(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    first = write_image(cache, "img:1", config_for("amd64"), [io.BytesIO(make_tar({"a": b"1"}))])
    second = write_image(cache, "img:1", config_for("amd64"), [io.BytesIO(make_tar({"a": b"2"}))])
    assert first.digest != second.digest
    assert cache.images() == {"docker.io/library/img:1": second.digest}
    cache.layout.remove_blob(cache.layout.read_json_blob(second.digest)["layers"][0]["digest"])
    with pytest.raises(BuildError, match="missing"):
        cache.tag("img:2", second)


def test_rm_keeps_shared_blobs(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    shared = make_tar({"shared": b"s"})
    a = write_image(cache, "a:1", config_for("amd64"), [io.BytesIO(shared), io.BytesIO(make_tar({"a": b"a"}))])
    b = write_image(cache, "b:1", config_for("amd64"), [io.BytesIO(shared)])
    removed = remove_images(cache, ["a:1"])
    assert [r.name for r in removed] == ["docker.io/library/a:1"]
    assert removed[0].message() == "removing image docker.io/library/a:1 from cache"
    assert a.digest in removed[0].blobs
    assert cache.resolve("a:1", AMD64) is None
    image = cache.resolve("b:1", AMD64)
    assert image is not None and image.digest == b.digest
    image.verify()
    with pytest.raises(UserError):
        remove_images(cache, ["nope:1"])


def test_ls_format(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    desc = write_image(cache, "z:1", config_for("amd64"), [])
    write_image(cache, "a:1", config_for("amd64"), [])
    lines = ls_lines(cache)
    assert lines[0] == "image name" + " " * 71 + "root manifest hash"
    assert lines[1].startswith("docker.io/library/a:1 ")
    assert lines[2] == f"{'docker.io/library/z:1':<80} {desc.digest}"


def test_clean(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    write_image(cache, "z:1", config_for("amd64"), [])
    assert clean(tmp_path / "c") == f"Cache emptied: {tmp_path / 'c'}"
    assert not (tmp_path / "c").exists()
    assert Cache(tmp_path / "c").images() == {}
