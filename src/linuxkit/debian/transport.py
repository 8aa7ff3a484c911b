"""HTTP(S) and file:// fetching with retries, streamed to a temp file and checked inline."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import requests

from ..errors import BuildError

CHUNK = 1 << 20
RETRIES = 4
TIMEOUT = (15, 60)  # connect, read (seconds)
RETRY_DELAY = 1.0  # seconds before the first retry; doubled each time

_local = threading.local()


class NotFound(Exception):
    """The server says the file does not exist (HTTP 404/410, or a missing file:// path)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


class DigestMismatch(Exception):
    """The bytes received do not have the expected size or sha256."""


def _session() -> requests.Session:
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.headers["User-Agent"] = "linuxkit-debian/1"
        _local.session = session
    return session


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

    Connection errors and 5xx answers are retried with backoff; 404 raises :class:`NotFound`; a wrong size or
    digest raises :class:`DigestMismatch` and leaves nothing behind.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    delay = RETRY_DELAY
    for attempt in range(1, RETRIES + 1):
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
        os.fchmod(fd, 0o644)  # cache files are public data; mkstemp makes them private
        tmp = Path(tmp_name)
        received = 0
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                for chunk in _chunks(url):
                    received += len(chunk)
                    if size is not None and received > size:
                        raise DigestMismatch(f"{url}: more than the expected {size} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                    if on_chunk is not None:
                        on_chunk(len(chunk))
            if size is not None and received != size:
                raise DigestMismatch(f"{url}: got {received} bytes, expected {size}")
            if sha256 is not None and digest.hexdigest() != sha256:
                raise DigestMismatch(f"{url}: sha256 {digest.hexdigest()}, expected {sha256}")
            tmp.replace(dest)
            return
        except (requests.ConnectionError, requests.Timeout, _ServerError) as exc:
            tmp.unlink(missing_ok=True)
            if on_chunk is not None and received:
                on_chunk(-received)
            if attempt == RETRIES:
                raise BuildError(f"cannot download {url}: {exc}", hint="check the network and the mirror") from exc
            time.sleep(delay)
            delay *= 2
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


class _ServerError(Exception):
    pass


def _chunks(url: str) -> Iterator[bytes]:
    if url.startswith("file://"):
        path = _open_file_url(url)
        try:
            handle = path.open("rb")
        except FileNotFoundError as exc:
            raise NotFound(url) from exc
        with handle:
            while chunk := handle.read(CHUNK):
                yield chunk
        return
    with _session().get(url, stream=True, timeout=TIMEOUT) as response:
        if response.status_code in (404, 410):
            raise NotFound(url)
        if response.status_code >= 500:
            raise _ServerError(f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise BuildError(f"cannot download {url}: HTTP {response.status_code} {response.reason}")
        yield from response.iter_content(CHUNK)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
