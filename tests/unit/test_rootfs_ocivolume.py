"""Volumes with ``format: oci``: the OCI layout entries made from a cached index."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from tests import imagefactory as f

from linuxkit.errors import BuildError
from linuxkit.oci.archive import import_archive
from linuxkit.oci.cache import Cache
from linuxkit.oci.image import Platform
from linuxkit.rootfs.ocivolume import LAYOUT_FILE, ensure_index, layout_entries, missing_blobs, wanted
from linuxkit.tar.header import DIR, REG

NAME = "docker.io/library/multi:1"


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    specs = [
        f.ImageSpec(NAME, [[f.file("a", "amd")], [f.file("b", "two")]]),
        f.ImageSpec(NAME, [[f.file("a", "arm")]], arch="arm64"),
        f.ImageSpec("docker.io/library/single:1", [[f.file("s", "s")]]),
    ]
    f.write_layout_tar(tmp_path / "multi.tar", specs[:2], multiarch=True)
    f.write_layout_tar(tmp_path / "single.tar", specs[2:])
    c = Cache(tmp_path / "cache")
    for name in ("multi.tar", "single.tar"):
        with open(tmp_path / name, "rb") as fh:
            import_archive(c, fh)
    return c


def _entries(cache: Cache, platforms: list[Platform]) -> list[tuple[str, str, int, bytes]]:
    out = []
    for entry in layout_entries(cache, NAME, platforms):
        hdr = entry.header
        assert (hdr.mtime, hdr.uid, hdr.gid, hdr.pax) == ((0, 0), 0, 0, None)
        out.append((hdr.name, hdr.typeflag, hdr.mode, entry.data.read()))
    return out


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_layout_order_and_contents(cache: Cache) -> None:
    got = _entries(cache, [])
    assert got[:3] == [
        ("oci-layout", REG, 0o644, LAYOUT_FILE),
        ("blobs/", DIR, 0o755, b""),
        ("blobs/sha256/", DIR, 0o755, b""),
    ]
    for name, _, _, data in got[3:-1]:
        assert name == "blobs/sha256/" + _sha(data)  # every blob under its digest
    root = cache.find(NAME)
    assert root is not None
    index = json.loads(got[-2][3])
    children = index["manifests"]
    expected: list[str] = []
    for child in children:  # per image: config, layers, manifest
        manifest = json.loads(cache.layout.read_blob(child["digest"]))
        expected += [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"]), child["digest"]]
    expected.append(root.digest)
    assert ["sha256:" + name.rsplit("/", 1)[1] for name, *_ in got[3:-1]] == expected
    assert got[-1][0] == "index.json"
    assert json.loads(got[-1][3]) == {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "size": root.size,
                "digest": root.digest,
                "annotations": {"org.opencontainers.image.ref.name": NAME},
            }
        ],
    }
    assert got[-1][3].startswith(b'{\n   "schemaVersion": 2,')  # indented by three spaces, as upstream


def test_platforms_select_images_but_keep_the_whole_index(cache: Cache) -> None:
    everything = _entries(cache, [])
    arm = _entries(cache, [Platform("linux", "arm64")])
    assert len(arm) == len(everything) - 4  # amd64: config, two layers, manifest
    assert arm[-2] == everything[-2] and arm[-1] == everything[-1]
    assert _entries(cache, [Platform("linux", "arm64"), Platform("linux", "amd64")]) == everything
    assert len(_entries(cache, [Platform("linux", "s390x")])) == 5  # header, index blob, index.json


def test_wanted_follows_upstream() -> None:
    arm = {"os": "linux", "architecture": "arm", "variant": "v7"}
    assert wanted(arm, [])
    assert wanted(arm, [Platform("linux", "arm")])
    assert wanted(arm, [Platform("linux", "arm", "v7")])
    assert not wanted(arm, [Platform("linux", "arm", "v6")])
    assert not wanted(arm, [Platform("windows", "arm")])
    assert not wanted(None, [Platform("linux", "arm")])


def test_single_platform_and_missing_images_are_refused(cache: Cache) -> None:
    with pytest.raises(BuildError, match="single-platform image"):
        list(layout_entries(cache, "docker.io/library/single:1", []))
    with pytest.raises(BuildError, match="not in the cache"):
        ensure_index(cache, "docker.io/library/none:1", [], registry=None, always_pull=False)


def test_missing_blobs_are_found_before_writing(cache: Cache) -> None:
    assert missing_blobs(cache, NAME, []) == []
    arm = [e for e in layout_entries(cache, NAME, [Platform("linux", "arm64")])]
    victim = "sha256:" + arm[3].header.name.rsplit("/", 1)[1]
    cache.layout.remove_blob(victim)
    assert missing_blobs(cache, NAME, [Platform("linux", "amd64")]) == []
    assert missing_blobs(cache, NAME, []) == [victim]
    with pytest.raises(BuildError, match="incomplete in the cache") as info:
        ensure_index(cache, NAME, [], registry=None, always_pull=False)
    assert info.value.hint


def test_blobs_are_streamed_from_the_cache_files(cache: Cache) -> None:
    blobs = [e for e in layout_entries(cache, NAME, []) if e.header.name.startswith("blobs/sha256/") and e.header.size]
    streamed = [not isinstance(e.data, io.BytesIO) for e in blobs]
    assert streamed[:-1] == [True] * (len(blobs) - 1)  # all but the index blob, read once for its size
