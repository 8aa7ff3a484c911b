"""sha256 content digests: parsing, computing, and streams that check them."""

from __future__ import annotations

import hashlib
import io
import re
from typing import IO

from ..errors import BuildError

ALGORITHM = "sha256"
#: ``\Z``, not ``$``: ``$`` also matches before a trailing newline, and a digest is used as a file
#: name and in registry URLs.
_DIGEST_RE = re.compile(r"\Asha256:([a-f0-9]{64})\Z")
CHUNK = 1 << 20


class DigestError(BuildError):
    """Content does not match the digest (or size) that names it."""


def hex_of(digest: str) -> str:
    """The hex part of ``sha256:<64 hex>``; any other form is a :class:`DigestError`."""
    match = _DIGEST_RE.match(digest)
    if match is None:
        raise DigestError(f"unsupported or malformed digest {digest!r}", hint="only sha256 digests are supported")
    return match.group(1)


def is_valid(digest: str) -> bool:
    return _DIGEST_RE.match(digest) is not None


def of_bytes(data: bytes) -> str:
    return f"{ALGORITHM}:{hashlib.sha256(data).hexdigest()}"


def check_bytes(data: bytes, digest: str, what: str) -> None:
    """Raise :class:`DigestError` when ``data`` does not hash to ``digest``."""
    actual = of_bytes(data)
    if actual != digest:
        raise DigestError(f"{what}: content has digest {actual}, expected {digest}")


class VerifyingReader(io.RawIOBase):
    """Reads ``inner`` while hashing it; at end of stream checks the digest and size it was given.

    The check happens once, when the expected size has been read, when a read returns end-of-file
    or goes past the expected size, or when :meth:`finish` is called; so a consumer that reads
    ``expected_size`` bytes (or everything) cannot miss a mismatch: the read that brings the last
    byte raises instead. ``expected_digest`` may be ``None`` to only compute it (see :attr:`digest`).
    """

    def __init__(
        self,
        inner: IO[bytes],
        expected_digest: str | None,
        expected_size: int | None,
        what: str,
        hint: str | None = None,
    ) -> None:
        super().__init__()
        self.hint = hint
        self._inner = inner
        self._hash = hashlib.sha256()
        self._expected_digest = expected_digest
        self._expected_size = expected_size if expected_size is not None and expected_size >= 0 else None
        self.what = what
        self.size = 0
        self.finished = False

    @property
    def digest(self) -> str:
        return f"{ALGORITHM}:{self._hash.hexdigest()}"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        if not len(view):
            return 0
        data = self._inner.read(len(view))
        if not data:
            self.finish()
            return 0
        n = len(data)
        view[:n] = data
        self._hash.update(data)
        self.size += n
        if self._expected_size is not None and self.size >= self._expected_size:
            if self.size == self._expected_size and self._inner.read(1):
                self.size += 1  # longer than it should be
            self.finish()  # the verdict comes with the last byte
        return n

    def finish(self) -> None:
        """Check size and digest now (idempotent); raises :class:`DigestError` on a mismatch."""
        if self.finished:
            return
        self.finished = True
        if self._expected_size is not None and self.size != self._expected_size:
            raise DigestError(
                f"{self.what}: {'more than ' if self.size > self._expected_size else ''}"
                f"{min(self.size, self._expected_size)} bytes, expected {self._expected_size}",
                hint=self.hint,
            )
        if self._expected_digest is not None and self.digest != self._expected_digest:
            raise DigestError(
                f"{self.what}: content has digest {self.digest}, expected {self._expected_digest}", hint=self.hint
            )

    def drain(self, limit: int | None = None) -> bool:
        """Read (and hash) what is left, at most ``limit`` bytes; True when the end was reached."""
        done = 0
        while limit is None or done < limit:
            chunk = self.read(CHUNK if limit is None else min(CHUNK, limit - done))
            if not chunk:
                return True
            done += len(chunk)
        return False

    def close(self) -> None:
        if not self.closed:
            try:
                self._inner.close()
            finally:
                super().close()


def copy_stream(src: IO[bytes], dst: IO[bytes]) -> int:
    """Copy ``src`` to ``dst`` in chunks; return the number of bytes copied."""
    total = 0
    while True:
        chunk = src.read(CHUNK)
        if not chunk:
            return total
        dst.write(chunk)
        total += len(chunk)
