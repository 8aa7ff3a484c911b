"""A loopback HTTP(S) server that records every request and answers through a test's handler: the core of the
stand-ins for cloud APIs that have no emulator (Scaleway, Equinix Metal, and the fakes of Compute Engine, OpenStack
and Azure Resource Manager built on it). The tests check the recorded requests (method, path, query, headers, body)
against the provider's published API reference, and the handler answers with the documented resources."""

from __future__ import annotations

import http.server
import io
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    #: what was sent: a JSON body decoded, a form as ``parse_qs`` gives it, other bytes as they are, ``None`` when
    #: there were none or the body is streamed (a handler may replace it with what it makes of it)
    body: Any = None
    #: the bytes as sent (empty for a streamed body)
    raw: bytes = b""
    #: ``Content-Length``
    size: int = 0
    _stream: io.BufferedIOBase | None = field(default=None, repr=False)
    _left: int = field(default=0, repr=False)

    def json(self) -> Any:
        return json.loads(self.raw)

    def read(self, n: int = -1) -> bytes:
        """A streamed body, ``n`` bytes of it at most (all that is left by default)."""
        if self._stream is None:
            return b""
        n = self._left if n < 0 else min(n, self._left)
        data = self._stream.read(n)
        self._left -= len(data)
        return data


def decode(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    if "json" in content_type:
        return json.loads(raw)
    if content_type.startswith("application/x-www-form-urlencoded"):
        return parse_qs(raw.decode())
    return raw


class HangUp(Exception):
    """Raised by a handler: the connection is closed without an answer, as a dropped network would."""


#: (request) → (status, payload) or (status, payload, headers). The payload is sent as JSON, but ``None`` (no body),
#: ``bytes`` (as they are) and ``str`` (``text/plain``); the headers are added (a ``Content-Type`` among them wins).
Answer = tuple[int, Any] | tuple[int, Any, dict[str, str]]
Handler = Callable[[Request], Answer]


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


def encode(payload: Any) -> tuple[bytes, str]:
    """The body and content type of an answer's payload."""
    if payload is None:
        return b"", ""
    if isinstance(payload, bytes):
        return payload, "application/octet-stream"
    if isinstance(payload, str):
        return payload.encode(), "text/plain"
    return json.dumps(payload).encode(), "application/json"


@contextmanager
def recording_server(
    handler: Handler,
    *,
    requests: list[Request] | None = None,
    tls: tuple[Path, Path] | None = None,
    streamed: Callable[[Request], bool] = lambda r: False,
) -> Iterator[Recorder]:
    """The server on a free loopback port, recording into ``requests`` (a new list by default). ``tls``: the
    certificate and key to serve HTTPS with. ``streamed``: which requests' bodies the handler reads itself
    (``Request.read``; what it leaves is read after it)."""
    recorder = Recorder(handler, [] if requests is None else requests)
    lock = threading.Lock()

    class Handle(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            size = int(headers.get("content-length") or 0)
            request = Request(self.command, parts.path, parse_qs(parts.query), headers, size=size)
            if streamed(request):
                request._stream, request._left = self.rfile, size
            else:
                request.raw = self.rfile.read(size) if size else b""
                request.body = decode(request.raw, headers.get("content-type", ""))
            with lock:
                recorder.requests.append(request)
                try:
                    status, payload, *extra = recorder.handler(request)
                except HangUp:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                except Exception as exc:  # a handler's assertion: answer 418 (not retried) so the client fails loudly
                    status, payload, extra = 418, {"message": f"fake: {exc!r}"}, []
            request.read()
            data, kind = encode(payload)
            answer_headers = {"Content-Type": kind} if kind else {}
            answer_headers.update(*extra)
            self.send_response(status)
            for name, value in answer_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handle)
    scheme = "http"
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    recorder.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Fake:
    """A stand-in that keeps state between requests (a subclass's fields) and answers them in ``answer``;
    ``serve`` records into ``requests`` and sets ``url``."""

    requests: list[Request] = field(default_factory=list)
    url: str = ""

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def base(self) -> str:
        return self.url + "/"

    def answer(self, req: Request) -> Answer:
        raise NotImplementedError


F = TypeVar("F", bound=Fake)


@contextmanager
def serve(fake: F, **options: Any) -> Iterator[F]:
    """``fake`` on a ``recording_server`` (``options``: its ``tls`` and ``streamed``)."""
    with recording_server(fake.answer, requests=fake.requests, **options) as server:
        fake.url = server.url
        yield fake
