"""``linuxkit build`` end to end: cache import, build, bytes compared with upstream LinuxKit
v1.8.2's own output for the same images and YAML (``tests/data/rootfs``)."""

from __future__ import annotations

import gzip
import hashlib
import tarfile
import time
from pathlib import Path

import pytest
from tests.conftest import ROOT, RunLinuxkit

GOLDEN = ROOT / "tests" / "data" / "rootfs"


def _golden(name: str) -> bytes:
    return gzip.decompress((GOLDEN / name).read_bytes())


@pytest.mark.parametrize(
    ("flags", "golden"),
    [
        (["--format", "tar"], "upstream-tar.tar.gz"),
        (["--format", "docker"], "upstream-docker.tar.gz"),
        (["--format", "tar", "--decompress-kernel"], "upstream-tar-decompress-kernel.tar.gz"),
    ],
)
def test_build_matches_upstream_bytes(
    scenario: Path, linuxkit: RunLinuxkit, tmp_path: Path, flags: list[str], golden: str
) -> None:
    linuxkit("build", *flags, "--no-sbom", "--o", "out.tar", "test.yml")
    assert (tmp_path / "out.tar").read_bytes() == _golden(golden)


def test_stream_to_stdout_equals_file(scenario: Path, linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    streamed = linuxkit("build", "--no-sbom", "--o", "-", "test.yml").stdout
    assert streamed == _golden("upstream-tar.tar.gz")


def test_default_output_name_and_dir(scenario: Path, linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    linuxkit("build", "--format", "tar", "--dir", "out", "test.yml")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["test.tar"]
    with tarfile.open(tmp_path / "out" / "test.tar") as tar:
        names = tar.getnames()
    assert names[-1] == "sbom.spdx.json"
    assert "containers/onboot/000-first/config.json" in names
    assert "containers/services/rw/runtime.json" in names


def test_rebuild_is_bit_identical_across_dirs_and_time(scenario: Path, linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    linuxkit("build", "--format", "tar", "--dir", "a", "test.yml")
    time.sleep(1.1)
    linuxkit("build", "--format", "tar", "--dir", "b", "test.yml", env={"SOURCE_DATE_EPOCH": "1700000000"})
    a, b = (tmp_path / "a" / "test.tar").read_bytes(), (tmp_path / "b" / "test.tar").read_bytes()
    assert hashlib.sha256(a).hexdigest() == hashlib.sha256(b).hexdigest()


def test_dry_run_prints_merged_config(scenario: Path, linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    (tmp_path / "extra.yml").write_text("services:\n  - name: extra\n    image: docker.io/library/x:1\n")
    out = linuxkit("build", "--dry-run", "test.yml", "extra.yml").stdout.decode()
    assert "name: extra" in out
    assert out.endswith("\n\n")  # upstream prints the YAML with Println
    assert sorted(p.name for p in tmp_path.glob("*.tar*")) == ["images.tar"]  # nothing was built


def test_missing_image_is_located_and_leaves_nothing(linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "m.yml").write_text("onboot:\n  - name: a\n    image: nothere:1\n")
    proc = linuxkit("build", "--format", "tar", "--dir", "out", "m.yml", check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1
    assert "m.yml:3:12: onboot[0].image: image docker.io/library/nothere:1 is not in the cache" in err
    assert "Traceback" not in err
    assert list((tmp_path / "out").iterdir()) == []


def test_damaged_cache_fails_cleanly_without_partial_output(
    scenario: Path, linuxkit: RunLinuxkit, tmp_path: Path
) -> None:
    blobs = sorted((tmp_path / "cache" / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    biggest = blobs[-1]  # a layer
    data = bytearray(biggest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    biggest.write_bytes(bytes(data))
    (tmp_path / "out").mkdir()
    proc = linuxkit("build", "--format", "tar", "--dir", "out", "test.yml", check=False)
    assert proc.returncode == 1, proc.stderr.decode()
    assert "damaged" in proc.stderr.decode()
    assert "Traceback" not in proc.stderr.decode()
    assert list((tmp_path / "out").iterdir()) == []


def test_flags_as_upstream_spells_them(scenario: Path, linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    linuxkit("build", "--format", "tar", "--dir", "out", "--cache", tmp_path / "cache", "--no-sbom=true", "test.yml")
    assert (tmp_path / "out" / "test.tar").read_bytes() == _golden("upstream-tar.tar.gz")
    proc = linuxkit("build", "-o", "x.tar", "test.yml", check=False)
    assert proc.returncode == 2
    proc = linuxkit("build", "--format", "tar,docker", "test.yml", check=False)
    assert proc.returncode == 2
    assert "must be the only format" in proc.stderr.decode()


def test_format_for_another_architecture_is_a_clear_error(scenario: Path, linuxkit: RunLinuxkit) -> None:
    proc = linuxkit("build", "--format", "rpi3", "test.yml", check=False)
    assert proc.returncode == 2
    assert "rpi3 builds only for arm64" in proc.stderr.decode()
