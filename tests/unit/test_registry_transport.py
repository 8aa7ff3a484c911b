"""The registry's HTTP transport against small local servers: body framing, connection reuse,
broken bodies, redirects (no Authorization to another host), proxies, TLS detection and TLS."""

from __future__ import annotations

import http.server
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from linuxkit.http.transport import (
    CertificateError,
    HttpTransport,
    IncompleteRead,
    TransportError,
    join_url,
    proxy_for,
    speaks_tls,
    split_url,
)
from linuxkit.oci.registry import RegistryOptions
from linuxkit.oci.registry.client import Client

BODY = bytes(range(256)) * 1000


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, str | None, int]]  # path, request line, Authorization, client port
    other: str = ""  # host:port of another server, for cross-host redirects

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append((self.path, self.requestline, self.headers.get("Authorization"), self.client_address[1]))
        path = self.path.split("?")[0].removeprefix(f"http://{self.headers['Host']}")
        if path == "/len":
            self.reply(200, {"Content-Length": str(len(BODY))}, BODY)
        elif path == "/empty":
            self.reply(204, {}, b"")
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(BODY), 70000):
                piece = BODY[i : i + 70000]
                self.wfile.write(f"{len(piece):x};ext=1\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\nX-Trailer: 1\r\n\r\n")
        elif path == "/until-close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(BODY)
            self.close_connection = True
        elif path == "/cut":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY[:1000])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif path == "/here":
            self.reply(307, {"Location": "/len", "Content-Length": "0"}, b"")
        elif path == "/away":
            self.reply(307, {"Location": f"http://{self.other}/len?signed=1", "Content-Length": "0"}, b"")
        else:
            self.reply(404, {"Content-Length": "0"}, b"")

    def reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def servers() -> Iterator[tuple[str, str, list[tuple[str, str, str | None, int]]]]:
    """Two plain HTTP servers sharing one request log; yields their ``host:port`` and the log."""
    seen: list[tuple[str, str, str | None, int]] = []
    started = []
    for _ in range(2):
        handler = type("H", (Handler,), {"seen": seen})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append((server, handler))
    hosts = [f"127.0.0.1:{s.server_address[1]}" for s, _ in started]
    started[0][1].other, started[1][1].other = hosts[1], hosts[0]
    try:
        yield hosts[0], hosts[1], seen
    finally:
        for server, _ in started:
            server.shutdown()
            server.server_close()


def get(transport: HttpTransport, url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    with transport.send("GET", url, headers or {}, None, timeout=10, verify=True) as resp:
        return resp.status_code, resp.read()


def test_bodies_of_every_framing_and_connection_reuse(servers: tuple[str, str, list]) -> None:  # type: ignore[type-arg]
    host, _, seen = servers
    transport = HttpTransport(environ={})
    try:
        assert get(transport, f"http://{host}/len") == (200, BODY)
        assert get(transport, f"http://{host}/chunked") == (200, BODY)
        assert get(transport, f"http://{host}/empty") == (204, b"")
        assert get(transport, f"http://{host}/len") == (200, BODY)
        assert len({port for *_, port in seen}) == 1  # one connection for all four
        assert get(transport, f"http://{host}/until-close") == (200, BODY)
        assert get(transport, f"http://{host}/len") == (200, BODY)
        assert len({port for *_, port in seen}) == 2  # a body read to EOF ends its connection
    finally:
        transport.close()


def test_readinto_fills_the_buffer_and_a_cut_body_keeps_what_arrived(servers: tuple[str, str, list]) -> None:  # type: ignore[type-arg]
    host, _, _ = servers
    transport = HttpTransport(environ={})
    buffer = memoryview(bytearray(1 << 20))
    with transport.send("GET", f"http://{host}/len", {}, None, timeout=10, verify=True) as resp:
        assert resp.readinto(buffer) == len(BODY) and bytes(buffer[: len(BODY)]) == BODY
        assert resp.readinto(buffer) == 0
    with transport.send("GET", f"http://{host}/cut", {}, None, timeout=10, verify=True) as resp:
        assert resp.readinto(buffer) == 1000  # what arrived before the break...
        with pytest.raises(IncompleteRead):
            resp.readinto(buffer)  # ...then the error
    transport.close()


def test_redirects_drop_authorization_for_another_host_only(servers: tuple[str, str, list]) -> None:  # type: ignore[type-arg]
    host, other, seen = servers
    opts = RegistryOptions(insecure=frozenset({host}), use_docker_config=False, sleep=lambda _s: None)
    with Client(host, opts, "pulling x", mirror=f"http://{host}") as client:
        resp = client._send("GET", client.url("/here"), headers={"Authorization": "Bearer secret"})
        assert resp.status_code == 200 and resp.read() == BODY
        resp = client._send("GET", client.url("/away"), headers={"Authorization": "Bearer secret"})
        assert resp.status_code == 200 and resp.read() == BODY
    assert [(path, auth) for path, _, auth, _ in seen] == [
        ("/here", "Bearer secret"),
        ("/len", "Bearer secret"),
        ("/away", "Bearer secret"),
        ("/len?signed=1", None),  # the other host never sees the registry's token
    ]
    assert other


def test_http_proxy_from_the_environment(servers: tuple[str, str, list]) -> None:  # type: ignore[type-arg]
    proxy, target, seen = servers
    transport = HttpTransport(environ={"http_proxy": f"http://user:pw@{proxy}"})
    assert get(transport, f"http://{target}/len") == (200, BODY)
    assert seen[0][1] == f"GET http://{target}/len HTTP/1.1"  # the proxy got the absolute URL
    bypass = HttpTransport(environ={"http_proxy": f"http://{proxy}", "no_proxy": "localhost,127.0.0.1"})
    assert get(bypass, f"http://{target}/len") == (200, BODY)
    assert seen[1][1] == "GET /len HTTP/1.1"
    transport.close()
    bypass.close()


def test_proxy_rules() -> None:
    env = {"HTTPS_PROXY": "proxy:3128", "http_proxy": "http://p2:8080", "NO_PROXY": ".internal, 10.1.2.3, *.x:5000"}
    assert proxy_for("https", "ghcr.io", 443, env) == "http://proxy:3128"
    assert proxy_for("http", "ghcr.io", 80, env) == "http://p2:8080"
    assert proxy_for("https", "reg.internal", 443, env) is None
    assert proxy_for("https", "internal", 443, env) is None
    assert proxy_for("https", "10.1.2.3", 5000, env) is None
    assert proxy_for("https", "a.x", 5000, env) is None and proxy_for("https", "a.x", 443, env) is not None
    assert proxy_for("https", "ghcr.io", 443, {"ALL_PROXY": "socks.example:1"}) == "http://socks.example:1"
    assert proxy_for("https", "ghcr.io", 443, {"https_proxy": "http://p", "no_proxy": "*"}) is None
    assert proxy_for("https", "ghcr.io", 443, {}) is None


def test_urls() -> None:
    assert split_url("https://[::1]:5000/v2/?x=1") == ("https", "::1", 5000, "/v2/?x=1")
    assert split_url("http://u:p@host") == ("http", "host", 80, "/")
    with pytest.raises(TransportError):
        split_url("ftp://host/")
    base = "https://reg.example/v2/a/blobs/uploads/123?state=x"
    assert join_url(base, "/v2/b") == "https://reg.example/v2/b"
    assert join_url(base, "https://s3.example/o?sig=1") == "https://s3.example/o?sig=1"
    assert join_url(base, "//cdn.example/o") == "https://cdn.example/o"
    assert join_url(base, "456?state=y") == "https://reg.example/v2/a/blobs/uploads/456?state=y"
    assert join_url(base, "../x") == "https://reg.example/v2/a/blobs/x"


def test_unreachable_and_unresolvable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nobody listens there
    transport = HttpTransport(environ={})
    with pytest.raises(TransportError, match="cannot connect"):
        get(transport, f"http://127.0.0.1:{port}/")
    with pytest.raises(TransportError, match="does not resolve"):
        get(transport, "http://no-such-host.invalid/")


# -- TLS -------------------------------------------------------------------------------------------


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """An HTTPS server for ``localhost`` with a self-signed certificate; yields its port and the cert."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    handler = type("H", (Handler,), {"seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], cert
    finally:
        server.shutdown()
        server.server_close()


def test_speaks_tls_tells_https_from_http(tls_server: tuple[int, Path], servers: tuple[str, str, list]) -> None:  # type: ignore[type-arg]
    port, _ = tls_server
    plain = servers[0]
    assert speaks_tls("localhost", port, 5) is True
    assert speaks_tls("127.0.0.1", int(plain.split(":")[1]), 5) is False


def test_https_with_extra_ca_file_or_without_checks(tls_server: tuple[int, Path]) -> None:
    port, cert = tls_server
    url = f"https://localhost:{port}/len"
    with pytest.raises(CertificateError, match=r"certificate not trusted: self.signed"):
        get(HttpTransport(environ={}), url)
    assert get(HttpTransport(ca_files=[str(cert)], environ={}), url) == (200, BODY)
    unchecked = HttpTransport(environ={})
    assert unchecked.send("GET", url, {}, None, timeout=10, verify=False).read() == BODY
    # the client probes and picks HTTPS for a loopback host that speaks it
    opts = RegistryOptions(cert_files=(cert,), use_docker_config=False)
    with Client(f"localhost:{port}", opts, "pulling x") as client:
        assert client.base_url == f"https://localhost:{port}"
