"""A loopback HTTP server that records every request and answers through a test's handler: the stand-in for cloud
APIs that have no emulator (Scaleway, Equinix Metal). The tests check the recorded requests (method, path, query,
headers, JSON body) against the provider's published API reference, and the handler answers with the documented
resources."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


#: (request) → (status, JSON payload or None, extra headers)
Handler = Callable[[Request], tuple[int, Any]]


@dataclass
class Recorder:
    handler: Handler
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    def calls(self) -> list[tuple[str, str]]:
        """``(method, path)`` of every request but ``HEAD``\\ s, in order."""
        return [(r.method, r.path) for r in self.requests if r.method != "HEAD"]

    def find(self, method: str, path: str) -> Request:
        found = [r for r in self.requests if r.method == method and r.path == path]
        assert len(found) == 1, (method, path, self.calls())
        return found[0]


@contextmanager
def recording_server(handler: Handler) -> Iterator[Recorder]:
    recorder = Recorder(handler)
    lock = threading.Lock()

    class Handle(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            request = Request(
                self.command, parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()}, body
            )
            with lock:
                recorder.requests.append(request)
                try:
                    status, payload = recorder.handler(request)
                except Exception as exc:  # a handler's assertion: answer 418 (not retried) so the client fails loudly
                    status, payload = 418, {"message": f"fake: {exc!r}"}
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handle)
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
