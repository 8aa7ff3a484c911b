"""The HTTP metadata service on a Unix socket (one request a connection, each answered by the provider's
function) and its access log, ``STATE/metadata.log``."""

from __future__ import annotations

import http.server
import os
import shutil
import socketserver
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import UserError
from .answers import Answer, Request
from .instance import Instance
from .providers import PROVIDER_HINT, PROVIDERS, make_answerer

#: notable request headers, written to the access log (values of tokens are not)
_LOGGED_HEADERS = (
    "X-aws-ec2-metadata-token",
    "X-aws-ec2-metadata-token-ttl-seconds",
    "Metadata-Flavor",
    "Metadata",
    "X-Forwarded-For",
)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request a connection: each connection is one relay process
    server_version = "linuxkit-metadata"

    def _serve(self) -> None:
        server = self.server
        assert isinstance(server, _UnixHTTPServer)
        headers = {k.lower(): v for k, v in self.headers.items()}
        length = headers.get("content-length", "0").strip()
        if length.isdigit() and int(length) > 0:
            self.rfile.read(min(int(length), 1 << 20))  # a body is read (and ignored) before the answer
        req = Request(self.command, self.path, headers)
        try:
            answer = server.answer(req)
        except Exception as exc:  # a bug here must not take the VM's metadata down: answer 500 and log it
            answer = Answer(500, f"internal error: {exc}\n".encode())
        server.log_request_line(req, answer)
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # our own access log instead (log_request_line)

    def address_string(self) -> str:
        return "guest"


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, answer: Callable[[Request], Answer], log_path: Path | None) -> None:
        self.answer = answer
        self._log_path = log_path
        self._log_lock = threading.Lock()
        if log_path is not None:
            log_path.write_text("")  # this run's requests only
        super().__init__(path, _Handler)

    def log_request_line(self, req: Request, answer: Answer) -> None:
        if self._log_path is None:
            return
        notable = [h for h in _LOGGED_HEADERS if req.header(h) is not None]
        line = f"{req.method} {req.target} {answer.status}" + (" [" + " ".join(notable) + "]" if notable else "")
        with self._log_lock, open(self._log_path, "a") as fh:
            fh.write(line + "\n")


def socket_directory() -> str:
    """A new private directory (mode 0700: only this user reaches the socket) for the server's socket."""
    return tempfile.mkdtemp(prefix="linuxkit-md-")


class MetadataServer:
    """The HTTP metadata service of one provider on a Unix socket; :meth:`start` and :meth:`stop` (or a
    ``with`` block) bound its life."""

    def __init__(
        self, provider: str, inst: Instance, log_path: Path | None = None, directory: str | None = None
    ) -> None:
        """``directory``: an empty private directory for the socket (made by :func:`socket_directory`),
        removed by :meth:`stop`; default: a new one."""
        if PROVIDERS.get(provider) != "http":
            raise UserError(f"{provider} is not served over HTTP", hint=PROVIDER_HINT)
        self.provider = provider
        self._dir = directory or socket_directory()
        self.socket_path = os.path.join(self._dir, "http.sock")
        self._server = _UnixHTTPServer(self.socket_path, make_answerer(provider, inst), log_path)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="metadata", daemon=True
        )

    def start(self) -> MetadataServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> MetadataServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
