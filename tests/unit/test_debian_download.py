"""fetch_debs: content-addressed cache, inline verification, 404 and mismatch errors, retries and resumed
transfers (local HTTP)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from linuxkit.debian import download, transport
from linuxkit.debian.download import deb_path, fetch_debs
from linuxkit.debian.model import DebRef
from linuxkit.debian.sources import DEFAULT_KEYRING, Source
from linuxkit.errors import BuildError, UserError
from linuxkit.http import retry


def make_ref(name: str, data: bytes, suite: str = "stable") -> DebRef:
    return DebRef(
        name, "1.0", "amd64", suite, f"pool/main/{name}_1.0_amd64.deb", len(data), hashlib.sha256(data).hexdigest()
    )


class Handler(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    failures: ClassVar[dict[str, int]] = {}  # path -> how many 503 answers before success
    cuts: ClassVar[dict[str, int]] = {}  # path -> bytes sent before the connection breaks (once)
    ranges: ClassVar[bool] = True  # whether Range is honoured
    hits: ClassVar[list[str]] = []
    range_headers: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.range_headers.append(self.headers.get("Range"))
        if self.failures.get(self.path, 0) > 0:
            self.failures[self.path] -= 1
            self.send_error(503)
            return
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        asked = self.headers.get("Range")
        start = int(asked.removeprefix("bytes=").rstrip("-")) if asked and self.ranges else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        cut = self.cuts.pop(self.path, None)
        self.wfile.write(data[start:cut])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    Handler.files, Handler.failures, Handler.cuts, Handler.hits, Handler.range_headers = {}, {}, {}, [], []
    Handler.ranges = True
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setattr(retry, "DEFAULT", retry.RetryPolicy(sleep=lambda _s: None))  # no real backoff in tests
    yield f"http://127.0.0.1:{httpd.server_address[1]}/debian"
    httpd.shutdown()
    httpd.server_close()


def sources(uri: str) -> list[Source]:
    return [
        Source(uri, "stable", ("main",), DEFAULT_KEYRING),
        Source(uri + "-security", "stable-security", ("main",), DEFAULT_KEYRING),
    ]


def test_downloads_in_parallel_and_reuses_cache(server: str, tmp_path: Path) -> None:
    blobs = {f"p{i}": bytes([i]) * (100_000 + i) for i in range(6)}
    refs = [make_ref(n, d) for n, d in blobs.items()]
    sec = make_ref("sec", b"security!", "stable-security")
    for ref, data in [*zip(refs, blobs.values(), strict=True), (sec, b"security!")]:
        base = "/debian-security/" if ref.suite == "stable-security" else "/debian/"
        Handler.files[base + ref.filename] = data
    Handler.failures["/debian/" + refs[0].filename] = 2  # retried after 5xx
    got = fetch_debs([*refs, sec, refs[1]], sources(server), tmp_path, jobs=3)
    assert list(got) == [*refs, sec]
    for ref, path in got.items():
        assert path == tmp_path / "debs" / f"{ref.sha256}.deb"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == ref.sha256
    assert Handler.hits.count("/debian/" + refs[0].filename) == 3
    hits = len(Handler.hits)
    assert fetch_debs(refs, sources(server), tmp_path) == {r: got[r] for r in refs}
    assert len(Handler.hits) == hits  # nothing downloaded again
    assert not [p for p in (tmp_path / "debs").iterdir() if p.name.startswith(".part-")]


def test_corrupt_cache_entry_is_replaced(server: str, tmp_path: Path) -> None:
    data = b"the real package"
    ref = make_ref("a", data)
    Handler.files["/debian/" + ref.filename] = data
    path = deb_path(tmp_path, ref)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"X" * len(data))  # right size, wrong content
    download._verified.discard((path, ref.sha256))
    assert fetch_debs([ref], sources(server), tmp_path)[ref].read_bytes() == data
    path.write_bytes(b"short")
    assert fetch_debs([ref], sources(server), tmp_path)[ref].read_bytes() == data


def test_404_is_a_user_error_naming_the_package(server: str, tmp_path: Path) -> None:
    ref = make_ref("gone", b"x")
    with pytest.raises(UserError, match=r"gone 1.0 \(stable\) is no longer on the mirror") as info:
        fetch_debs([ref], sources(server), tmp_path)
    assert info.value.hint is not None and "snapshot mirror" in info.value.hint and "--debian-mirror" in info.value.hint


def test_mismatch_is_a_build_error_and_nothing_is_kept(server: str, tmp_path: Path) -> None:
    ref = make_ref("evil", b"expected content")
    Handler.files["/debian/" + ref.filename] = b"tampered content"  # same size, other bytes
    with pytest.raises(BuildError, match=r"evil 1\.0 does not match the signed index: .*sha256"):
        fetch_debs([ref], sources(server), tmp_path)
    Handler.files["/debian/" + ref.filename] = b"longer than expected content"
    with pytest.raises(BuildError, match="more than the expected"):
        fetch_debs([ref], sources(server), tmp_path)
    assert list((tmp_path / "debs").iterdir()) == []


def test_persistent_5xx_fails_after_retries(server: str, tmp_path: Path) -> None:
    ref = make_ref("flaky", b"x")
    Handler.files["/debian/" + ref.filename] = b"x"
    Handler.failures["/debian/" + ref.filename] = 100
    with pytest.raises(BuildError, match=r"cannot download .*503"):
        fetch_debs([ref], sources(server), tmp_path)
    assert Handler.hits.count("/debian/" + ref.filename) == 1 + retry.DEFAULT.retries


@pytest.mark.parametrize("ranges", [True, False])
def test_broken_transfer_is_resumed_or_restarted(server: str, tmp_path: Path, ranges: bool) -> None:
    data = bytes(range(256)) * 4000
    ref = make_ref("big", data)
    Handler.files["/debian/" + ref.filename] = data
    Handler.cuts["/debian/" + ref.filename] = 300_000
    Handler.ranges = ranges
    progress: list[int] = []
    got = fetch_debs([ref], sources(server), tmp_path)
    assert got[ref].read_bytes() == data
    assert Handler.range_headers == [None, "bytes=300000-"]  # asked where it broke
    transport.download(server + "/" + ref.filename, tmp_path / "again", size=len(data), on_chunk=progress.append)
    assert sum(progress) == len(data)  # a restart takes back what it counted
    Handler.cuts["/debian/" + ref.filename] = 1000
    progress.clear()
    transport.download(server + "/" + ref.filename, tmp_path / "again", size=len(data), on_chunk=progress.append)
    assert (tmp_path / "again").read_bytes() == data and sum(progress) == len(data)
    assert any(n < 0 for n in progress) == (not ranges)


def test_unknown_suite_and_file_mirror(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    ref = make_ref("local", b"local data")
    (mirror / ref.filename).parent.mkdir(parents=True)
    (mirror / ref.filename).write_bytes(b"local data")
    got = fetch_debs([ref], [Source(f"file://{mirror}", "stable", ("main",), DEFAULT_KEYRING)], tmp_path / "c")
    assert got[ref].read_bytes() == b"local data"
    with pytest.raises(UserError, match="no Debian mirror configured for suite 'other'"):
        fetch_debs([make_ref("x", b"y", "other")], sources("file:///nowhere"), tmp_path / "c")
