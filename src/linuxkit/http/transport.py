"""One HTTP/1.1 connection layer (standard library sockets only; start-up time matters).

What registries, the Debian archive and YAML URLs need and nothing else: persistent connections
reused per host (thread-safe pool), TLS (``ssl`` imported only for HTTPS; the system's CA store plus
extra CA files, or no checks), proxies from the environment (``http_proxy``, ``https_proxy``,
``all_proxy``, ``no_proxy``; HTTPS through a proxy is tunnelled with ``CONNECT``), Content-Length,
chunked and until-close bodies, and responses read with ``readinto`` straight into the caller's
buffer.

Redirects and retries are :class:`~linuxkit.http.client.HttpClient`'s; auth is the caller's (the
registry client). Connection-level failures are :class:`TransportError` (an ``OSError``), like the
socket errors they wrap; a body that ends before its length is :class:`IncompleteRead`.
"""

from __future__ import annotations

import os
import select
import socket
import threading
from collections.abc import Iterable, Mapping
from typing import IO, TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    import io
    import ssl

#: What a request body may be: bytes, an open binary file (sent to its end), or a form (urlencoded).
BodyData = bytes | IO[bytes] | Mapping[str, str] | None
USER_AGENT = "linuxkit"
_LINE_LIMIT = 65536
_MAX_HEADERS = 200
_BUFFER = 64 << 10


class TransportError(OSError):
    """The connection failed or the peer answered something that is not HTTP.

    ``attempts``: how many times the request was sent before giving up (set by the retry loop).
    """

    attempts = 1


class IncompleteRead(TransportError):
    """The body ended before the length the response announced."""


class NoAnswer(TransportError):
    """The connection broke before any answer came: safe to send again on a new connection."""


class Unresolvable(TransportError):
    """The host name does not resolve (retrying will not help)."""


class CertificateError(TransportError):
    """The server's TLS certificate was refused (retrying will not help)."""


class Headers:
    """Response headers, looked up case-insensitively (repeated fields joined with ``, ``)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in items:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        key = name.lower()
        if key in self._items:
            value = f"{self._items[key][1]}, {value}"
        self._items[key] = (name, value)

    def get(self, name: str, default: str | None = None) -> str | None:
        found = self._items.get(name.lower())
        return found[1] if found is not None else default

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def items(self) -> list[tuple[str, str]]:
        return list(self._items.values())

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


class BodyStream(Protocol):
    """Where a response's body comes from: ``readinto`` returns 0 at its end."""

    def readinto(self, buffer: memoryview) -> int: ...

    def close(self) -> None: ...


class Response:
    """Status, headers and a body read with :meth:`readinto` (or :meth:`read`); :meth:`close` it."""

    def __init__(self, status: int, headers: Headers, body: BodyStream | None = None, url: str = "") -> None:
        self.status_code = status
        self.headers = headers
        self.url = url
        self._body = body
        self._error: OSError | None = None

    @classmethod
    def of_bytes(cls, status: int, headers: Mapping[str, str], data: bytes = b"", url: str = "") -> Response:
        """A complete in-memory response (for fakes and tests)."""
        return cls(status, Headers(headers.items()), _BytesBody(data), url)

    def readinto(self, buffer: memoryview | bytearray) -> int:
        """Up to ``len(buffer)`` bytes of the body (fewer only at its end); 0 when it has ended.

        When the transfer breaks after some bytes, those are returned and the error is raised by
        the next call (a resumed download keeps every byte that arrived).
        """
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self._body is None:
            return 0
        view = buffer if isinstance(buffer, memoryview) else memoryview(buffer)
        filled = 0
        while filled < len(view):
            try:
                n = self._body.readinto(view[filled:])
            except OSError as exc:
                if not filled:
                    raise
                self._error = exc
                break
            if not n:
                break
            filled += n
        return filled

    def read(self, limit: int = -1) -> bytes:
        """The rest of the body (at most ``limit + 1`` bytes when ``limit`` >= 0, so a caller can tell
        that it is too long), decoded when the server compressed it."""
        chunks: list[bytes] = []
        size = 0
        buffer = bytearray(_BUFFER)
        view = memoryview(buffer)
        while limit < 0 or size <= limit:
            n = self.readinto(view)
            if not n:
                break
            chunks.append(bytes(view[:n]))
            size += n
        data = b"".join(chunks)
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            import zlib

            try:
                # bounded as the body is: a small compressed body may expand a thousandfold
                data = zlib.decompressobj(zlib.MAX_WBITS | 32).decompress(data, limit + 1 if limit >= 0 else 0)
            except zlib.error as exc:
                raise TransportError(f"bad {encoding} body: {exc}") from exc
        return data

    def json(self, limit: int = 4 << 20) -> Any:
        """The body as JSON (at most ``limit`` bytes, nested at most a little); ``ValueError`` when
        it is not."""
        from ..oci.jsonfmt import loads

        return loads(self.read(limit), "the answer", max_size=limit)

    def close(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            body.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _BytesBody:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def readinto(self, buffer: memoryview) -> int:
        n = min(len(buffer), len(self._data) - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        pass


class Transport(Protocol):
    """Sends one request and returns the answer (no redirects, auth or retries): the test seam."""

    def send(
        self, method: str, url: str, headers: Mapping[str, str], body: BodyData, *, timeout: float, verify: bool
    ) -> Response: ...

    def close(self) -> None: ...


# -- URLs ------------------------------------------------------------------------------------------


def split_url(url: str) -> tuple[str, str, int, str]:
    """``(scheme, host, port, target)`` of an absolute http(s) URL; ``target`` is path and query."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https"):
        raise TransportError(f"not an http(s) URL: {url!r}")
    netloc, slash, path = rest.partition("/")
    netloc = netloc.partition("#")[0]
    target = (slash + path).partition("#")[0] or "/"
    if "?" in netloc:  # ``http://host?query``
        netloc, _, query = netloc.partition("?")
        target = "/?" + query
    netloc = netloc.rpartition("@")[2]
    default = 443 if scheme == "https" else 80
    if netloc.startswith("["):
        host, _, port_text = netloc[1:].partition("]")
        port_text = port_text.removeprefix(":")
    else:
        host, _, port_text = netloc.partition(":")
    if not host:
        raise TransportError(f"no host in URL {url!r}")
    try:
        port = int(port_text) if port_text else default
    except ValueError:
        raise TransportError(f"bad port in URL {url!r}") from None
    return scheme, host, port, target


def origin(url: str) -> tuple[str, str, int]:
    scheme, host, port, _ = split_url(url)
    return scheme, host.lower(), port


def join_url(base: str, location: str) -> str:
    """``location`` (absolute, ``//host/...``, ``/path`` or relative) resolved against ``base``."""
    if "://" in location.partition("?")[0]:
        return location
    scheme, _, rest = base.partition("://")
    netloc = rest.partition("/")[0].partition("?")[0]
    if location.startswith("//"):
        return f"{scheme}:{location}"
    if location.startswith("/"):
        return f"{scheme}://{netloc}{location}"
    path = "/" + rest[len(netloc) :].lstrip("/").partition("?")[0]
    directory = path.rpartition("/")[0]
    if location.startswith("?"):
        return f"{scheme}://{netloc}{path}{location}"
    parts: list[str] = []
    for part in f"{directory}/{location}".split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return f"{scheme}://{netloc}" + "/".join(parts)


def _host_header(host: str, port: int, scheme: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port == (443 if scheme == "https" else 80) else f"{shown}:{port}"


# -- proxies ---------------------------------------------------------------------------------------


def _env(name: str, environ: Mapping[str, str]) -> str:
    return environ.get(name.lower()) or environ.get(name.upper()) or ""


def proxy_for(scheme: str, host: str, port: int, environ: Mapping[str, str] | None = None) -> str | None:
    """The proxy URL the environment names for ``scheme://host:port``, as curl and requests read it."""
    env = os.environ if environ is None else environ
    proxy = _env(f"{scheme}_proxy", env) or _env("all_proxy", env)
    if not proxy or _bypassed(host, port, _env("no_proxy", env)):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _bypassed(host: str, port: int, no_proxy: str) -> bool:
    host = host.lower()
    for item in no_proxy.replace(" ", ",").split(","):
        item = item.strip().lower()
        if not item:
            continue
        if item == "*":
            return True
        name, _, item_port = item.rpartition(":") if item.count(":") == 1 else (item, "", "")
        if item_port and item_port != str(port):
            continue
        name = name.strip("[]").removeprefix("*").lstrip(".")  # ".x", "*.x" and "x" match x and below
        if host == name or host.endswith("." + name):
            return True
    return False


# -- connections -----------------------------------------------------------------------------------


class _Connection:
    """One socket to one origin (possibly through a proxy), with a read buffer."""

    def __init__(self, sock: socket.socket, key: tuple[Any, ...]) -> None:
        self.sock = sock
        self.key = key
        self.rfile = cast("io.BufferedReader", sock.makefile("rb", buffering=_BUFFER))

    def dropped(self) -> bool:
        """Whether an idle connection was closed by the peer (readable means EOF or junk)."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        try:
            self.rfile.close()
        finally:
            self.sock.close()


class _ConnectionBody:
    """The body of one response on a connection: framing, then the connection back to the pool."""

    def __init__(self, transport: HttpTransport, conn: _Connection, length: int | None, chunked: bool) -> None:
        self._transport = transport
        self._conn: _Connection | None = conn
        self._remaining = length  # bytes left (of the body, or of the current chunk); None: to EOF
        self._chunked = chunked
        self._chunk_open = False
        self.reusable = length is not None or chunked

    def readinto(self, buffer: memoryview) -> int:
        conn = self._conn
        if conn is None:
            return 0
        try:
            return self._readinto(conn, buffer)
        except OSError as exc:
            self._conn = None
            conn.close()
            if isinstance(exc, TransportError):
                raise
            raise TransportError(f"reading the body: {_reason(exc)}") from exc

    def _readinto(self, conn: _Connection, buffer: memoryview) -> int:
        if self._chunked and not self._chunk_open:
            size = self._next_chunk(conn)
            if size == 0:
                self._finish()
                return 0
            self._remaining, self._chunk_open = size, True
        want = len(buffer) if self._remaining is None else min(len(buffer), self._remaining)
        n = conn.rfile.readinto1(buffer[:want])  # what has arrived: a break loses nothing received
        if not n:
            if self._remaining is None:
                self._finish()
                return 0
            raise IncompleteRead(f"connection closed with {self._remaining} bytes of the body still to come")
        if self._remaining is not None:
            self._remaining -= n
            if self._remaining == 0:
                if self._chunked:
                    self._chunk_open = False
                    _expect_crlf(conn)
                else:
                    self._finish()
        return n

    def _next_chunk(self, conn: _Connection) -> int:
        line = conn.rfile.readline(_LINE_LIMIT)
        if not line:
            raise IncompleteRead("connection closed inside a chunked body")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise TransportError(f"bad chunk size line {line[:40]!r}") from None
        if size == 0:
            while True:  # trailers end with an empty line
                trailer = conn.rfile.readline(_LINE_LIMIT)
                if trailer in (b"\r\n", b"\n", b""):
                    break
        return size

    def _finish(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._transport.release(conn, reuse=self.reusable)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:  # not read to its end: the connection cannot carry another request
            conn.close()


def _expect_crlf(conn: _Connection) -> None:
    if conn.rfile.readline(_LINE_LIMIT) not in (b"\r\n", b"\n"):
        raise TransportError("malformed chunked body")


class HttpTransport:
    """Connections to any number of hosts, kept open and reused (one request at a time each)."""

    def __init__(self, *, ca_files: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> None:
        self._ca_files = tuple(ca_files)
        self._environ = environ
        self._idle: dict[tuple[Any, ...], list[_Connection]] = {}
        self._lock = threading.Lock()
        self._contexts: dict[bool, ssl.SSLContext] = {}
        self._closed = False

    # -- pool --------------------------------------------------------------------------------------

    def _take(self, key: tuple[Any, ...]) -> _Connection | None:
        while True:
            with self._lock:
                idle = self._idle.get(key)
                conn = idle.pop() if idle else None
            if conn is None or not conn.dropped():
                return conn
            conn.close()

    def release(self, conn: _Connection, *, reuse: bool) -> None:
        if reuse and not self._closed:
            with self._lock:
                self._idle.setdefault(conn.key, []).append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for conn in conns:
            conn.close()

    # -- requests ----------------------------------------------------------------------------------

    def send(
        self, method: str, url: str, headers: Mapping[str, str], body: BodyData, *, timeout: float, verify: bool
    ) -> Response:
        scheme, host, port, target = split_url(url)
        proxy = proxy_for(scheme, host, port, self._environ)
        key = (scheme, host.lower(), port, verify, proxy)
        data, length = _encode_body(body, headers)
        lines = [f"{method} {url if proxy and scheme == 'http' else target} HTTP/1.1"]
        lines.append(f"Host: {_host_header(host, port, scheme)}")
        given = {k.lower() for k in headers}
        if "user-agent" not in given:
            lines.append(f"User-Agent: {USER_AGENT}")
        if "accept-encoding" not in given:
            lines.append("Accept-Encoding: identity")
        if proxy and scheme == "http" and (auth := _proxy_auth(proxy)):
            lines.append(f"Proxy-Authorization: {auth}")
        lines += [f"{k}: {v}" for k, v in headers.items() if "\n" not in v and "\r" not in v]
        if "content-length" not in given and (length is not None or method in ("POST", "PUT", "PATCH")):
            lines.append(f"Content-Length: {length or 0}")
        if isinstance(data, bytes) and "content-type" not in given and isinstance(body, Mapping):
            lines.append("Content-Type: application/x-www-form-urlencoded")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        conn = self._take(key)
        if conn is not None:
            try:
                return self._exchange(conn, method, head, data, timeout, url)
            except NoAnswer:
                if not _rewindable(data):
                    raise
                # the server closed the idle connection just as it was reused: once more on a new one
        conn = self._connect(scheme, host, port, proxy, key, timeout, verify)
        return self._exchange(conn, method, head, data, timeout, url)

    def _exchange(
        self, conn: _Connection, method: str, head: bytes, data: bytes | IO[bytes] | None, timeout: float, url: str
    ) -> Response:
        try:
            conn.sock.settimeout(timeout)
            start = data.tell() if data is not None and not isinstance(data, bytes) else 0
            try:
                if isinstance(data, bytes) and len(data) <= _BUFFER:
                    conn.sock.sendall(head + data)
                else:
                    conn.sock.sendall(head)
                    if isinstance(data, bytes):
                        conn.sock.sendall(data)
                    elif data is not None:
                        conn.sock.sendfile(data)
                status, headers = _read_head(conn)
            except OSError as exc:
                if data is not None and not isinstance(data, bytes) and data.seekable():
                    data.seek(start)
                if isinstance(exc, TransportError):
                    raise
                if isinstance(exc, TimeoutError):
                    raise TransportError(f"no answer within {timeout:g}s") from exc
                raise NoAnswer(f"{type(exc).__name__}: {_reason(exc)}") from exc
            length, chunked = _framing(method, status, headers)
        except BaseException:
            conn.close()
            raise
        reusable = (headers.get("Connection") or "").lower() != "close"
        if length == 0 and not chunked:
            self.release(conn, reuse=reusable)
            return Response(status, headers, None, url)
        body = _ConnectionBody(self, conn, length, chunked)
        body.reusable = body.reusable and reusable
        return Response(status, headers, body, url)

    def _connect(
        self, scheme: str, host: str, port: int, proxy: str | None, key: tuple[Any, ...], timeout: float, verify: bool
    ) -> _Connection:
        via = split_url(proxy)[1:3] if proxy else (host, port)
        try:
            sock = socket.create_connection(_address(*via), timeout=timeout)
        except OSError as exc:
            where = f"proxy {via[0]}:{via[1]}" if proxy else f"{host}:{port}"
            kind = Unresolvable if isinstance(exc, socket.gaierror) else TransportError
            raise kind(f"cannot connect to {where}: {_reason(exc)}") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                if proxy:
                    _tunnel(sock, host, port, proxy)
                sock = self._context(verify).wrap_socket(sock, server_hostname=host)
        except BaseException as exc:
            sock.close()
            if isinstance(exc, OSError) and not isinstance(exc, TransportError):
                kind = CertificateError if type(exc).__name__ == "SSLCertVerificationError" else TransportError
                raise kind(f"{host}:{port}: {_reason(exc)}") from exc
            raise
        return _Connection(sock, key)

    def _context(self, verify: bool) -> ssl.SSLContext:
        with self._lock:
            context = self._contexts.get(verify)
            if context is None:
                import ssl

                context = ssl.create_default_context()
                if verify:
                    for path in self._ca_files:
                        context.load_verify_locations(cafile=path)
                else:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                self._contexts[verify] = context
            return context


def _address(host: str, port: int) -> tuple[Any, int]:  # bytes works; typeshed says str
    """An ASCII host name as bytes: ``getaddrinfo`` would import the ``idna`` codec for a str."""
    return (host.encode(), port) if host.isascii() else (host, port)


def _reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return f"host name does not resolve ({exc.strerror})"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if getattr(exc, "verify_message", None):  # ssl.SSLCertVerificationError
        return f"certificate not trusted: {exc.verify_message}"  # type: ignore[attr-defined]
    return getattr(exc, "reason", None) or exc.strerror or str(exc) or type(exc).__name__


def _rewindable(data: bytes | IO[bytes] | None) -> bool:
    return data is None or isinstance(data, bytes) or data.seekable()


def _encode_body(body: BodyData, headers: Mapping[str, str]) -> tuple[bytes | IO[bytes] | None, int | None]:
    if body is None:
        return None, None
    if isinstance(body, bytes):
        return body, len(body)
    if isinstance(body, Mapping):
        from urllib.parse import urlencode

        encoded = urlencode(list(body.items())).encode()
        return encoded, len(encoded)
    given = next((v for k, v in headers.items() if k.lower() == "content-length"), None)
    if given is not None:
        return body, int(given)
    return body, os.fstat(body.fileno()).st_size - body.tell()


def _read_head(conn: _Connection) -> tuple[int, Headers]:
    while True:
        line = conn.rfile.readline(_LINE_LIMIT + 1)
        if not line:
            raise NoAnswer("the server closed the connection without answering")
        parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise TransportError(f"not an HTTP answer: {line[:60]!r}")
        status = int(parts[1])
        headers = _read_headers(conn)
        if status != 100 and not 102 <= status < 200:
            return status, headers


def _read_headers(conn: _Connection) -> Headers:
    headers = Headers()
    for _ in range(_MAX_HEADERS):
        line = conn.rfile.readline(_LINE_LIMIT + 1)
        if len(line) > _LINE_LIMIT:
            raise TransportError("header line too long")
        if line in (b"\r\n", b"\n", b""):
            return headers
        name, colon, value = line.decode("latin-1").partition(":")
        if colon:
            headers.add(name.strip(), value.strip())
    raise TransportError("too many headers")


def _framing(method: str, status: int, headers: Headers) -> tuple[int | None, bool]:
    """``(length, chunked)``: the body's length (None: until the connection closes)."""
    if method == "HEAD" or status in (204, 304):
        return 0, False
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        return None, True
    text = headers.get("Content-Length")
    if text is not None:
        try:
            length = int(text.split(",")[0].strip())
        except ValueError:
            raise TransportError(f"bad Content-Length {text!r}") from None
        if length < 0:
            raise TransportError(f"bad Content-Length {text!r}")
        return length, False
    return None, False


def _proxy_auth(proxy: str) -> str | None:
    netloc = proxy.partition("://")[2].partition("/")[0]
    if "@" not in netloc:
        return None
    import base64
    from urllib.parse import unquote

    userinfo = netloc.rpartition("@")[0]
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
    return f"Basic {token}"


def _tunnel(sock: socket.socket, host: str, port: int, proxy: str) -> None:
    """``CONNECT host:port`` through an HTTP proxy; the socket then carries TLS to ``host``."""
    authority = _host_header(host, port, "")
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if auth := _proxy_auth(proxy):
        lines.append(f"Proxy-Authorization: {auth}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    reader = cast("io.RawIOBase", sock.makefile("rb", buffering=0))
    try:
        status_line = _readline_raw(reader)
        parts = status_line.split(b" ", 2)
        while _readline_raw(reader) not in (b"\r\n", b"\n", b""):
            pass
    finally:
        reader.close()
    if len(parts) < 2 or not parts[1].startswith(b"2"):
        raise TransportError(f"proxy {proxy} refused CONNECT {authority}: {status_line.decode('latin-1').strip()}")


def _readline_raw(reader: io.RawIOBase) -> bytes:
    """One line, read byte by byte (the TLS stream that follows must not be buffered away)."""
    out = bytearray()
    while len(out) < _LINE_LIMIT:
        byte = reader.read(1)
        if not byte:
            break
        out += byte
        if byte == b"\n":
            break
    return bytes(out)


# -- does it speak TLS? ----------------------------------------------------------------------------

_TLS12_SUITES = (0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0x009C, 0x009D, 0x002F, 0x0035)
_SIGNATURE_ALGORITHMS = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601)


def _extension(kind: int, data: bytes) -> bytes:
    return kind.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data


def client_hello(server_name: str | None) -> bytes:
    """A TLS 1.2 ClientHello record (what any TLS server answers, if only with an alert)."""
    suites = b"".join(s.to_bytes(2, "big") for s in _TLS12_SUITES)
    groups = b"".join(g.to_bytes(2, "big") for g in (0x001D, 0x0017, 0x0018))
    algorithms = b"".join(a.to_bytes(2, "big") for a in _SIGNATURE_ALGORITHMS)
    extensions = _extension(0x000A, len(groups).to_bytes(2, "big") + groups)
    extensions += _extension(0x000B, b"\x01\x00")
    extensions += _extension(0x000D, len(algorithms).to_bytes(2, "big") + algorithms)
    if server_name:
        name = server_name.encode("idna")
        entry = b"\x00" + len(name).to_bytes(2, "big") + name
        extensions += _extension(0x0000, len(entry).to_bytes(2, "big") + entry)
    body = b"\x03\x03" + os.urandom(32) + b"\x00"
    body += len(suites).to_bytes(2, "big") + suites + b"\x01\x00"
    body += len(extensions).to_bytes(2, "big") + extensions
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(handshake).to_bytes(2, "big") + handshake


def speaks_tls(host: str, port: int, timeout: float) -> bool:
    """Whether ``host:port`` answers a TLS ClientHello with TLS (a handshake or an alert record).

    Decides between HTTPS and plain HTTP for hosts that may use either without importing ``ssl``
    or loading CA certificates (start-up time); a plain HTTP server answers with an HTTP error or
    closes. Connection failures are :class:`TransportError`.
    """
    try:
        with socket.create_connection(_address(host, port), timeout=timeout) as sock:
            sock.sendall(client_hello(None if _is_ip(host) else host))
            first = sock.recv(3)
    except OSError as exc:
        kind = Unresolvable if isinstance(exc, socket.gaierror) else TransportError
        raise kind(f"cannot connect to {host}:{port}: {_reason(exc)}") from exc
    return len(first) >= 2 and first[0] in (0x15, 0x16) and first[1] == 0x03


def _is_ip(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return True
        except (OSError, ValueError):
            continue
    return False
