"""The cache lock: the same POSIX record lock on ``<cache>/.lock`` that upstream takes.

Upstream LinuxKit (``cache/const.go``, ``util/filelock_unix.go``) holds an exclusive
``fcntl(F_SETLKW)`` lock on the whole of ``.lock`` while it changes ``index.json``. We take that
lock too, so our processes and upstream's exclude each other. POSIX record locks belong to a
process, not to a file descriptor (two descriptors in one process never conflict, and closing any
of them drops the lock), so we first take a BSD ``flock`` on the same descriptor: that one does
exclude threads and :class:`CacheLock` objects within one process. Order is always flock, then
fcntl, so the two cannot deadlock each other.

Readers take the shared form: upstream rewrites ``index.json`` in place (truncate, then write)
under its exclusive lock, so a reader must wait for it. Writers here never need that (they rename
a complete file into place) but take the exclusive lock for read-modify-write.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import BuildError

LOCK_FILE = ".lock"


class CacheLock:
    """Shared/exclusive lock on a cache directory; re-entrant within one thread."""

    def __init__(self, root: Path) -> None:
        self.path = root / LOCK_FILE
        self._local = threading.local()

    def _held(self) -> tuple[str, int] | None:
        held: tuple[str, int] | None = getattr(self._local, "held", None)
        return held

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._acquire("exclusive"):
            yield

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._acquire("shared"):
            yield

    @contextmanager
    def _acquire(self, mode: str) -> Iterator[None]:
        held = self._held()
        if held is not None:
            if held[0] == "shared" and mode == "exclusive":
                raise RuntimeError("cannot upgrade a shared cache lock to an exclusive one")
            self._local.held = (held[0], held[1] + 1)
            try:
                yield
            finally:
                self._local.held = held
            return
        fd = self._open(mode)
        if fd is None:
            # A read-only cache we cannot even open the lock file of: nobody can be writing it.
            yield
            return
        try:
            exclusive = mode == "exclusive"
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            fcntl.lockf(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            self._local.held = (mode, 1)
            try:
                yield
            finally:
                self._local.held = None
                fcntl.lockf(fd, fcntl.LOCK_UN)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _open(self, mode: str) -> int | None:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if mode == "shared" and exc.errno == errno.ENOENT:
                return None  # no cache directory yet: nothing to read, nobody writing
            if mode == "shared" and exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
                try:
                    return os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    return None
            raise BuildError(f"cannot lock the cache: {self.path}: {exc.strerror}") from exc
