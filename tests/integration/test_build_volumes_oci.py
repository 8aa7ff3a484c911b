"""Volumes with ``format: oci``: bytes compared with upstream LinuxKit v1.8.2's build of the same
YAML and images (``tests/data/rootfs/upstream-oci-volumes.tar.gz``), and the layout checked by
importing it again."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest
from tests import imagefactory
from tests.conftest import ROOT, RunLinuxkit
from tests.data.rootfs import extras_scenario as extras

GOLDEN = ROOT / "tests" / "data" / "rootfs"

pytestmark = pytest.mark.integration


@pytest.fixture
def images(tmp_path: Path, linuxkit: RunLinuxkit) -> Path:
    extras.write_images(tmp_path / "images.tar")
    linuxkit("cache", "import", "images.tar")
    (tmp_path / "oci.yml").write_text(extras.OCI_VOLUMES)
    return tmp_path


def test_oci_volumes_match_upstream_bytes(images: Path, linuxkit: RunLinuxkit) -> None:
    linuxkit("build", "--format", "tar", "--no-sbom", "--o", "out.tar", "oci.yml")
    assert (images / "out.tar").read_bytes() == gzip.decompress((GOLDEN / "upstream-oci-volumes.tar.gz").read_bytes())


def test_volume_layout_is_an_importable_oci_layout(images: Path, linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    linuxkit("build", "--format", "tar", "--no-sbom", "--o", "out.tar", "oci.yml")
    prefix = "containers/volumes/arm/lower/"
    layout = io.BytesIO()
    with tarfile.open(images / "out.tar") as src, tarfile.open(fileobj=layout, mode="w") as dst:
        for member in src.getmembers():
            if member.name.startswith(prefix):
                data = src.extractfile(member) if member.isfile() else None
                member.name, member.pax_headers = member.name[len(prefix) :], {}
                dst.addfile(member, data)
    (tmp_path / "arm.tar").write_bytes(layout.getvalue())
    (tmp_path / "fresh").mkdir()
    linuxkit("--cache", "fresh", "cache", "import", "arm.tar")
    proc = linuxkit("--cache", "fresh", "cache", "ls")
    listed = (proc.stdout + proc.stderr).decode()
    assert "docker.io/library/xoci:1" in listed
    # only the arm64 image came along: exporting it works, amd64 does not
    export = ("--cache", "fresh", "cache", "export", "--outfile", "x.tar")
    linuxkit(*export, "--platform", "linux/arm64", "docker.io/library/xoci:1")
    proc = linuxkit(*export, "--platform", "linux/amd64", "docker.io/library/xoci:1", check=False)
    assert proc.returncode == 2
    assert b"has no linux/amd64 image" in proc.stderr


def test_single_platform_image_is_refused(tmp_path: Path, linuxkit: RunLinuxkit) -> None:
    spec = imagefactory.ImageSpec("docker.io/library/single:1", [[imagefactory.file("f", "x")]])
    imagefactory.write_layout_tar(tmp_path / "single.tar", [spec])
    linuxkit("cache", "import", "single.tar")
    (tmp_path / "v.yml").write_text("volumes:\n  - name: v\n    image: single:1\n    format: oci\n")
    proc = linuxkit("build", "--format", "tar", "--no-sbom", "--o", "out.tar", "v.yml", check=False)
    assert proc.returncode == 1
    assert b"single-platform image" in proc.stderr
    assert not (tmp_path / "out.tar").exists()


def test_missing_volume_image_fails_before_writing(tmp_path: Path, linuxkit: RunLinuxkit) -> None:
    (tmp_path / "v.yml").write_text("volumes:\n  - name: v\n    image: nowhere:1\n    format: oci\n")
    proc = linuxkit("build", "--format", "tar", "--no-sbom", "--o", "out.tar", "v.yml", check=False)
    assert proc.returncode == 1
    assert b"docker.io/library/nowhere:1" in proc.stderr
    assert not (tmp_path / "out.tar").exists()
