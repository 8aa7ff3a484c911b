"""The HTTP server of ``linuxkit serve``: GET and HEAD of the files of one directory.

It is the standard library's :class:`http.server.ThreadingHTTPServer` (one thread a connection) with
our own handler. That is enough here: network boot fetches a handful of large files from a few
machines at a time, and the bytes go from the page cache to the socket with ``sendfile(2)``
(:meth:`socket.socket.sendfile`), never through Python; a thread a connection costs nothing at this
scale. HTTP/1.1 keep-alive lets iPXE and curl reuse a connection; an idle one is closed after
:data:`IDLE_TIMEOUT` seconds.

Answers: a file (``Content-Length``, ``Content-Type`` from its name, ``Last-Modified``,
``Accept-Ranges: bytes``; one ``Range`` -> 206, see :mod:`.ranges`), a directory listing (or its
``index.html``; ``/dir`` is redirected to ``/dir/`` as Go does), the generated ``/NAME.ipxe`` script
(see :mod:`.ipxe`; a real file of that name wins), 400/403/404/405/416 otherwise (see :mod:`.paths`).
One log line a request: client, method, path, status, bytes sent, time.

:meth:`FileServer.close` stops listening and cuts the connections still open (their threads end and
are joined), so nothing is left running when the command returns.
"""

from __future__ import annotations

import contextlib
import email.utils
import html
import http.server
import mimetypes
import os
import socket
import sys
import threading
import time
import urllib.parse
from typing import Any

from .. import log
from ..errors import UserError
from . import ipxe
from .address import HINT, ListenAddress, bind_targets
from .paths import Refused, confine, kind, open_file, request_parts
from .ranges import ByteRange, Unsatisfiable, parse_range

#: seconds an idle keep-alive connection (or a stalled client) is kept
IDLE_TIMEOUT = 60.0

_log_lock = threading.Lock()


def _log_line(text: str) -> None:
    with _log_lock:
        log.info(text)


def content_type(name: str) -> str:
    if name.endswith(ipxe.SCRIPT_SUFFIX):
        return "text/plain; charset=utf-8"
    guessed, encoding = mimetypes.guess_type(name, strict=False)
    if guessed is None or encoding is not None:  # foo.tar.gz is sent as it is stored: bytes
        return "application/octet-stream"
    if guessed.startswith("text/"):
        return guessed + "; charset=utf-8"
    return guessed


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "linuxkit-serve"
    timeout = IDLE_TIMEOUT
    server: _Server

    def version_string(self) -> str:
        return self.server_version  # not the Python version

    def _begin(self, *, body: bool) -> None:
        """Per-request state (a connection carries several requests)."""
        self._started = time.monotonic()
        self._status = 0
        self._sent = 0
        self._body = body
        self._range: ByteRange | None = None
        if self.headers.get("Content-Length", "0").strip() != "0" or "Transfer-Encoding" in self.headers:
            self.close_connection = True  # a request body we do not read: the connection ends with this answer

    # -- request entry points ------------------------------------------------------------------

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _not_allowed(self) -> None:
        self._begin(body=True)
        self._simple(405, "method not allowed\n", {"Allow": "GET, HEAD"})
        self._log_request()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed

    def _answer(self, *, body: bool) -> None:
        self._begin(body=body)
        try:
            self._route()
        except Refused as exc:
            self._simple(exc.status, exc.reason + "\n")
        except OSError as exc:  # the client went away, timed out, or the disk failed
            self.close_connection = True
            if self._status == 0 and not isinstance(exc, ConnectionError):  # nothing sent yet: say why
                with contextlib.suppress(OSError):
                    self._simple(500, f"cannot read the file: {exc.strerror or exc}\n")
        self._log_request()

    # -- routing -------------------------------------------------------------------------------

    def _route(self) -> None:
        root = self.server.root
        parts = request_parts(self.path)
        path = confine(root, parts)
        found = kind(path)
        if found == "file":
            self._send_file(path)
        elif found == "dir":
            if parts and not urllib.parse.urlsplit(self.path).path.endswith("/"):
                self._redirect_to_dir(parts)
            elif kind(index := confine(root, [*parts, "index.html"])) == "file":
                self._send_file(index)
            else:
                self._send_listing(path, parts)
        else:
            script = self._generated_script(parts)
            if script is None:
                raise Refused(404, "not found")
            self._send_bytes(200, script, "text/plain; charset=utf-8")

    def _generated_script(self, parts: list[str]) -> bytes | None:
        """The iPXE script for ``.../NAME.ipxe`` when ``NAME-kernel`` and ``NAME-initrd.img`` are files
        next to it (inside the served directory)."""
        if not parts:
            return None
        name = ipxe.requested_name(parts[-1])
        if name is None:
            return None
        root, where = self.server.root, parts[:-1]
        for suffix in (ipxe.KERNEL_SUFFIX, ipxe.INITRD_SUFFIX):
            try:
                if kind(confine(root, [*where, name + suffix])) != "file":
                    return None
            except Refused:
                return None
        cmdline = ""
        try:
            cmdline_path = confine(root, [*where, name + ipxe.CMDLINE_SUFFIX])
            if kind(cmdline_path) == "file":
                fd, _ = open_file(root, cmdline_path)
                with os.fdopen(fd, "rb") as fh:
                    cmdline = fh.read(ipxe.MAX_CMDLINE).decode("utf-8", errors="replace")
        except Refused:
            pass  # an unreadable or escaping NAME-cmdline: the script without it
        return ipxe.script(name, cmdline).encode()

    # -- answers -------------------------------------------------------------------------------

    def _send_file(self, path: str) -> None:
        fd, st = open_file(self.server.root, path)
        with os.fdopen(fd, "rb", buffering=0) as fh:
            size = st.st_size
            modified = email.utils.formatdate(st.st_mtime, usegmt=True)
            headers = {"Accept-Ranges": "bytes", "Last-Modified": modified}
            wanted = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if if_range is not None and if_range.strip() != modified:
                wanted = None  # the client's copy is of another version: the whole file
            try:
                chosen = parse_range(wanted, size)
            except Unsatisfiable:
                self._simple(416, "range not satisfiable\n", {"Content-Range": f"bytes */{size}", **headers})
                return
            start, length, status = 0, size, 200
            if chosen is not None:
                start, length, status = chosen.start, chosen.length, 206
                headers["Content-Range"] = chosen.content_range(size)
                self._range = chosen
            self._head(status, content_type(os.path.basename(path)), length, headers)
            if self._body and length:
                sent = self.connection.sendfile(fh, offset=start, count=length)
                self._sent = sent
                if sent != length:  # the file shrank while we sent it: the length we announced is wrong
                    self.close_connection = True

    def _send_listing(self, path: str, parts: list[str]) -> None:
        try:
            names = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in os.scandir(path))
        except PermissionError as exc:
            raise Refused(403, "permission denied") from exc
        plain = [n for n in names if not n.endswith("/")]
        generated = [n + ipxe.SCRIPT_SUFFIX for n in ipxe.boot_names(plain) if n + ipxe.SCRIPT_SUFFIX not in plain]
        title = html.escape("/" + "".join(p + "/" for p in parts))
        rows = []
        for name in [*names, *generated]:
            href = urllib.parse.quote(os.fsencode(name))
            shown = html.escape(os.fsencode(name).decode("utf-8", errors="replace"))
            note = " (generated iPXE script)" if name in generated else ""
            rows.append(f'<a href="{href}">{shown}</a>{note}\n')
        text = f"<!doctype html>\n<title>{title}</title>\n<h1>{title}</h1>\n<pre>\n{''.join(rows)}</pre>\n"
        self._send_bytes(200, text.encode(), "text/html; charset=utf-8")

    def _redirect_to_dir(self, parts: list[str]) -> None:
        """To ``/dir/``, written from the decoded segments: never ``//host/``, which a browser would take
        for another server (the open redirect of bpo-43223)."""
        query = urllib.parse.urlsplit(self.path).query
        location = "".join("/" + urllib.parse.quote(os.fsencode(p)) for p in parts) + "/"
        self._simple(301, "moved\n", {"Location": location + (f"?{query}" if query else "")})

    def _send_bytes(self, status: int, data: bytes, ctype: str) -> None:
        self._head(status, ctype, len(data), {})
        if self._body:
            self.wfile.write(data)
            self._sent = len(data)

    def _simple(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        """A short plain-text answer (errors, redirects)."""
        data = text.encode()
        if status == 400:
            self.close_connection = True  # the request was not understood: nor may the next one be
        self._head(status, "text/plain; charset=utf-8", len(data), headers or {})
        if self.command != "HEAD":
            self.wfile.write(data)
            self._sent = len(data)

    def _head(self, status: int, ctype: str, length: int, headers: dict[str, str]) -> None:
        self._status = status
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    # -- logging -------------------------------------------------------------------------------

    def _log_request(self) -> None:
        took = time.monotonic() - self._started
        shown = self.path if self.path.isprintable() else repr(self.path)
        extra = f" bytes={self._range.start}-{self._range.end}" if self._range is not None else ""
        _log_line(f"{self._client()} {self.command} {shown} {self._status} {self._sent} B{extra} {took:.3f}s")

    def _client(self) -> str:
        """The client's address; an IPv4 client of the dual-stack socket as plain IPv4."""
        host = str(self.client_address[0])
        return host[len("::ffff:") :] if host.startswith("::ffff:") and "." in host else host

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # our own line, after the answer (see _log_request)

    def log_message(self, format: str, *args: Any) -> None:
        # what http.server reports by itself: malformed requests (send_error) and timeouts
        _log_line(f"{self._client()} {format % args}")


class _Server(http.server.ThreadingHTTPServer):
    """One listening socket; a thread a connection, each tracked so :meth:`close_all` can end it."""

    daemon_threads = False
    block_on_close = True
    request_queue_size = 64

    def __init__(self, family: socket.AddressFamily, sockaddr: tuple[str, int], root: str) -> None:
        self.address_family = family
        self.root = root
        self.closing = False
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(sockaddr, _Handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and self.server_address[0] == "::":
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 too, as Go
        super().server_bind()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        """End every open connection (a transfer in progress fails; its thread then ends)."""
        self.closing = True
        with self._open_lock:
            live = list(self._open)
        for sock in live:
            with contextlib.suppress(OSError):  # already closed by its client
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if self.closing or isinstance(exc, (ConnectionError, TimeoutError)):
            return
        log.warn(f"{client_address[0]}: {type(exc).__name__}: {exc}")


class FileServer:
    """``directory`` served at ``address``: listening once made (errors are :class:`UserError`); run it
    with :meth:`serve_forever` (the CLI: until Ctrl-C) or :meth:`start` (a thread, for tests and
    benchmarks), and :meth:`close` it."""

    def __init__(self, directory: str, address: ListenAddress) -> None:
        root = os.path.realpath(directory)
        if not os.path.isdir(root):
            raise UserError(
                f"--directory {directory}: no such directory", hint="give the directory to serve, e.g. --directory ."
            )
        self.root = root
        self._server = self._listen(address, root)
        self._thread: threading.Thread | None = None

    @staticmethod
    def _listen(address: ListenAddress, root: str) -> _Server:
        problems = []
        for family, sockaddr in bind_targets(address):
            try:
                return _Server(family, sockaddr, root)
            except OSError as exc:
                problems.append(f"{sockaddr[0]}:{sockaddr[1]}: {exc.strerror or exc}")
        raise UserError(f"cannot listen on {address}: {'; '.join(problems)}", hint=HINT)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    def url(self, host: str | None = None) -> str:
        """The base URL (``host`` instead of the bound address, e.g. for a wildcard bind)."""
        shown = host if host is not None else self.host
        if ":" in shown:
            shown = f"[{shown}]"
        return f"http://{shown}:{self.port}/"

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._server.serve_forever(poll_interval)

    def start(self) -> FileServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="serve", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop listening, cut open connections and join their threads."""
        if self._thread is not None and self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.cut_connections()
        self._server.server_close()

    def __enter__(self) -> FileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
