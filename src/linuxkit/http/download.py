"""Resumable downloads into a file: registry blobs and Debian archive files alike.

:func:`download` streams a body into a temporary file beside the destination, counting it and
hashing it (sha256) as it arrives. When the connection drops mid-body, the next request asks for
the rest with ``Range``: a ``206`` whose ``Content-Range`` starts at the first missing byte
continues the file, a ``200`` (the server ignores ``Range``) starts it again. That is retried as
the one retry policy says; the size and sha256 are checked over every byte kept, so a resumed
file is still verified whole, and only then is the file renamed into place. Nothing but a
complete, checked destination is ever left behind.

The request itself (auth, the caller's headers, the client's own retries of connection errors
and 5xx) and the wording of every error stay with the caller.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Literal, Protocol

from .. import log
from . import retry
from .client import content_range_start
from .retry import RetryPolicy
from .transport import Response, TransportError

#: Bytes read from the socket, hashed and written at a time: big enough that the per-call cost of
#: Python disappears and hashing (which releases the GIL) overlaps other transfers.
CHUNK = 1 << 20
PART_PREFIX = ".part-"


class Mismatch(ValueError):
    """The body does not have the expected size (``kind`` ``size``) or sha256 (``kind`` ``sha256``).

    ``actual`` and ``expected`` are byte counts or hex digests; for a body longer than expected,
    ``actual`` is what had arrived when that was noticed.
    """

    def __init__(self, message: str, kind: Literal["size", "sha256"], actual: int | str, expected: int | str) -> None:
        super().__init__(message)
        self.kind = kind
        self.actual = actual
        self.expected = expected


class TempFile(Protocol):
    """Where a body goes until it is complete (:class:`PartFile`, or the OCI cache's ``AtomicFile``)."""

    @property
    def file(self) -> IO[bytes]: ...

    def commit(self, final: Path) -> object:
        """Rename the file to ``final``."""
        ...

    def abort(self) -> None:
        """Remove the file (nothing once committed)."""
        ...


class PartFile:
    """A temporary file ``.part-*`` beside ``final``, readable by all (cached downloads are public
    data), renamed on :meth:`commit` and removed on :meth:`abort`."""

    def __init__(self, final: Path) -> None:
        self.tmp = final.parent / f"{PART_PREFIX}{final.name[:32]}-{os.urandom(6).hex()}"
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            os.fchmod(fd, 0o644)  # whatever the umask
            self.file: IO[bytes] = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            self.tmp.unlink(missing_ok=True)
            raise
        self.done = False

    def commit(self, final: Path) -> Path:
        self.file.close()
        os.replace(self.tmp, final)
        self.done = True
        return final

    def abort(self) -> None:
        if not self.done:
            self.file.close()
            self.tmp.unlink(missing_ok=True)
            self.done = True


def download(
    get: Callable[[Mapping[str, str]], Response],
    dest: Path,
    *,
    refused: Callable[[Response], BaseException],
    size: int | None = None,
    sha256: str | None = None,
    policy: RetryPolicy | None = None,
    on_chunk: Callable[[int], None] | None = None,
    temp: Callable[[Path], TempFile] = PartFile,
    retry_mismatch: bool = False,
    what: str = "download",
) -> None:
    """Fetch a body into ``dest`` atomically, resuming a broken transfer, checking ``size`` and ``sha256``.

    ``get(headers)`` sends the GET with ``headers`` added (``Range`` when resuming) and returns the
    answer; it raises the caller's own error when the request fails. An answer other than ``200``
    (or the ``206`` of a resumed transfer) raises ``refused(answer)``. ``temp(dest)`` makes the
    temporary file (default :class:`PartFile`). ``on_chunk`` is told the bytes received (a negative
    count when a transfer starts again). ``what`` names the download in debug messages.

    A body that breaks is resumed (or started again) up to ``policy.retries`` times (default: the
    one policy), then its last :class:`TransportError` is raised with ``attempts`` set. A wrong size
    or sha256 raises :class:`Mismatch` at once, or, with ``retry_mismatch``, starts the body again
    within the same budget of retries.
    """
    policy = policy or retry.DEFAULT
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _Received(temp(dest), size, on_chunk or _ignore)
    buffer = memoryview(bytearray(CHUNK))
    try:
        attempt = 0
        while True:
            failure: TransportError | Mismatch
            try:
                _transfer(get, part, buffer, refused, what)
                part.check(sha256)
                part.out.commit(dest)
                return
            except TransportError as exc:
                exc.attempts = attempt + 1
                failure = exc
            except Mismatch as exc:
                if not retry_mismatch:
                    raise
                part.restart()  # wrong content: nothing of it can be kept
                failure = exc
            if attempt >= policy.retries:
                raise failure
            delay = policy.delay(attempt)
            log.debug(f"{what}: {failure} after {part.received} bytes kept; retrying in {delay:.1f}s")
            attempt += 1
            policy.sleep(delay)
    finally:
        part.out.abort()


def _ignore(_n: int) -> None:
    pass


class _Received:
    """The bytes kept so far: written, hashed, counted and reported."""

    def __init__(self, out: TempFile, size: int | None, report: Callable[[int], None]) -> None:
        self.out = out
        self.size = size
        self.report = report
        self.digest = hashlib.sha256()
        self.received = 0

    def write(self, data: memoryview) -> None:
        if self.size is not None and self.received + len(data) > self.size:
            raise Mismatch(f"more than the expected {self.size} bytes", "size", self.received + len(data), self.size)
        self.digest.update(data)
        self.out.file.write(data)
        self.received += len(data)
        self.report(len(data))

    def restart(self) -> None:
        self.out.file.seek(0)
        self.out.file.truncate()
        self.report(-self.received)
        self.digest = hashlib.sha256()
        self.received = 0

    def check(self, sha256: str | None) -> None:
        if self.size is not None and self.received != self.size:
            raise Mismatch(f"got {self.received} bytes, expected {self.size}", "size", self.received, self.size)
        actual = self.digest.hexdigest()
        if sha256 is not None and actual != sha256:
            raise Mismatch(f"sha256 {actual}, expected {sha256}", "sha256", actual, sha256)


def _transfer(
    get: Callable[[Mapping[str, str]], Response],
    part: _Received,
    buffer: memoryview,
    refused: Callable[[Response], BaseException],
    what: str,
) -> None:
    """Append the body from ``part.received`` on (asking with ``Range`` when that is not 0)."""
    start = part.received
    resp = get({"Range": f"bytes={start}-"} if start else {})
    with resp:
        if start and resp.status_code == 206 and content_range_start(resp.headers.get("Content-Range")) == start:
            log.debug(f"{what}: resuming at byte {start}")
        elif resp.status_code == 200:
            if start:  # the server ignored Range: the whole body again
                part.restart()
        else:
            raise refused(resp)
        while n := resp.readinto(buffer):
            part.write(buffer[:n])
