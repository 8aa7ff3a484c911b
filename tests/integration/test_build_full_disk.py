"""``linuxkit build`` into a full file system (a 2 MB tmpfs): exit 1 with a plain message, no
"Fatal Python error ... daemon threads" abort (exit 134), nothing left in the output directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import RunLinuxkit
from tests.imagefactory import Entry, ImageSpec, directory, file, write_layout_tar
from tests.mounts import tmpfs

pytestmark = pytest.mark.integration


@pytest.fixture
def full_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on its own 2 MB tmpfs."""
    with tmpfs(tmp_path / "small", "size=2m") as path:
        yield path


@pytest.fixture
def big_system(tmp_path: Path, linuxkit: RunLinuxkit) -> Path:
    """A kernel and an init image with 16 MB of incompressible data (gzip cannot make it fit)."""
    specs = [
        ImageSpec("example.org/t/kernel:1", [[file("kernel", b"K" * 4096), file("kernel.tar", b"")]]),
        ImageSpec(
            "example.org/t/big:1", [[directory("big"), Entry("big/a", size=8 << 20), Entry("big/b", size=8 << 20)]]
        ),
    ]
    write_layout_tar(tmp_path / "images.tar", specs)
    linuxkit("cache", "import", "images.tar")
    yml = tmp_path / "t.yml"
    yml.write_text(
        "kernel:\n  image: example.org/t/kernel:1\n  cmdline: console=ttyS0\ninit:\n  - example.org/t/big:1\n"
    )
    return yml


@pytest.mark.parametrize("fmt", ["kernel+initrd", "tar-kernel-initrd", "tar"])
def test_build_into_a_full_file_system_fails_plainly(
    big_system: Path, full_dir: Path, linuxkit: RunLinuxkit, fmt: str
) -> None:
    for _ in range(3):  # the old abort depended on thread timing: try it a few times
        proc = linuxkit("build", "--format", fmt, "--dir", full_dir, big_system, check=False)
        err = proc.stderr.decode(errors="replace")
        assert proc.returncode == 1, err
        assert "Fatal Python error" not in err and "Traceback" not in err and "internal error" not in err
        what = f"{full_dir}/t.tar" if fmt == "tar" else f"{fmt} to {full_dir}/t"
        assert f"error: no space left on device writing {what} (needed more" in err, err
        assert f"(needed more than the 2.1 MB that were free in {full_dir})" in err, err
        assert "hint: free some space there, or write elsewhere with --" in err
        assert list(full_dir.iterdir()) == []  # temporary outputs and work directories removed
