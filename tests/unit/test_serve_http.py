"""``linuxkit serve``'s HTTP server, started on a free loopback port in a thread and asked with the
standard library's HTTP client (``http.client``, raw request targets so ``..`` reaches the server)."""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from linuxkit.serve.address import ListenAddress
from linuxkit.serve.server import FileServer


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "data.bin").write_bytes(bytes(range(256)) * 40)  # 10240 bytes
    (root / "hello.txt").write_text("hello\n")
    (root / "empty").write_bytes(b"")
    (root / "sys-kernel").write_bytes(b"K" * 1000)
    (root / "sys-initrd.img").write_bytes(b"I" * 2000)
    (root / "sys-cmdline").write_text("console=ttyS0\n")
    (root / "sub" / "x-kernel").write_bytes(b"k")
    (root / "sub" / "x-initrd.img").write_bytes(b"i")
    (root / "sub" / "<b>&.txt").write_text("odd name")
    (root / "inside-link").symlink_to("hello.txt")
    outside = tmp_path / "secret.txt"
    outside.write_text("SECRET\n")
    (root / "escape").symlink_to(outside)
    (root / "escape-dir").symlink_to(tmp_path)
    (root / "dangling").symlink_to(tmp_path / "nothing-here")
    (root / "loop").symlink_to("loop")
    os.mkfifo(root / "fifo")
    return root


@pytest.fixture
def server(tree: Path) -> Iterator[FileServer]:
    with FileServer(str(tree), ListenAddress("127.0.0.1", 0)).start() as srv:
        yield srv


def ask(
    srv: FileServer, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def test_get_a_file(server: FileServer, tree: Path) -> None:
    status, headers, body = ask(server, "/data.bin")
    assert status == 200
    assert body == (tree / "data.bin").read_bytes()
    assert headers["content-length"] == "10240"
    assert headers["content-type"] == "application/octet-stream"
    assert headers["accept-ranges"] == "bytes"
    assert "GMT" in headers["last-modified"]
    status, headers, body = ask(server, "/hello.txt?ignored=1")
    assert (status, body, headers["content-type"]) == (200, b"hello\n", "text/plain; charset=utf-8")
    assert ask(server, "/empty")[0:3:2] == (200, b"")


def test_head_has_the_get_headers_and_no_body(server: FileServer) -> None:
    _, get_headers, _ = ask(server, "/data.bin")
    status, headers, body = ask(server, "/data.bin", "HEAD")
    assert status == 200 and body == b""
    for name in ("content-length", "content-type", "last-modified", "accept-ranges"):
        assert headers[name] == get_headers[name]
    assert ask(server, "/sys.ipxe", "HEAD")[2] == b""


def test_ranges(server: FileServer, tree: Path) -> None:
    data = (tree / "data.bin").read_bytes()
    status, headers, body = ask(server, "/data.bin", headers={"Range": "bytes=100-199"})
    assert (status, body, headers["content-range"], headers["content-length"]) == (
        206,
        data[100:200],
        "bytes 100-199/10240",
        "100",
    )
    status, headers, body = ask(server, "/data.bin", headers={"Range": "bytes=-16"})
    assert (status, body, headers["content-range"]) == (206, data[-16:], "bytes 10224-10239/10240")
    status, headers, body = ask(server, "/data.bin", headers={"Range": "bytes=10000-"})
    assert (status, body) == (206, data[10000:])
    status, headers, _ = ask(server, "/data.bin", headers={"Range": "bytes=10240-"})
    assert (status, headers["content-range"]) == (416, "bytes */10240")
    # several ranges, or an invalid one: the whole file
    assert ask(server, "/data.bin", headers={"Range": "bytes=0-1,4-5"})[0:3:2] == (200, data)
    assert ask(server, "/data.bin", headers={"Range": "bytes=x-"})[0:3:2] == (200, data)
    # If-Range: the range only for the version the client has
    _, headers, _ = ask(server, "/data.bin", "HEAD")
    same = {"Range": "bytes=0-0", "If-Range": headers["last-modified"]}
    assert ask(server, "/data.bin", headers=same)[0:3:2] == (206, data[:1])
    other = {"Range": "bytes=0-0", "If-Range": "Thu, 01 Jan 1970 00:00:00 GMT"}
    assert ask(server, "/data.bin", headers=other)[0:3:2] == (200, data)


@pytest.mark.parametrize(
    "path", ["/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt", "/sub/..%2f..%2fsecret.txt", "/a%00b"]
)
def test_traversal_is_a_bad_request(server: FileServer, path: str) -> None:
    status, _, body = ask(server, path)
    assert status == 400 and b"SECRET" not in body


@pytest.mark.parametrize("path", ["/escape", "/escape-dir/", "/escape-dir/secret.txt", "/dangling", "/fifo", "/loop"])
def test_links_leading_outside_and_special_files_are_refused(server: FileServer, path: str) -> None:
    start = time.monotonic()
    status, _, body = ask(server, path)
    assert status == 403 and b"SECRET" not in body
    assert time.monotonic() - start < 5  # the FIFO was not opened (that would block)


def test_a_name_too_long_for_the_file_system(server: FileServer) -> None:
    assert ask(server, "/" + "x" * 300)[0] == 414


def test_a_link_inside_is_served(server: FileServer) -> None:
    assert ask(server, "/inside-link")[0:3:2] == (200, b"hello\n")


def test_missing_and_methods(server: FileServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert ask(server, "/nothing")[0] == 404
    assert ask(server, "/hello.txt/x")[0] == 404
    status, headers, _ = ask(server, "/hello.txt", "POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    err = logged(capsys, "POST /hello.txt 405")
    assert "POST /hello.txt 405" in err and "warning" not in err and "Error" not in err, err


def test_a_request_body_is_not_read_so_the_connection_closes(server: FileServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
        client.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nGET /")
        got = b""
        while chunk := client.recv(4096):
            got += chunk
    assert got.startswith(b"HTTP/1.1 200") and b"Connection: close" in got and got.endswith(b"hello\n")


def test_an_index_leading_outside_is_refused(server: FileServer, tree: Path) -> None:
    (tree / "sub" / "index.html").symlink_to(tree.parent / "secret.txt")
    status, _, body = ask(server, "/sub/")
    assert status == 403 and b"SECRET" not in body


def test_directories(server: FileServer, tree: Path) -> None:
    status, headers, _ = ask(server, "/sub?a=b")
    assert (status, headers["location"]) == (301, "/sub/?a=b")
    (tree / "evil.example").mkdir()
    status, headers, _ = ask(server, "//evil.example")
    assert (status, headers["location"]) == (301, "/evil.example/")  # not //evil.example/: another host
    assert ask(server, "/sub%20dir")[0] == 404
    (tree / "sub dir").mkdir()
    assert ask(server, "/sub%20dir")[1]["location"] == "/sub%20dir/"
    status, headers, body = ask(server, "/sub/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    text = body.decode()
    assert '<a href="%3Cb%3E%26.txt">&lt;b&gt;&amp;.txt</a>' in text
    assert '<a href="x.ipxe">x.ipxe</a> (generated iPXE script)' in text
    (tree / "sub" / "index.html").write_text("<p>index</p>")
    assert ask(server, "/sub/")[2] == b"<p>index</p>"


def test_generated_ipxe_scripts(server: FileServer, tree: Path) -> None:
    status, headers, body = ask(server, "/sys.ipxe")
    assert status == 200 and headers["content-type"] == "text/plain; charset=utf-8"
    assert body.startswith(b"#!ipxe\n")
    assert b"kernel sys-kernel initrd=initrd console=ttyS0\n" in body
    assert b"initrd --name initrd sys-initrd.img\n" in body
    assert ask(server, "/sub/x.ipxe")[0] == 200
    assert ask(server, "/nope.ipxe")[0] == 404
    # NAME-cmdline leading outside is not read: the script is made without it
    (tree / "sub" / "x-cmdline").symlink_to(tree.parent / "secret.txt")
    body = ask(server, "/sub/x.ipxe")[2]
    assert b"SECRET" not in body and b"kernel x-kernel initrd=initrd\n" in body
    # a pair that is not complete: nothing generated
    (tree / "sys-initrd.img").unlink()
    assert ask(server, "/sys.ipxe")[0] == 404
    # a real file of that name wins
    (tree / "sub" / "x.ipxe").write_text("#!ipxe\necho mine\n")
    assert ask(server, "/sub/x.ipxe")[2] == b"#!ipxe\necho mine\n"


def test_keep_alive_serves_several_requests_on_one_connection(server: FileServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for path in ("/hello.txt", "/nothing", "/data.bin", "/hello.txt"):
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            assert resp.status in (200, 404)
        assert conn.sock is not None  # the same socket throughout (http.client reconnects otherwise)
    finally:
        conn.close()


def logged(capsys: pytest.CaptureFixture[str], *texts: str) -> str:
    """What the server logged once every one of ``texts`` is in it (its line follows the answer, from the
    connection's thread), at most 5 s."""
    deadline = time.monotonic() + 5
    err = ""
    while True:
        err += capsys.readouterr().err
        if all(t in err for t in texts) or time.monotonic() > deadline:
            return err
        time.sleep(0.01)


def test_one_log_line_a_request(server: FileServer, capsys: pytest.CaptureFixture[str]) -> None:
    ask(server, "/data.bin", headers={"Range": "bytes=0-9"})
    ask(server, "/nothing")
    lines = logged(capsys, "/data.bin", "/nothing").splitlines()
    assert any(line.startswith("127.0.0.1 GET /data.bin 206 10 B bytes=0-9 ") for line in lines), lines
    assert any(line.startswith("127.0.0.1 GET /nothing 404 ") for line in lines), lines
    assert len(lines) == 2, lines


def test_close_cuts_a_stalled_download(tree: Path) -> None:
    (tree / "big").write_bytes(b"\0" * (64 << 20))
    srv = FileServer(str(tree), ListenAddress("127.0.0.1", 0)).start()
    before = set(threading.enumerate())
    client = socket.create_connection(("127.0.0.1", srv.port))
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.2)
    assert any("process_request" in t.name for t in threading.enumerate())  # what close() must end
    assert client.recv(12) == b"HTTP/1.1 200"  # the transfer started, and we read no more
    start = time.monotonic()
    srv.close()
    assert time.monotonic() - start < 5
    handlers = [t for t in set(threading.enumerate()) - before if "process_request" in t.name]
    assert handlers == []  # the connection's thread ended and was joined
    client.close()


def test_missing_directory_and_busy_port(tmp_path: Path, server: FileServer) -> None:
    from linuxkit.errors import UserError

    with pytest.raises(UserError, match="no such directory"):
        FileServer(str(tmp_path / "absent"), ListenAddress("127.0.0.1", 0))
    with pytest.raises(UserError, match=r"cannot listen on 127\.0\.0\.1:") as err:
        FileServer(str(tmp_path), ListenAddress("127.0.0.1", server.port))
    assert err.value.hint and "--port" in err.value.hint


def test_every_interface_answers_ipv4_and_ipv6(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--port :N`` (upstream's form): one socket for IPv6 and IPv4 where the host has IPv6, as Go."""
    with FileServer(str(tree), ListenAddress("", 0)).start() as srv:
        assert ask(srv, "/hello.txt")[2] == b"hello\n"  # ask() goes to 127.0.0.1
        err = logged(capsys, "GET /hello.txt 200")
        assert "\n127.0.0.1 GET /hello.txt 200" in "\n" + err, err  # not ::ffff:127.0.0.1
        if socket.has_ipv6 and srv.host == "::":
            conn = http.client.HTTPConnection("::1", srv.port, timeout=10)
            try:
                conn.request("GET", "/hello.txt")
                assert conn.getresponse().read() == b"hello\n"
            finally:
                conn.close()
