"""govmomi's vCenter simulator for the vcenter tests: tests/data/vcsim/main.go built against Debian's
golang-github-vmware-govmomi-dev (scripts/setup installs it and golang-go) into the git-ignored .cache/vcsim,
once per source and Go version, and started on a free loopback port."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


@dataclass
class Simulator:
    """A running simulator: its SDK URL (no credentials in it) and its SOAP trace."""

    url: str
    trace: Path

    def mark(self) -> int:
        """Where the trace ends now (give it to :meth:`requests_since`)."""
        return self.trace.stat().st_size if self.trace.exists() else 0

    def requests_since(self, mark: int) -> list[tuple[str, str]]:
        """(operation, SOAP body) of each request received after ``mark``."""
        with self.trace.open("rb") as f:
            f.seek(mark)
            text = f.read().decode("utf-8", "replace")
        found = []
        for chunk in text.split("Request: ")[1:]:
            body = chunk.split("\nResponse: ", 1)[0]
            match = _OPERATION.search(body)
            if match:
                found.append((match.group(1), body))
        return found

    def operations_since(self, mark: int) -> list[str]:
        return [op for op, _ in self.requests_since(mark)]


#: the first element inside a SOAP Body: the operation (vSphere Web Services API method)
_OPERATION = re.compile(r"<(?:\w+:)?Body[^>]*>\s*<(?:\w+:)?(\w+)")


@contextmanager
def running(tmp: Path, user: str = USER, password: str = PASSWORD) -> Iterator[Simulator]:
    """The simulator, on a free loopback port over HTTPS, while the block runs; its SOAP trace in ``tmp``."""
    trace = tmp / "vcsim-trace.log"
    proc = subprocess.Popen(
        [str(build()), "-listen", "127.0.0.1:0", "-user", f"{user}:{password}", "-trace", str(trace)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("https://"):
            pytest.fail(f"vcsim did not start: {line!r}")
        host = line.rsplit("@", 1)[-1]
        yield Simulator(f"https://{host}", trace)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
