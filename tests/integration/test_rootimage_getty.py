"""examples/minimal.yml as kernel+squashfs booted by ``linuxkit run qemu --networking none`` (TCG): through
the root loader's switch_root, the getty service (INSECURE=true: a root shell on ttyS0) starts once and
stays up. The console is watched for a bounded time after its prompt: the prompt shows once, the
supervisor never reports it exited or restarting (a getty that fails in the loader's root, e.g. on a
console device missing after the loader's /dev is gone, exits and is restarted every few seconds)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.bootkit import boot_argv, stop_qemu
from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLE = ROOT / "examples" / "minimal.yml"
#: busybox ash's banner: the INSECURE getty's root shell runs on the serial console
PROMPT = "Enter 'help' for a list of built-in commands."
#: TCG on a busy 2-core machine: the boot to the prompt takes ~8 s when the machine is quiet
BOOT_TIMEOUT = 600.0
#: how long the console is watched after the prompt: the supervisor's first restart comes 1 s after an
#: exit, and a failing getty exits within a second or two of its start
WATCH_SECONDS = 30.0


def _env(cache: Path) -> dict[str, str]:
    debs = Path(os.environ.get("LINUXKIT_TEST_CACHE", Path.home() / ".cache" / "linuxkit-tests")) / "debian"
    return {**os.environ, "LINUXKIT_CACHE": str(cache), "LINUXKIT_DEBIAN_CACHE": str(debs), "COLUMNS": "200"}


def test_getty_starts_once_and_stays_up_on_a_squashfs_root(tmp_path: Path) -> None:
    missing = [t for t in ("qemu-system-x86_64", "tar2sqfs") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing: {missing} (scripts/setup installs them)")
    cache, out = tmp_path / "cache", tmp_path / "out"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "linuxkit.cli.main",
            "build",
            "-f",
            "kernel+squashfs",
            "--name",
            "m",
            "--dir",
            out,
            EXAMPLE,
        ],
        capture_output=True,
        env=_env(cache),
        timeout=1800,
        check=False,
    )
    assert build.returncode == 0, build.stderr.decode(errors="replace")[-4000:]
    state = out / "m-state"
    argv = [
        *(sys.executable, "-m", "linuxkit.cli.main", "run", "qemu", "--networking", "none", "--accel", "tcg"),
        *("--state", str(state), str(out / "m")),
    ]
    try:
        console = boot_argv(argv, PROMPT, timeout=BOOT_TIMEOUT, linger=WATCH_SECONDS)
    finally:
        stop_qemu(state / "qemu.pid")
    tail = console[-3000:]
    assert "hello from an onboot container" in console, tail
    assert console.count("service getty: starting (policy on-failure, restarts 0)") == 1, tail
    assert console.count(PROMPT) == 1, tail
    assert not re.search(r"service getty: (exited|restarting|not restarting)", console), tail
