"""``linuxkit serve`` on the command line: its flags (upstream's), its errors, start-up cost, and a clean
stop on Ctrl-C/SIGTERM. Each runs the real CLI in a subprocess."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

LK = [sys.executable, "-m", "linuxkit.cli.main"]


def test_help_names_upstreams_flags_and_defaults() -> None:
    out = subprocess.run([*LK, "serve", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--port" in out and ":8080" in out
    assert "--directory" in out


def test_version_does_not_import_serve() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "linuxkit.cli.main", "version"], capture_output=True, text=True
    )
    assert proc.returncode == 0
    assert "serve" not in proc.stderr


def test_the_cli_module_loads_the_server_only_when_serving() -> None:
    code = (
        "import json, sys, argparse; import linuxkit.cli.serve_cmd as m; p = argparse.ArgumentParser(); m.flags(p); "
        "print(json.dumps(sorted(n for n in sys.modules if n.startswith('linuxkit.serve') or n == 'http.server')))"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert loaded == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--port", "nonsense"], "missing port in address"),
        (["--port", "127.0.0.1:0", "--directory", "/nonexistent/dir"], "no such directory"),
    ],
)
def test_user_errors_exit_2_with_a_hint(args: list[str], says: str) -> None:
    proc = subprocess.run([*LK, "serve", *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr and "hint:" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serves_until_interrupted_then_exits_0(tmp_path: Path, sig: signal.Signals) -> None:
    (tmp_path / "a-kernel").write_bytes(b"k")
    (tmp_path / "a-initrd.img").write_bytes(b"i")
    proc = subprocess.Popen(
        [*LK, "serve", "--port", "127.0.0.1:0", "--directory", str(tmp_path)], stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        found = re.search(r"on http://127\.0\.0\.1:(\d+)/", first)
        assert found, first
        url = f"http://127.0.0.1:{found.group(1)}/"
        assert f"iPXE: chain {url}a.ipxe" in proc.stderr.readline()
        assert urllib.request.urlopen(url + "a-kernel", timeout=10).read() == b"k"
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
        rest = proc.stderr.read()
        assert "GET /a-kernel 200 1 B" in rest
        assert f"stopped ({sig.name})" in rest and "Traceback" not in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
