"""``linuxkit cache pull`` starts fast: a real pull (from a tiny local registry) imports no HTTP library,
no rich (stderr is not a terminal), no thread pool, no TLS and no decompressor."""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

#: what the pull path must not import (each costs milliseconds of start-up)
NOT_ON_PULL_PATH = (
    "requests",
    "urllib3",
    "rich",
    "concurrent.futures",
    "ssl",
    "email",
    "http.client",
    "pydantic",
    "yaml",
    "isal",
    "gzip",
    "zstandard",
    "linuxkit.config",
    "linuxkit.build",
)


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def tiny_registry() -> Iterator[str]:
    """A read-only registry serving ``tiny:1`` (one layer); yields the reference."""
    layer = b"not really a tar, but a blob all the same" * 100
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest(config.encode()),
                "size": len(config),
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(layer), "size": len(layer)}
            ],
        }
    ).encode()
    content = {
        "/v2/": (b"{}", "application/json"),
        "/v2/tiny/manifests/1": (manifest, "application/vnd.oci.image.manifest.v1+json"),
        f"/v2/tiny/blobs/{digest(config.encode())}": (config.encode(), "application/octet-stream"),
        f"/v2/tiny/blobs/{digest(layer)}": (layer, "application/octet-stream"),
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            data, kind = content.get(self.path, (b"", ""))
            self.send_response(200 if kind else 404)
            self.send_header("Content-Type", kind or "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}/tiny:1"
    finally:
        server.shutdown()
        server.server_close()


def test_cache_pull_imports_only_what_it_needs(tiny_registry: str, tmp_path: Path) -> None:
    script = (
        "import json, sys\n"
        "from linuxkit.cli.main import main\n"
        f"code = main(['--cache', {str(tmp_path / 'cache')!r}, 'cache', 'pull', {tiny_registry!r}])\n"
        "print(json.dumps([code, sorted(sys.modules)]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    code, modules = json.loads(proc.stdout.splitlines()[-1])
    assert code == 0, proc.stderr
    assert f"{tiny_registry.replace(':1', '')}:1 sha256:" in proc.stderr  # it did pull
    assert "linuxkit.http.transport" in modules
    heavy = sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in NOT_ON_PULL_PATH))
    assert heavy == []
