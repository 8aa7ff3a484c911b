"""govmomi's vCenter simulator for the vcenter tests: tests/data/vcsim/main.go built against Debian's
golang-github-vmware-govmomi-dev (scripts/setup installs it and golang-go) into the git-ignored .cache/vcsim,
once per source and Go version, and started on a free loopback port."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests" / "data" / "vcsim" / "main.go"
GOPATH = Path("/usr/share/gocode")
GOVMOMI = GOPATH / "src" / "github.com" / "vmware" / "govmomi"
USER, PASSWORD = "lk-user", "lk:pass@word"


def build() -> Path:
    """The simulator binary (built on first use, about 40 s)."""
    if not GOVMOMI.is_dir():
        pytest.fail(f"{GOVMOMI} is missing: run scripts/setup (Debian's golang-github-vmware-govmomi-dev)")
    go_version = subprocess.run(["go", "version"], capture_output=True, text=True, check=True).stdout
    key = hashlib.sha256(SOURCE.read_bytes() + go_version.encode()).hexdigest()[:16]
    out = ROOT / ".cache" / "vcsim" / key / "vcsim"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "GOPATH": str(GOPATH),
            "GO111MODULE": "off",
            "GOCACHE": str(out.parent.parent / "gocache"),
            "CGO_ENABLED": "0",
        }
        tmp = out.with_suffix(".tmp")
        subprocess.run(["go", "build", "-o", str(tmp), str(SOURCE)], env=env, check=True, cwd=SOURCE.parent)
        tmp.rename(out)
    return out


@contextmanager
def running(user: str = USER, password: str = PASSWORD) -> Iterator[str]:
    """The simulator's ``https://host:port/sdk`` URL (no credentials in it) while it runs."""
    proc = subprocess.Popen(
        [str(build()), "-listen", "127.0.0.1:0", "-user", f"{user}:{password}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        line = proc.stdout.readline().strip()
        if not line.startswith("https://") or time.monotonic() > deadline:
            pytest.fail(f"vcsim did not start: {line!r}")
        host = line.rsplit("@", 1)[-1]
        yield f"https://{host}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
