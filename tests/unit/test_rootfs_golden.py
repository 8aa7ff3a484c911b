"""Our rootfs tar is byte-identical to upstream's for the scenario in ``rootfs_scenario``."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest
import yaml
from rootfs_scenario import IMAGES, YAML

from linuxkit.config import schema
from linuxkit.formats.tarfmt import write_docker, write_tar
from linuxkit.oci.image import ImageSource, Platform
from linuxkit.rootfs.assemble import RootfsSettings

DATA = Path(__file__).parent.parent / "data" / "rootfs"


def _images(ref: str, platform: Platform) -> ImageSource:
    assert platform == Platform("linux", "amd64")
    return IMAGES[ref]


@pytest.mark.parametrize(
    ("golden", "docker", "decompress"),
    [
        ("upstream-tar.tar.gz", False, False),
        ("upstream-docker.tar.gz", True, False),
        ("upstream-tar-decompress-kernel.tar.gz", False, True),
    ],
)
def test_matches_upstream(tmp_path: Path, golden: str, docker: bool, decompress: bool) -> None:
    expected = gzip.decompress((DATA / golden).read_bytes())
    with tarfile.open(fileobj=io.BytesIO(expected)) as tar:
        member = tar.extractfile("etc/linuxkit-config")
        assert member is not None
        metadata = member.read()
    (tmp_path / "src.txt").write_text("source file\n")
    moby = schema.parse(schema.Moby, yaml.safe_load(YAML))
    settings = RootfsSettings(
        arch="amd64", base_dir=tmp_path, metadata_dump=lambda m, k: metadata, decompress_kernel=decompress
    )
    out = io.BytesIO()
    (write_docker if docker else write_tar)(moby, _images, out, settings)
    assert out.getvalue() == expected
