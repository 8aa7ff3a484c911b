"""HTTP(S) and file:// fetching for the Debian archive, streamed to a temp file and checked inline.

HTTP goes through the project's one stack (:mod:`linuxkit.http`): connections kept alive and
shared by the download threads, proxies from the environment, the system's CA store, and the one
retry policy (connection errors, 429 and 5xx; backoff from 0.5 s). The transfer itself is
:func:`linuxkit.http.download.download`: a transfer that breaks is resumed with ``Range`` where it
stopped when the mirror answers ``206`` (else started again), as many times as the policy retries;
the sha256 runs over every byte kept, so the file is still checked whole.
"""

from __future__ import annotations

import hashlib
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path

from ..errors import BuildError
from ..http.client import HttpClient
from ..http.download import Mismatch
from ..http.download import download as _download
from ..http.transport import Headers, Response, TransportError

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
    if url.startswith("file://"):
        get, policy = _file_get(url), None
    else:
        client = _http()
        get, policy = _http_get(client, url), client.policy
    try:
        _download(
            get,
            dest,
            refused=lambda resp: _refused(url, resp),
            size=size,
            sha256=sha256,
            policy=policy,
            on_chunk=on_chunk,
            what=url,
        )
    except Mismatch as exc:
        raise DigestMismatch(f"{url}: {exc}") from exc
    except TransportError as exc:  # the body broke more often than the policy retries
        raise BuildError(
            f"cannot download {url}: {exc}",
            hint=f"check the network and the mirror (the transfer broke {exc.attempts} time(s))",
        ) from exc


def _http_get(client: HttpClient, url: str) -> Callable[[Mapping[str, str]], Response]:
    def get(headers: Mapping[str, str]) -> Response:
        try:
            return client.request("GET", url, headers={"User-Agent": USER_AGENT, **headers})
        except TransportError as exc:
            raise BuildError(
                f"cannot download {url}: {exc}",
                hint=f"check the network and the mirror (tried {exc.attempts} time(s))",
            ) from exc

    return get


def _file_get(url: str) -> Callable[[Mapping[str, str]], Response]:
    """A local file as the answer to a GET (read once: a local read is not resumed)."""

    def get(_headers: Mapping[str, str]) -> Response:
        try:
            handle = _open_file_url(url).open("rb")
        except FileNotFoundError as exc:
            raise NotFound(url) from exc
        return Response(200, Headers(), handle, url)

    return get


def _refused(url: str, resp: Response) -> Exception:
    status = resp.status_code
    if status in (404, 410):
        return NotFound(url)
    return BuildError(
        f"cannot download {url}: HTTP {status}",
        hint="the mirror is failing; retry later or choose another mirror" if status >= 500 else "check the mirror URI",
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
