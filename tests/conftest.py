"""Shared fixtures: run the real ``linuxkit`` command line in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "unit"))  # the rootfs scenario helpers live there

RunLinuxkit = Callable[..., subprocess.CompletedProcess[bytes]]

# A suite started in the background by a non-interactive shell (``./scripts/test &``, nohup) inherits SIGINT
# ignored, and so would every linuxkit it starts: the tests that interrupt one with SIGINT (as Ctrl-C does)
# would wait in vain. With a handler here, the children start with SIGINT at its default again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def linuxkit(tmp_path: Path) -> RunLinuxkit:
    """Run ``linuxkit ARGS`` with a private cache (``tmp_path/cache``) and cwd ``tmp_path``."""

    def run(
        *args: str | os.PathLike[str],
        check: bool = True,
        input: bytes | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        full_env = {**os.environ, "LINUXKIT_CACHE": str(tmp_path / "cache"), "COLUMNS": "200", **(env or {})}
        cmd: Sequence[str] = [sys.executable, "-m", "linuxkit.cli.main", *map(str, args)]
        proc = subprocess.run(cmd, input=input, capture_output=True, cwd=cwd or tmp_path, env=full_env, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"linuxkit {' '.join(map(str, args))} exited {proc.returncode}\n{proc.stderr.decode(errors='replace')}"
            )
        return proc

    return run


@pytest.fixture
def scenario(tmp_path: Path, linuxkit: RunLinuxkit) -> Path:
    """The golden rootfs scenario (tests/unit/rootfs_scenario.py): its images in the private cache, its
    YAML (and the file it names) in ``tmp_path``."""
    import rootfs_fakes
    import rootfs_scenario

    (tmp_path / "images.tar").write_bytes(rootfs_fakes.oci_layout_tar(rootfs_scenario.IMAGES))
    (tmp_path / "test.yml").write_text(rootfs_scenario.YAML)
    (tmp_path / "src.txt").write_text("source file\n")
    linuxkit("cache", "import", "images.tar")
    return tmp_path / "test.yml"
