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


#: Offsets (multiples of this) at which the digest of the prefix read so far is remembered.
PREFIX_STRIDE = 4 << 20
#: blob digest → {offset: sha256 of the blob's first ``offset`` bytes}, for blobs verified in full
#: by this process (see :meth:`VerifyingReader.settle`); 32 bytes per 4 MiB of blob.
_VERIFIED_PREFIXES: dict[str, dict[int, bytes]] = {}


class VerifyingReader(io.RawIOBase):
    """Reads ``inner`` while hashing it; at end of stream checks the digest and size it was given.

    The check happens once, when the expected size has been read, when a read returns end-of-file
    or goes past the expected size, or when :meth:`finish` is called; so a consumer that reads
    ``expected_size`` bytes (or everything) cannot miss a mismatch: the read that brings the last
    byte raises instead. ``expected_digest`` may be ``None`` to only compute it (see :attr:`digest`).

    A consumer that stops early calls :meth:`settle`, which reads the rest and checks it, or, when
    this process already verified the whole blob, reads only up to the next multiple of
    :data:`PREFIX_STRIDE` and checks that the bytes read so far hash as that verified blob's
    prefix did (sha256 of a prefix pins the prefix's bytes: no other bytes give that digest).
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
        self._prefixes: dict[int, bytes] = {}

    @property
    def digest(self) -> str:
        return f"{ALGORITHM}:{self._hash.hexdigest()}"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        if not len(view):
            return 0
        stride_end = PREFIX_STRIDE - self.size % PREFIX_STRIDE
        data = self._inner.read(min(len(view), stride_end))  # a read never crosses a stride
        if not data:
            self.finish()
            return 0
        n = len(data)
        view[:n] = data
        self._hash.update(data)
        self.size += n
        if n == stride_end and self._expected_digest is not None:
            self._prefixes[self.size] = self._hash.copy().digest()
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
        if self._expected_digest is not None and len(self._prefixes) > 1:  # worth it from 8 MiB on
            _VERIFIED_PREFIXES[self._expected_digest] = self._prefixes

    def settle(self) -> None:
        """Make sure every byte read so far belongs to the expected blob, for a consumer that stops
        early: read (and hash) the rest and check it, or just enough of it (see the class); raises
        :class:`DigestError` on a mismatch."""
        if self.finished:
            return
        known = _VERIFIED_PREFIXES.get(self._expected_digest or "")
        if known:
            stop = self.size + (PREFIX_STRIDE - self.size % PREFIX_STRIDE if self.size % PREFIX_STRIDE else 0)
            if stop in known:
                self.drain(stop - self.size)
                if self.size == stop:
                    if self._hash.copy().digest() != known[stop]:
                        self.finished = True
                        raise DigestError(
                            f"{self.what}: content differs from the blob verified earlier in this run", hint=self.hint
                        )
                    self.finished = True
                    return
        self.drain()
        self.finish()

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
