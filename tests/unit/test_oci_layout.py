"""The on-disk layout: exact bytes go-containerregistry writes, atomic verified blobs, the lock."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from linuxkit.oci import jsonfmt
from linuxkit.oci.cache import Cache
from linuxkit.oci.cachedir import default_cache_dir
from linuxkit.oci.descriptor import Descriptor
from linuxkit.oci.digest import DigestError, VerifyingReader, of_bytes
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
