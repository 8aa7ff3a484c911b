"""Our cache read and written by other tools: skopeo, and upstream LinuxKit when its binary is present.

CI must install skopeo (Debian package ``skopeo``) for the skopeo tests to run.
Upstream's binary is looked up at ``$LINUXKIT_UPSTREAM`` or /work/upstream/bin/linuxkit.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from linuxkit.oci.archive import export_to, import_archive
from linuxkit.oci.cache import Cache
from linuxkit.oci.image import Platform
from linuxkit.oci.writer import write_image, write_multiarch

pytestmark = pytest.mark.integration
AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")
SKOPEO = shutil.which("skopeo")
UPSTREAM = os.environ.get("LINUXKIT_UPSTREAM", "/work/upstream/bin/linuxkit")
needs_skopeo = pytest.mark.skipif(SKOPEO is None, reason="skopeo not installed (apt-get install skopeo)")
needs_upstream = pytest.mark.skipif(
    not os.access(UPSTREAM, os.X_OK), reason=f"upstream linuxkit binary not found at {UPSTREAM}"
)


def make_tar(name: str, data: bytes) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def populate(root: Path) -> Cache:
    cache = Cache(root)
    write_image(cache, "example/single:1", {"architecture": "amd64", "os": "linux"}, [make_tar("hello", b"hi\n")])
    write_multiarch(
        cache,
        "example/multi:1",
        {
            AMD64: ({"config": {"Cmd": ["/bin/sh"]}}, [make_tar("a", b"amd64")]),
            ARM64: ({"config": {"Cmd": ["/bin/sh"]}}, [make_tar("a", b"arm64")]),
        },
    )
    return cache


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=True, capture_output=True, text=True)


@needs_skopeo
def test_skopeo_reads_our_cache(tmp_path: Path) -> None:
    assert SKOPEO is not None
    cache = populate(tmp_path / "cache")
    info = json.loads(run(SKOPEO, "inspect", f"oci:{tmp_path / 'cache'}:docker.io/example/single:1").stdout)
    assert info["Architecture"] == "amd64"
    multi = cache.resolve("example/multi:1", ARM64)
    assert multi is not None
    out = tmp_path / "dir"
    run(SKOPEO, "copy", "--override-arch", "arm64", f"oci:{tmp_path / 'cache'}:docker.io/example/multi:1", f"dir:{out}")
    assert (out / multi.layers[0].digest.split(":")[1]).exists()
    # and what skopeo writes (ref.name annotation only) we read
    run(SKOPEO, "copy", f"dir:{out}", f"oci:{tmp_path / 'sk'}:docker.io/example/copied:1")
    image = Cache(tmp_path / "sk").resolve("example/copied:1", ARM64)
    assert image is not None and [x.digest for x in image.layers] == [x.digest for x in multi.layers]
    image.verify()


@needs_upstream
def test_upstream_reads_our_cache(tmp_path: Path) -> None:
    cache = populate(tmp_path / "cache")
    before = (tmp_path / "cache" / "index.json").read_bytes()
    listing = run(UPSTREAM, "--cache", str(tmp_path / "cache"), "cache", "ls").stderr.splitlines()
    images = cache.images()
    assert listing[0].split() == ["image", "name", "root", "manifest", "hash"]
    assert sorted(line.split() for line in listing[1:]) == sorted([k, v] for k, v in images.items())
    assert (tmp_path / "cache" / "index.json").read_bytes() == before
    exported = tmp_path / "up.tar"
    run(
        UPSTREAM, "--cache", str(tmp_path / "cache"), "cache", "export", "--format", "oci",
        "--platform", "linux/arm64", "--outfile", str(exported), "docker.io/example/multi:1",
    )  # fmt: skip
    # upstream labels the exported manifest as an index and names it with ref.name only: we cope with both
    mine = Cache(tmp_path / "mine")
    with exported.open("rb") as f:
        (got,) = import_archive(mine, f)
    assert got.name == "docker.io/example/multi:1"
    image = mine.resolve("example/multi:1", ARM64)
    original = cache.resolve("example/multi:1", ARM64)
    assert image is not None and original is not None and image.digest == original.digest
    image.verify()


@needs_upstream
def test_upstream_and_we_write_the_same_index(tmp_path: Path) -> None:
    cache = populate(tmp_path / "cache")
    archive = tmp_path / "ours.tar"
    export_to(cache, "example/multi:1", str(archive), fmt="oci", platform=AMD64)
    run(UPSTREAM, "--cache", str(tmp_path / "up"), "cache", "import", str(archive))
    with archive.open("rb") as f:
        import_archive(Cache(tmp_path / "py"), f)
    for name in ("index.json", "oci-layout"):
        assert (tmp_path / "py" / name).read_bytes() == (tmp_path / "up" / name).read_bytes(), name
    assert sorted(p.name for p in (tmp_path / "py" / "blobs" / "sha256").iterdir()) == sorted(
        p.name for p in (tmp_path / "up" / "blobs" / "sha256").iterdir()
    )
    # upstream removes a name from our cache; the rest still reads
    run(UPSTREAM, "--cache", str(tmp_path / "cache"), "cache", "rm", "docker.io/example/single:1")
    assert list(cache.images()) == ["docker.io/example/multi:1"]
    multi = cache.resolve("example/multi:1", AMD64)
    assert multi is not None
    multi.verify()
