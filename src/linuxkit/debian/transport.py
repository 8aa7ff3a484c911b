"""HTTP(S) and file:// fetching for the Debian archive, streamed to a temp file and checked inline.

HTTP goes through the project's one stack (:mod:`linuxkit.http`): connections kept alive and
shared by the download threads, proxies from the environment, the system's CA store, and the one
retry policy (connection errors, 429 and 5xx; backoff from 0.5 s). A transfer that breaks is
resumed with ``Range`` where it stopped when the mirror answers ``206`` (else started again), as
many times as the policy retries; the sha256 runs over every byte kept, so the file is still
checked whole.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import IO

from .. import log
from ..errors import BuildError
from ..http.client import HttpClient, content_range_start
from ..http.transport import TransportError

CHUNK = 1 << 20
TIMEOUT = 60.0  # seconds for a connection or a read
USER_AGENT = "linuxkit-debian/1"

_client: HttpClient | None = None
_client_lock = threading.Lock()


class NotFound(Exception):
    """The server says the file does not exist (HTTP 404/410, or a missing file:// path)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


class DigestMismatch(Exception):
    """The bytes received do not have the expected size or sha256."""


def _http() -> HttpClient:
    """The client every download thread shares (its connections are pooled per mirror)."""
    global _client
    with _client_lock:
        if _client is None:
            _client = HttpClient(timeout=TIMEOUT)
        return _client


def _open_file_url(url: str) -> Path:
    return Path(urllib.parse.unquote(urllib.parse.urlparse(url).path))


def download(
    url: str,
    dest: Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> None:
    """Fetch ``url`` into ``dest`` atomically (temp name + rename), checking ``size`` and ``sha256`` inline.

    Connection errors and 429/5xx answers are retried with backoff, a broken transfer resumed; 404
    raises :class:`NotFound`; a wrong size or digest raises :class:`DigestMismatch`; a failure that
    persists is a :class:`BuildError`. Nothing is left behind but a complete, checked ``dest``.
    ``on_chunk`` is called with the bytes received (negative when a transfer starts over).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
    os.fchmod(fd, 0o644)  # cache files are public data; mkstemp makes them private
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            sink = _Sink(url, out, size, on_chunk or (lambda _n: None))
            if url.startswith("file://"):
                _copy_file(url, sink)
            else:
                _fetch(url, sink)
        if size is not None and sink.received != size:
            raise DigestMismatch(f"{url}: got {sink.received} bytes, expected {size}")
        if sha256 is not None and sink.digest.hexdigest() != sha256:
            raise DigestMismatch(f"{url}: sha256 {sink.digest.hexdigest()}, expected {sha256}")
        tmp.replace(dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class _Sink:
    """The bytes received so far: written, hashed, counted and reported."""

    def __init__(self, url: str, out: IO[bytes], size: int | None, report: Callable[[int], None]) -> None:
        self.url = url
        self.out = out
        self.size = size
        self.report = report
        self.digest = hashlib.sha256()
        self.received = 0

    def write(self, data: memoryview) -> None:
        if self.size is not None and self.received + len(data) > self.size:
            raise DigestMismatch(f"{self.url}: more than the expected {self.size} bytes")
        self.digest.update(data)
        self.out.write(data)
        self.received += len(data)
        self.report(len(data))

    def restart(self) -> None:
        self.out.seek(0)
        self.out.truncate()
        self.report(-self.received)
        self.digest = hashlib.sha256()
        self.received = 0


def _copy_file(url: str, sink: _Sink) -> None:
    try:
        handle = _open_file_url(url).open("rb")
    except FileNotFoundError as exc:
        raise NotFound(url) from exc
    with handle:
        while chunk := handle.read(CHUNK):
            sink.write(memoryview(chunk))


def _fetch(url: str, sink: _Sink) -> None:
    client = _http()
    policy = client.policy
    buffer = memoryview(bytearray(CHUNK))
    attempt = 0
    while True:
        start = sink.received
        headers = {"User-Agent": USER_AGENT}
        if start:
            headers["Range"] = f"bytes={start}-"
        try:
            resp = client.request("GET", url, headers=headers)
        except TransportError as exc:
            raise BuildError(
                f"cannot download {url}: {exc}",
                hint=f"check the network and the mirror (tried {exc.attempts} time(s))",
            ) from exc
        with resp:
            status = resp.status_code
            if status in (404, 410):
                raise NotFound(url)
            if start and status == 206 and content_range_start(resp.headers.get("Content-Range")) == start:
                log.debug(f"{url}: resuming at byte {start}")
            elif status == 200:
                if start:  # the mirror ignored Range: the whole file again
                    sink.restart()
            else:
                raise BuildError(
                    f"cannot download {url}: HTTP {status}",
                    hint="the mirror is failing; retry later or choose another mirror"
                    if status >= 500
                    else "check the mirror URI",
                )
            try:
                while n := resp.readinto(buffer):
                    sink.write(buffer[:n])
                return
            except TransportError as exc:
                if attempt >= policy.retries:
                    raise BuildError(
                        f"cannot download {url}: {exc}",
                        hint=f"check the network and the mirror (the transfer broke {attempt + 1} time(s))",
                    ) from exc
                delay = policy.delay(attempt)
                log.debug(f"{url}: {exc} after {sink.received} bytes; resuming in {delay:.1f}s")
        attempt += 1
        policy.sleep(delay)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
