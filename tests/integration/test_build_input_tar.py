"""``linuxkit build --input-tar``: bytes and logs compared with upstream LinuxKit v1.8.2's own
incremental builds of the same YAMLs and images (``tests/data/rootfs/upstream-input-tar-*``)."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest
import rootfs_fakes
import rootfs_scenario
from tests.conftest import ROOT, RunLinuxkit
from tests.data.rootfs import extras_scenario as extras

GOLDEN = ROOT / "tests" / "data" / "rootfs"

pytestmark = pytest.mark.integration


def _golden(name: str) -> bytes:
    return gzip.decompress((GOLDEN / name).read_bytes())


@pytest.fixture
def pair(tmp_path: Path, linuxkit: RunLinuxkit) -> Path:
    """The images in the cache, the two YAMLs, and upstream's build of the first as ``old.tar``."""
    extras.write_images(tmp_path / "images.tar")
    linuxkit("cache", "import", "images.tar")
    (tmp_path / "old.yml").write_text(extras.INPUT_TAR_OLD)
    (tmp_path / "new.yml").write_text(extras.INPUT_TAR_NEW)
    (tmp_path / "old.tar").write_bytes(_golden("upstream-input-tar-old.tar.gz"))
    return tmp_path


def test_full_build_of_the_input_matches_upstream(pair: Path, linuxkit: RunLinuxkit) -> None:
    linuxkit("build", "--format", "tar", "--no-sbom", "--o", "full.tar", "old.yml")
    assert (pair / "full.tar").read_bytes() == (pair / "old.tar").read_bytes()


def test_incremental_build_matches_upstream_bytes_and_logs(pair: Path, linuxkit: RunLinuxkit) -> None:
    proc = linuxkit("build", "--format", "tar", "--no-sbom", "--input-tar", "old.tar", "--o", "new.tar", "new.yml")
    assert (pair / "new.tar").read_bytes() == _golden("upstream-input-tar-new.tar.gz")
    log = proc.stderr.decode()
    # upstream's own expectations (test/cases/000_build/060_input_tar), for this pair of YAMLs
    for copied in ("kernel", "init[0]", "init[1]", "onboot[0]", "services[0]"):
        assert f"Copy {copied} files from input tar" in log
    for rebuilt in ("init[2]", "onboot[1]", "services[1]"):
        assert f"Copy {rebuilt} files" not in log
    assert "Process init image: docker.io/library/xinit3:1" in log
    # upstream drops unchanged volumes (it copies them under a name it never writes); we say so
    assert "volumes[0] is unchanged, so it is left out" in log
    with tarfile.open(pair / "new.tar") as tar:
        assert not [n for n in tar.getnames() if n.startswith("containers/volumes")]


def test_reused_images_need_not_be_in_the_cache(tmp_path: Path, linuxkit: RunLinuxkit) -> None:
    lib = "docker.io/library/"
    extras.write_images(tmp_path / "images.tar", without=(lib + "xkernel:1", lib + "xinit:1", lib + "xsvc2:1"))
    linuxkit("cache", "import", "images.tar")
    (tmp_path / "new.yml").write_text(extras.INPUT_TAR_NEW)
    (tmp_path / "old.tar").write_bytes(_golden("upstream-input-tar-old.tar.gz"))
    linuxkit("build", "--format", "tar", "--no-sbom", "--input-tar", "old.tar", "--o", "new.tar", "new.yml")
    assert (tmp_path / "new.tar").read_bytes() == _golden("upstream-input-tar-new.tar.gz")
    # without the input tar the same build needs them
    proc = linuxkit("build", "--format", "tar", "--no-sbom", "--o", "full.tar", "new.yml", check=False)
    assert proc.returncode == 1
    assert b"xkernel:1" in proc.stderr


def test_main_scenario_incremental_matches_upstream(tmp_path: Path, linuxkit: RunLinuxkit) -> None:
    """Apk databases, hard links, long names, ucode and shared bundle roots copied from upstream's tar."""
    (tmp_path / "images.tar").write_bytes(rootfs_fakes.oci_layout_tar(rootfs_scenario.IMAGES))
    linuxkit("cache", "import", "images.tar")
    (tmp_path / "test.yml").write_text(rootfs_scenario.YAML.replace("    uid: first", "    uid: second"))
    (tmp_path / "src.txt").write_text("source file\n")
    (tmp_path / "in.tar").write_bytes(_golden("upstream-tar.tar.gz"))
    linuxkit("build", "--format", "tar", "--no-sbom", "--input-tar", "in.tar", "--o", "out.tar", "test.yml")
    assert (tmp_path / "out.tar").read_bytes() == _golden("upstream-input-tar-main.tar.gz")


def test_without_metadata_file_the_input_tar_is_not_read(pair: Path, linuxkit: RunLinuxkit) -> None:
    yml = extras.INPUT_TAR_NEW.replace("  - path: etc/linuxkit-config\n    metadata: yaml\n", "")
    assert yml != extras.INPUT_TAR_NEW
    (pair / "plain.yml").write_text(yml)
    linuxkit("build", "--format", "tar", "--no-sbom", "--o", "full.tar", "plain.yml")
    args = ["--input-tar", "nowhere.tar", "--o", "inc.tar", "plain.yml"]
    proc = linuxkit("build", "--format", "tar", "--no-sbom", *args)
    assert b"Copy " not in proc.stderr
    assert (pair / "inc.tar").read_bytes() == (pair / "full.tar").read_bytes()


def test_input_tar_without_the_metadata_file_builds_everything(pair: Path, linuxkit: RunLinuxkit) -> None:
    linuxkit("build", "--format", "tar", "--no-sbom", "--o", "full.tar", "new.yml")
    with tarfile.open(pair / "empty.tar", "w") as tar:
        tar.addfile(tarfile.TarInfo("etc/other"), io.BytesIO())
    proc = linuxkit("build", "--format", "tar", "--no-sbom", "--input-tar", "empty.tar", "--o", "inc.tar", "new.yml")
    assert b"Copy " not in proc.stderr
    assert (pair / "inc.tar").read_bytes() == (pair / "full.tar").read_bytes()


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (None, ["--input-tar", "missing.tar"], b"cannot open --input-tar missing.tar"),
        ("garbage", ["--input-tar", "bad.tar"], b"invalid config in etc/linuxkit-config"),
        (None, ["--input-tar", "old.tar", "--pull"], b"cannot use --input-tar and --pull together"),
        (None, ["--input-tar", "old.tar", "--o", "old.tar"], b"cannot be the same"),
    ],
)
def test_user_mistakes_exit_2(
    pair: Path, linuxkit: RunLinuxkit, setup: str | None, args: list[str], message: bytes
) -> None:
    if setup == "garbage":
        data = b"kernel: [not, a, mapping]\nbogus: 1\n"
        with tarfile.open(pair / "bad.tar", "w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo("etc/linuxkit-config")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = [] if "--o" in args else ["--o", "new.tar"]
    proc = linuxkit("build", "--format", "tar", "--no-sbom", *args, *out, "new.yml", check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
