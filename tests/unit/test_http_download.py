"""linuxkit.http.download against a real local HTTP server that drops the connection mid-body,
with and without ``Range`` support: resumed or restarted, verified whole, renamed atomically,
nothing left behind on failure."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from linuxkit.http.client import HttpClient
from linuxkit.http.download import Mismatch, download
from linuxkit.http.retry import RetryPolicy
from linuxkit.http.transport import Response, TransportError

DATA = bytes(range(256)) * 4000  # 1 024 000 bytes: more than one read chunk
SHA = hashlib.sha256(DATA).hexdigest()
NO_WAIT = RetryPolicy(retries=3, sleep=lambda _s: None)


@dataclass
class Behaviour:
    """What the server does: ``cuts`` lists, per request, how many bytes of the answer to send
    before dropping the connection (``None``: all); ``spoil`` flips the first byte of the
    answers with a cut; ``ranges`` honours ``Range``."""

    data: bytes = DATA
    ranges: bool = True
    cuts: list[int | None] = field(default_factory=list)
    spoil: bool = False
    status: int = 200
    range_headers: list[str | None] = field(default_factory=list)


class Server(http.server.ThreadingHTTPServer):
    behaviour: Behaviour


class Handler(http.server.BaseHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:
        b = self.server.behaviour
        asked = self.headers.get("Range")
        b.range_headers.append(asked)
        if b.status != 200:
            self.send_error(b.status)
            return
        start = int(asked.removeprefix("bytes=").rstrip("-")) if asked and b.ranges else 0
        body = b.data[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(b.data) - 1}/{len(b.data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = b.cuts.pop(0) if b.cuts else None
        if cut is not None and b.spoil:
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        self.wfile.write(body[:cut])  # then the connection closes (HTTP/1.0): the body is cut short

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, Behaviour]]:
    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.behaviour = Behaviour()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/file", httpd.behaviour
    httpd.shutdown()
    httpd.server_close()


class Refused(Exception):
    pass


def fetch(url: str, dest: Path, **kwargs: object) -> list[int]:
    """Download ``url`` to ``dest``; returns what ``on_chunk`` was told."""
    progress: list[int] = []
    with HttpClient(policy=RetryPolicy(retries=0)) as client:

        def get(headers: Mapping[str, str]) -> Response:
            return client.request("GET", url, headers=headers)

        download(
            get,
            dest,
            refused=lambda resp: Refused(f"HTTP {resp.status_code}"),
            policy=NO_WAIT,
            on_chunk=progress.append,
            what=url,
            **kwargs,  # type: ignore[arg-type]
        )
    return progress


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_dropped_body_is_resumed_with_range(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, b = server
    b.cuts = [300_000, 200_000]
    progress = fetch(url, tmp_path / "sub" / "out", size=len(DATA), sha256=SHA)
    assert (tmp_path / "sub" / "out").read_bytes() == DATA
    assert b.range_headers == [None, "bytes=300000-", "bytes=500000-"]  # each time where it broke
    assert sum(progress) == len(DATA) and min(progress) > 0  # nothing received twice
    assert leftovers(tmp_path / "sub") == ["out"]


def test_dropped_body_without_range_support_starts_again(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, b = server
    b.ranges, b.cuts = False, [300_000]
    progress = fetch(url, tmp_path / "out", size=len(DATA), sha256=SHA)
    assert (tmp_path / "out").read_bytes() == DATA
    assert b.range_headers == [None, "bytes=300000-"]  # asked, answered 200 with the whole file
    assert -300_000 in progress and sum(progress) == len(DATA)  # the restart takes back what it counted
    assert leftovers(tmp_path) == ["out"]


def test_body_that_keeps_breaking_fails_after_the_retries(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, b = server
    b.cuts = [1000] * 10
    with pytest.raises(TransportError) as info:
        fetch(url, tmp_path / "out", size=len(DATA))
    assert info.value.attempts == NO_WAIT.retries + 1 == len(b.range_headers)
    assert leftovers(tmp_path) == []


def test_wrong_digest_fails_at_once_and_keeps_nothing(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, b = server
    (tmp_path / "out").write_bytes(b"older")
    with pytest.raises(Mismatch, match=rf"^sha256 {SHA}, expected 00") as info:
        fetch(url, tmp_path / "out", sha256="00" * 32)
    assert info.value.kind == "sha256" and info.value.actual == SHA
    assert len(b.range_headers) == 1
    assert leftovers(tmp_path) == ["out"] and (tmp_path / "out").read_bytes() == b"older"  # untouched


@pytest.mark.parametrize(
    ("size", "message"),
    [(len(DATA) - 1, f"^more than the expected {len(DATA) - 1} bytes$"), (len(DATA) + 1, f"^got {len(DATA)} bytes, ")],
)
def test_wrong_size_fails(server: tuple[str, Behaviour], tmp_path: Path, size: int, message: str) -> None:
    url, _ = server
    with pytest.raises(Mismatch, match=message) as info:
        fetch(url, tmp_path / "out", size=size)
    assert info.value.kind == "size" and info.value.expected == size
    assert leftovers(tmp_path) == []


def test_spoiled_resumed_body_starts_again_when_asked(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    """A byte spoiled before the cut is caught once the rest has arrived; the body starts over."""
    url, b = server
    b.cuts, b.spoil = [400_000], True
    progress = fetch(url, tmp_path / "out", size=len(DATA), sha256=SHA, retry_mismatch=True)
    assert (tmp_path / "out").read_bytes() == DATA
    assert b.range_headers == [None, "bytes=400000-", None]
    assert -len(DATA) in progress and sum(progress) == len(DATA)
    assert leftovers(tmp_path) == ["out"]


def test_an_answer_other_than_200_is_the_callers_error(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, b = server
    b.status = 404
    with pytest.raises(Refused, match="HTTP 404"):
        fetch(url, tmp_path / "out")
    assert leftovers(tmp_path) == []


def test_the_file_is_readable_by_all_whatever_the_umask(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, _ = server
    old = os.umask(0o077)
    try:
        fetch(url, tmp_path / "out")
    finally:
        os.umask(old)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o644
