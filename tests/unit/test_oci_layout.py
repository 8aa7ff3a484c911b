"""The on-disk layout: exact bytes go-containerregistry writes, atomic verified blobs, the lock."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from linuxkit.errors import BuildError
from linuxkit.oci import jsonfmt
from linuxkit.oci.cache import Cache
from linuxkit.oci.cachedir import default_cache_dir
from linuxkit.oci.descriptor import Descriptor, ManifestError, manifest_parts
from linuxkit.oci.digest import DigestError, VerifyingReader, of_bytes
from linuxkit.oci.image import Platform
from linuxkit.oci.layout import EMPTY_INDEX, OCI_LAYOUT_CONTENT, Layout


def test_new_layout_matches_go_containerregistry(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "cache")
    layout.ensure()
    assert (tmp_path / "cache" / "oci-layout").read_bytes() == b'{\n    "imageLayoutVersion": "1.0.0"\n}'
    assert (tmp_path / "cache" / "index.json").read_bytes() == EMPTY_INDEX
    assert layout.read_index() == []
    assert OCI_LAYOUT_CONTENT.endswith(b"}")


def test_index_json_format(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    dig, size = cache.layout.write_blob_bytes(b'{"schemaVersion":2}')
    desc = Descriptor("application/vnd.oci.image.index.v1+json", dig, size)
    cache.layout.update_index(lambda entries: [*entries, desc.named("docker.io/library/alpine:3.20")])
    text = (tmp_path / "index.json").read_text()
    expected = (
        "{\n"
        '   "schemaVersion": 2,\n'
        '   "mediaType": "application/vnd.oci.image.index.v1+json",\n'
        '   "manifests": [\n'
        "      {\n"
        '         "mediaType": "application/vnd.oci.image.index.v1+json",\n'
        f'         "size": {size},\n'
        f'         "digest": "{dig}",\n'
        '         "annotations": {\n'
        '            "io.containerd.image.name": "docker.io/library/alpine:3.20",\n'
        '            "org.opencontainers.image.ref.name": "docker.io/library/alpine:3.20"\n'
        "         }\n"
        "      }\n"
        "   ]\n"
        "}"
    )
    assert text == expected


def test_go_json_escapes() -> None:
    assert jsonfmt.dumps({"a": "<&>\u2028é"}) == '{"a":"\\u003c\\u0026\\u003e\\u2028é"}'.encode()
    assert jsonfmt.dumps({"b": [], "c": {}}, indent=3) == b'{\n   "b": [],\n   "c": {}\n}'


def test_descriptor_roundtrip_keeps_unknown_fields() -> None:
    obj = {
        "mediaType": "m",
        "digest": "sha256:" + "a" * 64,
        "size": 3,
        "platform": {"variant": "v8", "os": "linux", "architecture": "arm64"},
        "urls": ["u"],
        "annotations": {"z": "1", "a": "2"},
    }
    out = Descriptor.from_json(obj).to_json()
    assert list(out) == ["mediaType", "size", "digest", "urls", "annotations", "platform"]
    assert list(out["platform"]) == ["architecture", "os", "variant"]
    assert list(out["annotations"]) == ["a", "z"]


DESC = {"mediaType": "m", "digest": "sha256:" + "a" * 64, "size": 3}


def test_manifest_parts_of_an_image_manifest() -> None:
    layer = {**DESC, "digest": "sha256:" + "b" * 64}
    config, layers = manifest_parts({"config": DESC, "layers": [layer, DESC]}, "manifest x")
    assert config.digest == DESC["digest"] and [d.digest for d in layers] == [layer["digest"], DESC["digest"]]
    assert manifest_parts({"config": DESC}, "manifest x").layers == ()  # no layers: none


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ([DESC], "manifest x is not a JSON object"),
        ({"layers": []}, "manifest x is not an image manifest: it has no config"),
        ({"config": DESC, "layers": {"0": DESC}}, "manifest x: layers is not a list"),
        ({"config": {**DESC, "size": -1}}, "manifest x: config: missing or negative size"),
        (
            {"config": DESC, "layers": [DESC, {"digest": "md5:0"}]},
            "manifest x: layers\\[1\\]: missing or unsupported digest",
        ),
    ],
)
def test_manifest_parts_refuses_a_malformed_manifest(manifest: object, message: str) -> None:
    with pytest.raises(ManifestError, match=f"^{message}") as info:
        manifest_parts(manifest, "manifest x")
    assert isinstance(info.value, BuildError) and isinstance(info.value, ValueError)


def test_malformed_manifest_in_the_cache_is_reported_as_damage(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    cache.layout.ensure()
    raw = json.dumps({"schemaVersion": 2, "config": DESC, "layers": "nope"}).encode()
    dig, size = cache.layout.write_blob_bytes(raw)
    cache.layout.update_index(
        lambda entries: [
            *entries,
            Descriptor("application/vnd.oci.image.manifest.v1+json", dig, size).named("docker.io/library/t:1"),
        ]
    )
    with pytest.raises(
        BuildError, match=rf"^image docker.io/library/t:1 in the cache is damaged: manifest {dig}: layers is not a list"
    ) as info:
        cache.resolve("t:1", Platform("linux", "amd64"))
    assert info.value.hint is not None and "cache verify --repair" in info.value.hint


def test_blob_digest_mismatch_never_reaches_final_path(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.ensure()
    wrong = of_bytes(b"something else")
    with pytest.raises(DigestError):
        layout.write_blob(io.BytesIO(b"content"), wrong)
    with pytest.raises(DigestError):
        layout.write_blob(io.BytesIO(b"content"), of_bytes(b"content"), 99)
    assert list(layout.blobs_dir.iterdir()) == []
    dig, size = layout.write_blob(io.BytesIO(b"content"), of_bytes(b"content"), 7)
    assert layout.blob_path(dig).read_bytes() == b"content" and size == 7
    assert layout.blob_digests() == [dig]


def test_verifying_reader_checks_at_end() -> None:
    good = VerifyingReader(io.BytesIO(b"abc"), of_bytes(b"abc"), 3, "x")
    assert good.read() == b"abc"
    bad = VerifyingReader(io.BytesIO(b"abd"), of_bytes(b"abc"), 3, "x")
    with pytest.raises(DigestError, match="expected sha256:"):
        bad.read()
    short = VerifyingReader(io.BytesIO(b"ab"), of_bytes(b"ab"), 3, "x")
    with pytest.raises(DigestError, match="2 bytes, expected 3"):
        short.read()


def test_lock_is_reentrant_and_exclusive_between_objects(tmp_path: Path) -> None:
    import threading

    layout = Layout(tmp_path)
    layout.ensure()
    order: list[str] = []
    with layout.lock.exclusive():
        with layout.lock.shared(), layout.lock.exclusive():
            pass

        def other() -> None:
            with Layout(tmp_path).lock.exclusive():
                order.append("other")

        t = threading.Thread(target=other)
        t.start()
        t.join(0.3)
        order.append("first")
    t.join()
    assert order == ["first", "other"]
    assert (tmp_path / ".lock").exists()


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert default_cache_dir({"LINUXKIT_CACHE": str(tmp_path)}) == tmp_path
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir({}) == tmp_path / ".linuxkit" / "cache"


def test_index_keeps_its_own_annotations(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.ensure()
    (tmp_path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [], "annotations": {"k": "v"}}))
    layout.update_index(lambda e: e)
    assert json.loads((tmp_path / "index.json").read_text())["annotations"] == {"k": "v"}
