"""An OCI image layout directory, written crash-safely and read-compatibly with go-containerregistry.

``oci-layout``, ``index.json`` and ``blobs/sha256/<hex>``. Every file is written to a temporary
name in its final directory, flushed with ``fsync`` and renamed into place (then the directory is
synced), so a crash at any point leaves either the old or the new file, never a partial one.
Blob content is hashed while it is written and a mismatch never reaches the final path.
Temporary files start with ``.tmp-`` and are never referenced by anything. Their writer holds a
``flock`` on each until it is renamed or removed, so the ones a killed process left behind (SIGKILL,
power loss) can be told from the ones a live process is writing: see :meth:`Layout.remove_stale_temps`.

``index.json`` is written as go-containerregistry writes it after a change (``MarshalIndent`` with
three spaces, descriptor fields in Go struct order, annotations sorted, no trailing newline); a new
layout gets the compact empty index ``layout.Write(empty.Index)`` writes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from ..outputs import fsync_dir
from . import digest as _digest
from . import jsonfmt
from .descriptor import Descriptor
from .lock import CacheLock
from .mediatypes import OCI_INDEX

OCI_LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
#: Byte for byte what go-containerregistry's ``layout`` package writes.
OCI_LAYOUT_CONTENT = b'{\n    "imageLayoutVersion": "1.0.0"\n}'
EMPTY_INDEX = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
TMP_PREFIX = ".tmp-"
#: A temporary file this old and unlocked is a leftover (see :meth:`Layout.remove_stale_temps`).
STALE_AFTER = 300.0
#: The layout directories this process has swept of leftovers (see :meth:`Layout.remove_stale_temps_once`).
_swept: set[str] = set()
_swept_lock = threading.Lock()
#: Largest manifest, index or config we read into memory.
MAX_JSON_BLOB = jsonfmt.MAX_SIZE


class LayoutError(ValueError):
    """The layout (index.json or a blob) is malformed or incomplete; the message says where."""


class AtomicFile:
    """A temporary file beside ``final`` that becomes ``final`` on :meth:`commit` (or is removed)."""

    def __init__(self, final: Path, mode: int = 0o644) -> None:
        self.final = final
        self.tmp = final.parent / f"{TMP_PREFIX}{final.name[:16]}-{secrets.token_hex(6)}"
        self._mode = mode
        self.file: IO[bytes] = open(self.tmp, "xb")  # noqa: SIM115 - closed by commit/abort
        # held until the file is renamed or removed (closing it drops the lock): the mark of a live writer
        fcntl.flock(self.file.fileno(), fcntl.LOCK_EX)
        self.done = False

    def write(self, data: bytes) -> int:
        return self.file.write(data)

    def commit(self, final: Path | None = None) -> Path:
        target = final or self.final
        self.file.flush()
        os.fsync(self.file.fileno())
        os.fchmod(self.file.fileno(), self._mode)
        try:
            os.replace(self.tmp, target)  # still locked: renamed before anyone may take it for a leftover
        finally:
            self.file.close()
        self.done = True
        fsync_dir(target.parent)
        return target

    def abort(self) -> None:
        if not self.done:
            self.file.close()
            with contextlib.suppress(FileNotFoundError):
                self.tmp.unlink()
            self.done = True


def write_file_atomic(path: Path, data: bytes) -> None:
    out = AtomicFile(path)
    try:
        out.write(data)
        out.commit()
    finally:
        out.abort()


class BlobWriter:
    """Receives a blob's bytes, hashing them, and files it under its digest on :meth:`commit`."""

    def __init__(self, layout: Layout) -> None:
        self._layout = layout
        layout.blobs_dir.mkdir(parents=True, exist_ok=True)
        self._out = AtomicFile(layout.blobs_dir / "blob")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._out.write(bytes(data))
        self._hash.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        """For ``gzip.GzipFile`` and friends; data reaches the disk on :meth:`commit`."""

    @property
    def digest(self) -> str:
        return f"{_digest.ALGORITHM}:{self._hash.hexdigest()}"

    def commit(self, expected_digest: str | None = None, expected_size: int | None = None) -> tuple[str, int]:
        """Check the content against what was expected, then rename it to its digest."""
        actual = self.digest
        try:
            if expected_size is not None and expected_size >= 0 and expected_size != self.size:
                label = expected_digest or actual
                raise _digest.DigestError(f"blob {label}: {self.size} bytes, expected {expected_size}")
            if expected_digest is not None and expected_digest != actual:
                raise _digest.DigestError(f"blob content has digest {actual}, expected {expected_digest}")
            self._out.commit(self._layout.blob_path(actual))
        finally:
            self._out.abort()
        return actual, self.size

    def abort(self) -> None:
        self._out.abort()


def _remove_if_stale(path: Path, min_age: float) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False  # gone already (renamed into place), or not a plain file we may touch
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or time.time() - st.st_mtime < min_age:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False  # a live writer holds it
            raise
        try:
            now = os.lstat(path)
        except FileNotFoundError:
            return False
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            return False
        path.unlink()
        return True
    except OSError:
        return False  # best effort: a leftover that cannot be removed now stays for the next run
    finally:
        os.close(fd)


class Layout:
    """One OCI image layout directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.blobs_dir = self.root / "blobs" / _digest.ALGORITHM
        self.index_path = self.root / INDEX_FILE
        self.lock = CacheLock(self.root)

    # -- setup -----------------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.index_path.is_file()

    def ensure(self) -> None:
        """Create the directory, ``oci-layout`` and an empty ``index.json`` when missing."""
        if self.exists() and (self.root / OCI_LAYOUT_FILE).is_file():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with self.lock.exclusive():
            if not (self.root / OCI_LAYOUT_FILE).is_file():
                write_file_atomic(self.root / OCI_LAYOUT_FILE, OCI_LAYOUT_CONTENT)
            if not self.exists():
                write_file_atomic(self.index_path, EMPTY_INDEX)

    def remove_stale_temps(self, min_age: float = STALE_AFTER) -> list[Path]:
        """Remove the temporary files (``.tmp-*`` in the layout and its blob directory) that an
        interrupted process left behind; returns them.

        A file is stale when no process holds its ``flock`` (every writer here holds one from
        creation to rename, and the kernel drops it when the writer dies, even by SIGKILL) and it
        was not modified for ``min_age`` seconds. The age covers the instant between a writer
        creating its file and locking it, and writers that do not lock (older versions): a live
        writer keeps its file's mtime fresh as it writes. The check and the removal run under the
        exclusive cache lock, so two cleaners never race; the file is removed only if the name
        still refers to the file that was found unlocked."""
        if not self.root.is_dir():
            return []
        removed: list[Path] = []
        with self.lock.exclusive():
            for directory in (self.root, self.blobs_dir):
                try:
                    names = [n for n in os.listdir(directory) if n.startswith(TMP_PREFIX)]
                except OSError:
                    continue
                for name in sorted(names):
                    path = directory / name
                    if _remove_if_stale(path, min_age):
                        removed.append(path)
        with _swept_lock:
            _swept.add(self._sweep_key())
        return removed

    def remove_stale_temps_once(self) -> list[Path]:
        """:meth:`remove_stale_temps` the first time this process asks for this directory (under
        any spelling of its path, from any thread); nothing after.

        Leftovers are made only by processes that died, so one sweep per command finds them all;
        sweeping before every pull (a build pulls many images, several at a time) listed the blob
        directory and took the exclusive cache lock each time for nothing.
        """
        key = self._sweep_key()
        with _swept_lock:
            if key in _swept:
                return []
            _swept.add(key)
        try:
            return self.remove_stale_temps()
        except BaseException:
            with _swept_lock:
                _swept.discard(key)  # not swept: the next pull tries again
            raise

    def _sweep_key(self) -> str:
        return os.path.realpath(self.root)

    # -- blobs -----------------------------------------------------------------------------------

    def blob_path(self, dig: str) -> Path:
        return self.blobs_dir / _digest.hex_of(dig)

    def has_blob(self, dig: str, size: int | None = None) -> bool:
        """Whether the blob is present (with ``size``, when given and not negative)."""
        try:
            st = self.blob_path(dig).stat()
        except FileNotFoundError:
            return False
        return size is None or size < 0 or st.st_size == size

    def open_blob(self, dig: str, size: int | None = None, what: str | None = None) -> _digest.VerifyingReader:
        """The blob as a stream that checks its digest (and size) when read to the end.

        ``FileNotFoundError`` when the blob is missing.
        """
        raw = open(self.blob_path(dig), "rb")  # noqa: SIM115 - owned by the returned reader
        label = what or f"blob {dig}"
        if size is not None and size >= 0:
            actual = os.fstat(raw.fileno()).st_size
            if actual != size:  # the cheap check first; the digest is checked as it is read
                raw.close()
                raise _digest.DigestError(f"{label}: {actual} bytes, expected {size}")
        return _digest.VerifyingReader(raw, dig, size, label)

    def read_blob(self, dig: str, size: int | None = None, what: str | None = None) -> bytes:
        """A small blob (manifest, index, config), verified; ``FileNotFoundError`` if missing."""
        path = self.blob_path(dig)
        label = what or f"blob {dig}"
        if path.stat().st_size > MAX_JSON_BLOB:
            raise _digest.DigestError(f"{label}: larger than {MAX_JSON_BLOB} bytes")
        data = path.read_bytes()
        if size is not None and size >= 0 and len(data) != size:
            raise _digest.DigestError(f"{label}: {len(data)} bytes, expected {size}")
        _digest.check_bytes(data, dig, label)
        return data

    def read_json_blob(self, dig: str, size: int | None = None, what: str | None = None) -> dict[str, Any]:
        label = what or f"blob {dig}"
        try:
            obj = jsonfmt.loads(self.read_blob(dig, size, label), label, max_size=MAX_JSON_BLOB)
        except ValueError as exc:
            raise LayoutError(str(exc)) from exc
        if not isinstance(obj, dict):
            raise LayoutError(f"{label}: not a JSON object")
        return obj

    @contextlib.contextmanager
    def new_blob(self) -> Iterator[BlobWriter]:
        """A :class:`BlobWriter`; the caller must ``commit()`` it inside the block or it is discarded."""
        writer = BlobWriter(self)
        try:
            yield writer
        finally:
            writer.abort()

    def write_blob(
        self, stream: IO[bytes], expected_digest: str | None = None, expected_size: int | None = None
    ) -> tuple[str, int]:
        """Store a blob from ``stream``; return ``(digest, size)``.

        When ``expected_digest`` names a blob already present (with ``expected_size``, if given),
        nothing is read or written, as go-containerregistry does.
        """
        if expected_digest is not None and self.has_blob(expected_digest, expected_size):
            present = expected_size if expected_size is not None else self.blob_path(expected_digest).stat().st_size
            return expected_digest, present
        with self.new_blob() as writer:
            while True:
                chunk = stream.read(_digest.CHUNK)
                if not chunk:
                    break
                writer.write(chunk)
            return writer.commit(expected_digest, expected_size)

    def write_blob_bytes(self, data: bytes, expected_digest: str | None = None) -> tuple[str, int]:
        dig = _digest.of_bytes(data)
        if expected_digest is not None and expected_digest != dig:
            raise _digest.DigestError(f"blob content has digest {dig}, expected {expected_digest}")
        if self.has_blob(dig, len(data)):
            return dig, len(data)
        with self.new_blob() as writer:
            writer.write(data)
            return writer.commit(dig, len(data))

    def remove_blob(self, dig: str) -> bool:
        try:
            self.blob_path(dig).unlink()
        except FileNotFoundError:
            return False
        return True

    def blob_digests(self) -> list[str]:
        """Every blob file present (temporary files excluded)."""
        if not self.blobs_dir.is_dir():
            return []
        return sorted(
            f"{_digest.ALGORITHM}:{p.name}" for p in self.blobs_dir.iterdir() if _digest.is_valid(f"sha256:{p.name}")
        )

    # -- index.json ------------------------------------------------------------------------------

    def read_index(self) -> list[Descriptor]:
        """The descriptors of ``index.json`` (under the shared lock); empty when there is none."""
        with self.lock.shared():
            return self._read_index_unlocked()

    def _read_index_unlocked(self) -> list[Descriptor]:
        return self._read_index_full()[1]

    def _read_index_full(self) -> tuple[dict[str, Any], list[Descriptor]]:
        try:
            obj = jsonfmt.loads(jsonfmt.read_limited(self.index_path, str(self.index_path)), str(self.index_path))
        except FileNotFoundError:
            return {}, []
        except ValueError as exc:
            raise LayoutError(str(exc)) from exc
        except OSError as exc:
            raise LayoutError(f"{self.index_path}: cannot be read: {exc.strerror or exc}") from exc
        if not isinstance(obj, dict):
            raise LayoutError(f"{self.index_path}: not a JSON object")
        manifests = obj.get("manifests") or []
        if not isinstance(manifests, list):
            raise LayoutError(f"{self.index_path}: manifests is not a list")
        out = []
        for i, item in enumerate(manifests):
            try:
                out.append(Descriptor.from_json(item, f"{self.index_path}: manifests[{i}]"))
            except ValueError as exc:
                raise LayoutError(str(exc)) from exc
        return obj, out

    def update_index(self, change: Callable[[list[Descriptor]], list[Descriptor]]) -> list[Descriptor]:
        """Read-modify-write ``index.json`` under the exclusive lock; returns the new list."""
        self.ensure()
        with self.lock.exclusive():
            obj, before = self._read_index_full()
            after = change(list(before))
            # Keep what else the index holds (annotations...), as go-containerregistry does.
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, **obj, "manifests": [d.to_json() for d in after]}
            write_file_atomic(self.index_path, jsonfmt.dumps(jsonfmt.ordered(index, jsonfmt.INDEX_KEYS), indent=3))
            return after
