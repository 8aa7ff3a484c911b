"""Hostile caches and images: tampered blobs, absurd JSON, malformed digests, absurd sizes.

Each one must end in a :class:`~linuxkit.errors.LinuxKitError` naming what is wrong (never an
internal error), and nothing tampered may be used.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import tarfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest
from oci_testutil import AMD64, make_tar
from registry_fakes import FakeTransport, Reply, Sent
from rootfs_fakes import directory, file, hardlink, layer

from linuxkit.errors import BuildError, LinuxKitError, UserError
from linuxkit.oci import jsonfmt
from linuxkit.oci import mediatypes as mt
from linuxkit.oci.archive import import_archive
from linuxkit.oci.cache import Cache, CachedImage
from linuxkit.oci.descriptor import Descriptor
from linuxkit.oci.digest import DigestError, is_valid, of_bytes
from linuxkit.oci.layers import READ_AHEAD, READ_CHUNK
from linuxkit.oci.layout import Layout, LayoutError
from linuxkit.oci.registry import pull
from linuxkit.oci.registry.options import RegistryOptions
from linuxkit.rootfs.flatten import write_flattened

#: More than the layer reader decompresses ahead of its consumer, and more than the 1 MiB the
#: close used to drain: a tar reader stops at the end-of-archive and never sees these bytes.
TAIL = random.Random(7).randbytes((READ_AHEAD + 4) * READ_CHUNK)
NESTED = b"[" * 100_000 + b"]" * 100_000


def _image(cache: Cache, name: str, layers: list[bytes]) -> Descriptor:
    """An image whose layer blobs are exactly ``layers`` (plain tars: no compression to hide behind)."""
    writer = cache.writer()
    descs = [writer.add_blob(raw, mt.OCI_LAYER) for raw in layers]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [d.digest for d in descs]},
    }
    manifest = writer.add_manifest(writer.add_config(config), descs)
    writer.tag(name, manifest)
    return manifest


def _resolve(cache: Cache, name: str) -> CachedImage:
    image = cache.resolve(name, AMD64)
    assert image is not None
    return image


def _same_size_swap(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert len(old) == len(new) and data.count(old) == 1
    path.write_bytes(data.replace(old, new))


# -- tampered layers: every read of a layer is verified in full -------------------------------------


def test_a_tampered_layer_with_a_long_tail_fails_the_flatten(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    _image(cache, "t:1", [layer(directory("etc/"), file("etc/motd", "hello")) + TAIL])
    image = _resolve(cache, "t:1")
    path = cache.layout.blob_path(image.layers[0].digest)
    _same_size_swap(path, b"hello", b"HACKD")
    with pytest.raises(DigestError) as err:
        write_flattened(image, io.BytesIO())
    assert (
        f"image docker.io/library/t:1 in the cache is damaged: layer 0 ({image.layers[0].digest})" in err.value.message
    )
    assert "content has digest" in err.value.message
    assert "linuxkit cache verify --repair docker.io/library/t:1" in (err.value.hint or "")
    # also when only the bytes after the tar's end were changed (nothing the build uses differs)
    path.write_bytes(layer(directory("etc/"), file("etc/motd", "hello")) + TAIL[:-1] + b"\0")
    with pytest.raises(DigestError, match="content has digest"):
        write_flattened(image, io.BytesIO())


def test_a_hard_link_copy_rereads_its_layer_and_verifies_that_read_too(tmp_path: Path) -> None:
    """A hard link whose target is in a lower layer is copied from that layer (read again, stopping
    at the target): that read is verified in full too, not only the first."""
    cache = Cache(tmp_path)
    lower = layer(directory("bin/"), file("bin/busybox", "BUSYBOX")) + TAIL
    upper = layer(directory("bin/"), hardlink("bin/sh", "bin/busybox"))
    _image(cache, "links:1", [lower, upper])
    image = _resolve(cache, "links:1")
    path = cache.layout.blob_path(image.layers[0].digest)
    opened: list[int] = []
    real_open = image.open_layer

    def open_layer(index: int) -> IO[bytes]:
        opened.append(index)
        # tampered for the hard link's read of layer 0 (the first), sound again for the second
        path.write_bytes(lower.replace(b"BUSYBOX", b"HACKED!") if opened.count(0) == 1 else lower)
        return real_open(index)

    object.__setattr__(image, "open_layer", open_layer)
    with pytest.raises(DigestError, match=r"layer 0 .*content has digest"):
        write_flattened(image, io.BytesIO())
    assert opened == [1, 1, 0]  # its own layer, then layer 0: failed there, before the main read of it
    path.write_bytes(lower)
    out = io.BytesIO()
    object.__setattr__(image, "open_layer", real_open)
    write_flattened(image, out)  # sound: no error, the copy holds the file
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        sh = tar.extractfile("bin/sh")
        assert sh is not None and sh.read() == b"BUSYBOX"


def test_a_blob_of_the_wrong_size_fails_when_opened(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    _image(cache, "t:2", [layer(file("a", "1")) + TAIL])
    image = _resolve(cache, "t:2")
    path = cache.layout.blob_path(image.layers[0].digest)
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(DigestError, match=rf"layer 0 .*: {image.layers[0].size + 1} bytes, expected"):
        image.open_layer(0)


def test_tampered_manifest_and_config_are_refused(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    desc = _image(cache, "t:3", [layer(file("a", "1"))])
    image = _resolve(cache, "t:3")
    _same_size_swap(cache.layout.blob_path(image.config_descriptor.digest), b"amd64", b"arm64")
    with pytest.raises(BuildError, match=r"t:3 in the cache is damaged: config .*content has digest"):
        cache.resolve("t:3", AMD64)
    _same_size_swap(cache.layout.blob_path(image.config_descriptor.digest), b"arm64", b"amd64")
    _same_size_swap(cache.layout.blob_path(desc.digest), b'"schemaVersion":2', b'"schemaVersion":3')
    with pytest.raises(BuildError, match=r"t:3 in the cache is damaged: manifest .*content has digest"):
        cache.resolve("t:3", AMD64)


# -- absurd JSON -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (NESTED, "nested more than"),
        (b'{"a":' * 101 + b"1" + b"}" * 101, "nested more than"),
        (b"[" * 100_000, "nested more than"),  # not even closed
        (b" " * (jsonfmt.MAX_SIZE + 1), "larger than"),
        (b'{"a": 1', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_untrusted_json_gives_a_clean_error(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=f"^thing: {message}"):
        jsonfmt.loads(data, "thing")


def test_json_nested_a_little_is_fine() -> None:
    assert jsonfmt.loads(b"[" * 100 + b"]" * 100, "x") is not None
    assert jsonfmt.loads(b'{"a":{"b":[{"c":1}]}}', "x") == {"a": {"b": [{"c": 1}]}}


def _broken_index_cache(tmp_path: Path, content: bytes) -> Cache:
    cache = Cache(tmp_path / "cache")
    cache.layout.ensure()
    cache.layout.index_path.write_bytes(content)
    return cache


@pytest.mark.parametrize("content", [NESTED, b'{"manifests": [', b'{"manifests": 5}'])
def test_a_broken_index_json_is_reported_by_every_verb(tmp_path: Path, content: bytes) -> None:
    cache = _broken_index_cache(tmp_path, content)
    index = str(cache.layout.index_path)
    calls: list[Callable[[], object]] = [
        cache.entries,
        lambda: cache.resolve("t:1", AMD64),
        lambda: cache.tag("t:1", Descriptor(mt.OCI_MANIFEST, of_bytes(b"x"), 1)),
        lambda: cache.untag("t:1"),
        lambda: cache.remove("t:1"),
        lambda: import_archive(cache, io.BytesIO(_archive(b'{"manifests": []}'))),
    ]
    for call in calls:
        with pytest.raises(BuildError) as err:
            call()
        assert f"the image cache {cache.root} is damaged: {index}" in err.value.message
        assert index in (err.value.hint or "") and "linuxkit cache clean" in (err.value.hint or "")
    assert cache.layout.index_path.read_bytes() == content  # left as it was


def test_a_huge_index_json_is_not_read_into_memory(tmp_path: Path) -> None:
    cache = _broken_index_cache(tmp_path, b"")
    with open(cache.layout.index_path, "wb") as f:
        f.truncate(8 << 30)  # sparse: 8 GiB of zeros
    tracemalloc.start()
    try:
        with pytest.raises(BuildError, match=r"index\.json: larger than"):
            cache.entries()
        assert tracemalloc.get_traced_memory()[1] < 2 * jsonfmt.MAX_SIZE
    finally:
        tracemalloc.stop()


def test_deeply_nested_manifest_in_the_cache_is_damage(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    writer = cache.writer()
    manifest = writer.add_blob(b'{"config":' + NESTED + b"}", mt.OCI_MANIFEST)
    cache.layout.update_index(lambda entries: [manifest.named("docker.io/library/deep:1")])
    with pytest.raises(BuildError, match=r"image docker.io/library/deep:1 in the cache is damaged: .*nested more than"):
        cache.resolve("deep:1", AMD64)
    with pytest.raises(BuildError, match=r"cannot name .*nested more than"):
        cache.tag("deep:2", manifest)


# -- malformed digests -----------------------------------------------------------------------------

HEX = "a" * 64


@pytest.mark.parametrize(
    "digest",
    [
        f"sha256:{HEX}\n",
        "sha256:../../../../etc/passwd",
        f"sha256:{HEX[:-1]}",
        f"sha256:{HEX}0",
        f"sha256:{HEX.upper()}",
        f"sha512:{HEX}{HEX}",
        f"sha256:/{HEX[1:]}",
        HEX,
    ],
)
def test_malformed_digests_never_become_paths(tmp_path: Path, digest: str) -> None:
    assert not is_valid(digest)
    layout = Layout(tmp_path)
    with pytest.raises(DigestError, match="malformed digest"):
        layout.blob_path(digest)
    with pytest.raises(ValueError, match="unsupported digest"):
        Descriptor.from_json({"mediaType": mt.OCI_MANIFEST, "digest": digest, "size": 1})
    # in a cache's index.json ...
    cache = _broken_index_cache(tmp_path, b"")
    entry = {"mediaType": mt.OCI_MANIFEST, "digest": digest, "size": 1, "annotations": {mt.ANNOTATION_REF_NAME: "x"}}
    cache.layout.index_path.write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    with pytest.raises(BuildError, match=r"index.json: manifests\[0\]: missing or unsupported digest"):
        cache.resolve("x", AMD64)
    # ... in a manifest of the cache ...
    cache = Cache(tmp_path / "c2")
    good = _image(cache, "m:1", [make_tar({"a": b"1"})])
    raw = cache.layout.read_blob(good.digest)
    manifest = json.loads(raw)
    manifest["layers"][0]["digest"] = digest
    bad = cache.writer().add_blob(json.dumps(manifest).encode(), mt.OCI_MANIFEST)
    cache.layout.update_index(lambda entries: [bad.named("docker.io/library/m:2")])
    with pytest.raises(BuildError, match=r"m:2 in the cache is damaged: .*layers\[0\]: missing or unsupported digest"):
        cache.resolve("m:2", AMD64)
    # ... and in an archive's index.json
    with pytest.raises(UserError, match=r"index.json manifests\[0\]: missing or unsupported digest"):
        import_archive(Cache(tmp_path / "c3"), io.BytesIO(_archive(json.dumps({"manifests": [entry]}).encode())))
    assert not list(tmp_path.rglob("passwd"))


def _archive(index: bytes, blobs: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in {
            "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
            **(blobs or {}),
            "index.json": index,
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_importing_a_deeply_nested_index_json_is_a_user_error(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    with pytest.raises(UserError, match=r"^archive: index.json: nested more than"):
        import_archive(cache, io.BytesIO(_archive(NESTED)))
    with pytest.raises(UserError, match="invalid blob file name"):
        import_archive(cache, io.BytesIO(_archive(b"{}", {f"blobs/sha256/{HEX}\n": b"x"})))


# -- a hostile registry ----------------------------------------------------------------------------


def _registry(manifest: bytes, blobs: dict[str, bytes], **extra: Reply) -> FakeTransport:
    def handler(req: Sent) -> Reply:
        path = req.url.split("registry.example", 1)[1]
        if path in extra:
            return extra[path]
        if path == "/v2/":
            return 200, {}, b""
        if "/manifests/" in path:
            return 200, {"Content-Type": mt.OCI_MANIFEST}, manifest
        dig = path.rsplit("/", 1)[1]
        return (200, {}, blobs[dig]) if dig in blobs else (404, {}, b"")

    return FakeTransport(handler)


def _pull(cache: Cache, transport: FakeTransport) -> Descriptor:
    options = RegistryOptions(transport=transport, use_docker_config=False, sleep=lambda _s: None, retries=1)
    return pull(cache, "registry.example/x:1", [AMD64], options=options)


def _manifest(layer_size: int | str, config: bytes = b"{}") -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": of_bytes(config), "size": len(config)},
            "layers": [{"mediaType": mt.OCI_LAYER, "digest": of_bytes(b"layer"), "size": layer_size}],
        }
    ).encode()


@pytest.mark.parametrize("size", [1 << 62, 10**30])
def test_an_absurd_descriptor_size_allocates_nothing(tmp_path: Path, size: int) -> None:
    cache = Cache(tmp_path)
    transport = _registry(_manifest(size), {of_bytes(b"{}"): b"{}", of_bytes(b"layer"): b"layer"})
    tracemalloc.start()
    try:
        with pytest.raises(LinuxKitError, match="5 bytes, expected"):
            _pull(cache, transport)
        assert tracemalloc.get_traced_memory()[1] < 64 << 20
    finally:
        tracemalloc.stop()
    assert cache.images() == {}


@pytest.mark.parametrize("size", [-1, "5", None, 1.5, True])
def test_a_negative_or_non_integer_size_is_a_bad_manifest(tmp_path: Path, size: object) -> None:
    cache = Cache(tmp_path)
    transport = _registry(_manifest(size), {})  # type: ignore[arg-type]
    with pytest.raises(LinuxKitError, match=r"bad manifest: .*layers\[0\]: missing or negative size"):
        _pull(cache, transport)


def test_a_deeply_nested_manifest_from_a_registry(tmp_path: Path) -> None:
    with pytest.raises(LinuxKitError, match="nested more than"):
        _pull(Cache(tmp_path), _registry(b'{"layers":' + NESTED + b"}", {}))


def test_a_zip_bomb_error_body_is_read_bounded(tmp_path: Path) -> None:
    bomb = gzip.compress(b"{" + b" " * (256 << 20) + b"}", compresslevel=9)
    transport = _registry(b"", {}, **{"/v2/x/manifests/1": (404, {"Content-Encoding": "gzip"}, bomb)})
    tracemalloc.start()
    try:
        with pytest.raises(LinuxKitError, match="HTTP 404"):
            _pull(Cache(tmp_path), transport)
        assert tracemalloc.get_traced_memory()[1] < 64 << 20
    finally:
        tracemalloc.stop()


def test_layout_error_is_a_value_error() -> None:
    # the callers that turn damage into errors naming the image catch ValueError
    assert issubclass(LayoutError, ValueError) and issubclass(jsonfmt.LimitError, ValueError)


@pytest.mark.parametrize(
    "label",
    [
        NESTED.decode(),  # JSON nested too deeply
        "{a: " + "[" * 100_000 + "]" * 100_000 + "}",  # YAML (not JSON) nested too deeply
    ],
)
def test_a_deeply_nested_image_label_is_an_invalid_label(label: str) -> None:
    from linuxkit.containerspec.label import parse_label

    with pytest.raises(BuildError, match=r"image img: invalid org\.mobyproject\.config label: (nested|not valid)"):
        parse_label(label, "img")


@pytest.mark.parametrize(
    "bad_layer",
    [
        {"size": "abc"},
        {"digest": "sha256:../../../etc/passwd"},
        {"annotations": "not an object"},
        {"size": 3},  # the statement blob is longer: a size mismatch
    ],
)
def test_a_hostile_attestation_is_damage_not_a_crash(tmp_path: Path, bad_layer: dict[str, object]) -> None:
    from linuxkit.sbom import attestation_sboms

    cache = Cache(tmp_path)
    writer = cache.writer()
    image = writer.add_image({"architecture": "amd64", "os": "linux"}, [io.BytesIO(make_tar({"a": b"1"}))])
    statement = writer.add_blob(b'{"predicateType": "https://spdx.dev/Document", "predicate": {}}', "x")
    entry = {
        "mediaType": "application/vnd.in-toto+json",
        "digest": statement.digest,
        "size": statement.size,
        "annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"},
    }
    config = writer.add_config({"architecture": "unknown", "os": "unknown"})
    sound = writer.add_blob(
        json.dumps({"schemaVersion": 2, "config": config.to_json(), "layers": [entry]}).encode(), mt.OCI_MANIFEST
    )
    hostile = {**entry, **bad_layer}
    bad = writer.add_blob(
        json.dumps({"schemaVersion": 2, "config": config.to_json(), "layers": [hostile]}).encode(), mt.OCI_MANIFEST
    )
    refs = {
        mt.ANNOTATION_DOCKER_REFERENCE_TYPE: "attestation-manifest",
        mt.ANNOTATION_DOCKER_REFERENCE_DIGEST: image.digest,
    }
    unknown = {"os": "unknown", "architecture": "unknown"}
    for name, attestation in (("sound:1", sound), ("bad:1", bad)):
        index = writer.add_index(
            [
                image.with_platform(AMD64),
                Descriptor(mt.OCI_MANIFEST, attestation.digest, attestation.size, refs, unknown),
            ]
        )
        writer.tag(name, index)
    assert attestation_sboms(cache, "docker.io/library/sound:1", AMD64) == [b"{}"]
    with pytest.raises(BuildError, match=r"image docker.io/library/bad:1 in the cache is damaged: "):
        attestation_sboms(cache, "docker.io/library/bad:1", AMD64)
