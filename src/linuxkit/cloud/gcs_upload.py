"""A Cloud Storage resumable upload that survives a dropped connection: the chunks of the documented protocol
(cloud.google.com/storage/docs/performing-resumable-uploads) sent to a session that google-cloud-storage opened.

Each chunk is ``PUT SESSION`` with ``Content-Range: bytes START-END/TOTAL`` (a multiple of 256 KiB but the last);
the server answers ``308`` with ``Range: bytes=0-LAST`` (what it has persisted) until the last one, answered
``200``/``201`` with the object. After a connection error, a timeout or a 5xx/429 answer the upload asks the
server where it stands (``Content-Range: bytes */TOTAL``) and goes on from there, with growing pauses, a few
times. The object's CRC32C is checked against the file's.
"""

from __future__ import annotations

import base64
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from .. import log
from ..errors import LinuxKitError

#: bytes per chunk: a multiple of 256 KiB, as the protocol requires of every chunk but the last
CHUNK = 8 * 1024 * 1024
RETRIED = frozenset({408, 429, 500, 502, 503, 504})


class UploadError(LinuxKitError):
    """The upload failed (after its retries)."""


@dataclass
class ResumableUpload:
    """One upload of ``size`` bytes from ``source`` to ``session_url`` through ``http`` (a requests session)."""

    http: Any
    session_url: str
    source: BinaryIO
    size: int
    chunk: int = CHUNK
    attempts: int = 6
    backoff: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    on_progress: Callable[[int], None] = lambda done: None
    #: how many times the upload recovered from a failure (for logs and tests)
    recoveries: int = field(default=0, init=False)
    #: failures since the server last took a chunk
    _streak: int = field(default=0, init=False)

    def run(self) -> dict[str, Any]:
        """Send the file; returns the object resource the server answered with."""
        if self.chunk % (256 * 1024):
            raise ValueError("the chunk size must be a multiple of 256 KiB")
        offset = 0
        while True:
            try:
                resp = self._put(offset)
            except OSError as exc:  # requests' ConnectionError and Timeout are OSErrors
                resp = None
                why = str(exc)
            if resp is not None and resp.status_code in (200, 201):
                self.on_progress(self.size)
                result: dict[str, Any] = resp.json()
                return result
            if resp is not None and resp.status_code == 308:
                offset = _persisted(resp)
                self._streak = 0
                self.on_progress(offset)
                continue
            if resp is not None and resp.status_code in (404, 410):
                raise UploadError("the upload session has expired or was cancelled", hint="push again")
            if resp is not None and resp.status_code not in RETRIED:
                raise UploadError(f"upload failed: HTTP {resp.status_code}: {resp.text[:300]}")
            self._failed(why if resp is None else f"HTTP {resp.status_code}")
            offset, done = self._status()
            if done is not None:
                return done

    def cancel(self) -> None:
        """End the session (the server drops what it has); errors are ignored: the session expires in a week."""
        with contextlib.suppress(OSError):
            self.http.request("DELETE", self.session_url, headers={"Content-Length": "0"}, timeout=30)

    def _put(self, offset: int) -> Any:
        self.source.seek(offset)
        data = self.source.read(min(self.chunk, self.size - offset))
        content_range = f"bytes {offset}-{offset + len(data) - 1}/{self.size}" if data else f"bytes */{self.size}"
        return self.http.request(
            "PUT", self.session_url, data=data, headers={"Content-Range": content_range}, timeout=300
        )

    def _failed(self, why: str) -> None:
        """Count a failure (chunk or status query) in the current streak; pause, or give up after ``attempts``."""
        self._streak += 1
        if self._streak >= self.attempts:
            raise UploadError(f"upload failed {self._streak} times in a row, last: {why}")
        self.recoveries += 1
        pause = self.backoff * 2 ** (self._streak - 1)
        log.info(f"upload interrupted ({why}): resuming in {pause:.0f}s")
        self.sleep(pause)

    def _status(self) -> tuple[int, dict[str, Any] | None]:
        """Where the server stands (its status query, retried on failure): the offset to go on from, or the
        object when it has everything."""
        while True:
            try:
                resp = self.http.request(
                    "PUT", self.session_url, data=b"", headers={"Content-Range": f"bytes */{self.size}"}, timeout=60
                )
            except OSError as exc:
                self._failed(str(exc))
                continue
            if resp.status_code == 308:
                return _persisted(resp), None
            if resp.status_code in (200, 201):
                self.on_progress(self.size)
                result: dict[str, Any] = resp.json()
                return self.size, result
            if resp.status_code not in RETRIED:
                raise UploadError(f"upload status query failed: HTTP {resp.status_code}: {resp.text[:300]}")
            self._failed(f"HTTP {resp.status_code}")


def _persisted(resp: Any) -> int:
    """The offset after what the server has, from a 308's ``Range: bytes=0-LAST`` (none: nothing yet)."""
    match = re.fullmatch(r"bytes=0-(\d+)", resp.headers.get("Range", "").strip())
    return int(match.group(1)) + 1 if match else 0


def crc32c_b64(source: BinaryIO, extend: Callable[[int, bytes], int]) -> str:
    """The file's CRC32C as Cloud Storage writes it (base64 of the big-endian 4 bytes); ``extend(crc, bytes)``
    is google-crc32c's."""
    value = 0
    source.seek(0)
    while block := source.read(1 << 20):
        value = extend(value, block)
    return base64.b64encode(value.to_bytes(4, "big")).decode()
