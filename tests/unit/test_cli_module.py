"""``python -m linuxkit`` runs the command line, exit codes included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "linuxkit", *args], capture_output=True, text=True, cwd=cwd)


def test_python_m_linuxkit_runs_the_cli(tmp_path: Path) -> None:
    proc = run_module("version", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("linuxkit version v")


def test_python_m_linuxkit_keeps_the_exit_code(tmp_path: Path) -> None:
    proc = run_module("pkg", "show-tag", "missing", cwd=tmp_path)
    assert proc.returncode == 2
    assert "missing/build.yml" in proc.stderr
    assert "Traceback" not in proc.stderr
