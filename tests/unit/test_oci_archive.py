"""cache import / export: OCI layout tars, docker tars, filesystem tars."""

from __future__ import annotations

import io
import json
import sys
import tarfile
import types
from pathlib import Path
from typing import IO

import pytest
from oci_testutil import AMD64, ARM64, make_tar

from linuxkit.errors import UserError
from linuxkit.oci import jsonfmt
from linuxkit.oci import mediatypes as mt
from linuxkit.oci.archive import export_image, export_to, import_archive
from linuxkit.oci.cache import Cache
from linuxkit.oci.descriptor import Descriptor
from linuxkit.oci.image import ImageSource
from linuxkit.oci.layout import OCI_LAYOUT_CONTENT
from linuxkit.oci.writer import write_image, write_multiarch


def config_for(arch: str) -> dict[str, object]:
    return {"architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/sh"]}}


def _multi(cache: Cache) -> Descriptor:
    return write_multiarch(
        cache,
        "example/multi:1",
        {
            AMD64: (config_for("amd64"), [io.BytesIO(make_tar({"a": b"amd"})), io.BytesIO(make_tar({"b": b"x"}))]),
            ARM64: (config_for("arm64"), [io.BytesIO(make_tar({"a": b"arm"}))]),
        },
    )


def test_export_oci_then_import_gives_same_digests(tmp_path: Path) -> None:
    src = Cache(tmp_path / "src")
    _multi(src)
    out = io.BytesIO()
    image = export_image(src, "example/multi:1", out, fmt="oci", platform=ARM64)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        names = tar.getnames()
        assert names[:3] == ["oci-layout", "blobs", "blobs/sha256"]
        assert names[-1] == "index.json"
        layout_file = tar.extractfile("oci-layout")
        assert layout_file is not None and layout_file.read() == OCI_LAYOUT_CONTENT
        idx_file = tar.extractfile("index.json")
        assert idx_file is not None
        index = json.loads(idx_file.read())
        assert all(m.mtime == 0 and m.uid == 0 for m in tar.getmembers())
    (root,) = index["manifests"]
    assert root["digest"] == image.digest and root["mediaType"] == mt.OCI_MANIFEST
    assert root["annotations"] == {
        "io.containerd.image.name": "docker.io/example/multi:1",
        "org.opencontainers.image.ref.name": "docker.io/example/multi:1",
    }
    dst = Cache(tmp_path / "dst")
    imported = import_archive(dst, io.BytesIO(out.getvalue()))
    assert [i.name for i in imported] == ["docker.io/example/multi:1"]
    again = dst.resolve("example/multi:1", ARM64)
    assert again is not None
    assert again.digest == image.digest
    assert again.config_descriptor.digest == image.config_descriptor.digest
    assert [lay.digest for lay in again.layers] == [lay.digest for lay in image.layers]
    again.verify()
    # exporting twice gives the same bytes
    out2 = io.BytesIO()
    export_image(dst, "example/multi:1", out2, fmt="oci", platform=ARM64)
    assert out2.getvalue() == out.getvalue()


def test_export_docker_manifest(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    _multi(cache)
    out = io.BytesIO()
    image = export_image(cache, "example/multi:1", out, fmt="docker", platform=AMD64, name="other/name:2")
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        names = tar.getnames()
        mf = tar.extractfile("manifest.json")
        assert mf is not None
        raw = mf.read()
        cfg = tar.extractfile(image.config_descriptor.digest)
        assert cfg is not None and cfg.read() == image.raw_config()
    layer_files = [f"{lay.digest.split(':')[1]}.tar.gz" for lay in image.layers]
    assert json.loads(raw) == [
        {"Config": image.config_descriptor.digest, "RepoTags": ["docker.io/other/name:2"], "Layers": layer_files}
    ]
    assert raw.startswith(b'[{"Config":"sha256:')
    assert names == [image.config_descriptor.digest, *layer_files, "manifest.json"]


def test_import_names(tmp_path: Path) -> None:
    src = Cache(tmp_path / "src")
    desc = write_image(src, "x/y:1", config_for("amd64"), [io.BytesIO(make_tar({"f": b"1"}))])
    blobs = {f"blobs/sha256/{p.name}": p.read_bytes() for p in src.layout.blobs_dir.iterdir()}

    def archive(annotations: dict[str, str]) -> bytes:
        entry = Descriptor(desc.media_type, desc.digest, desc.size, annotations).to_json()
        index = jsonfmt.dumps({"schemaVersion": 2, "manifests": [entry]}, indent=3)
        return make_tar({**blobs, "index.json": index, "oci-layout": OCI_LAYOUT_CONTENT})

    dst = Cache(tmp_path / "dst")
    got = import_archive(dst, io.BytesIO(archive({"org.opencontainers.image.ref.name": "1.0"})))
    assert got[0].name is None and dst.images() == {}
    got = import_archive(dst, io.BytesIO(archive({"org.opencontainers.image.ref.name": "docker.io/x/y:2"})))
    assert got[0].name == "docker.io/x/y:2"
    got = import_archive(dst, io.BytesIO(archive({"io.containerd.image.name": "docker.io/x/y:3"})))
    assert set(dst.images()) == {"docker.io/x/y:2", "docker.io/x/y:3"}
    with pytest.raises(UserError, match=r"no index\.json"):
        import_archive(dst, io.BytesIO(make_tar(blobs)))
    bad = dict(blobs)
    first = sorted(bad)[0]
    bad[first] = b"tampered"
    with pytest.raises(UserError, match="expected"):
        import_archive(Cache(tmp_path / "bad"), io.BytesIO(make_tar(bad)))
    assert not (tmp_path / "bad" / first).exists()


def test_export_filesystem_uses_rootfs_flatten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = Cache(tmp_path)
    write_image(cache, "fs:1", config_for("amd64"), [io.BytesIO(make_tar({"f": b"1"}))])
    seen: list[str] = []

    def write_flattened(source: ImageSource, out: IO[bytes]) -> None:
        seen.append(source.ref)
        with source.open_layer(0) as f:
            out.write(f.read())

    fake = types.ModuleType("linuxkit.rootfs.flatten")
    fake.write_flattened = write_flattened  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "linuxkit.rootfs.flatten", fake)
    out = io.BytesIO()
    export_image(cache, "fs:1", out, fmt="filesystem", platform=AMD64)
    assert seen == ["docker.io/library/fs:1"] and out.getvalue() == make_tar({"f": b"1"})


def test_export_to_file_is_atomic(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    write_image(cache, "a:1", config_for("amd64"), [io.BytesIO(make_tar({"f": b"1"}))])
    target = tmp_path / "out.tar"
    export_to(cache, "a:1", str(target), fmt="docker", platform=AMD64)
    assert tarfile.is_tarfile(target)
    with pytest.raises(UserError, match="not in the cache"):
        export_to(cache, "missing:1", str(tmp_path / "missing.tar"), platform=AMD64)
    with pytest.raises(UserError, match="unknown export format"):
        export_to(cache, "a:1", str(tmp_path / "x.tar"), fmt="zip", platform=AMD64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "out.tar"]
    stdout = io.BytesIO()
    export_to(cache, "a:1", "-", fmt="oci", platform=AMD64, stdout=stdout)
    assert stdout.getvalue()[:512].startswith(b"oci-layout")
