"""Atomic outputs: every file a command produces is written under a temporary name next to its
final path and renamed only when the whole command succeeded, so an interrupted or failed run
leaves nothing half-written behind."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from .errors import BuildError, UserError

#: What a write into a full file system raises (ENOSPC), or into a full quota (EDQUOT).
_FULL = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}

# the output directory (or a parent we would create) cannot be written at all: the user's choice
_UNWRITABLE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def _temp_name(final: Path) -> Path:
    """A new name for a temporary file beside ``final`` (``.NAME.RANDOM.tmp``); not created."""
    return final.parent / f".{final.name}.{secrets.token_hex(6)}.tmp"


def _create(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))


@contextlib.contextmanager
def work_dir(parent: Path, prefix: str) -> Iterator[Path]:
    """A new directory ``parent/PREFIX.RANDOM``, removed with what it holds when the block ends.

    Unlike ``tempfile.TemporaryDirectory`` it is created inside the ``try`` that removes it: a
    SIGTERM/Ctrl-C raised just after the directory was made cannot leave it behind."""
    path = parent / f"{prefix}{secrets.token_hex(6)}"
    ours = True
    try:
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            ours = False  # someone else's (48 random bits: should not happen)
            raise
        yield path
    finally:
        if ours:
            shutil.rmtree(path, ignore_errors=True)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort on filesystems that refuse it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def free_bytes(directory: Path) -> int | None:
    """The bytes this process may still write below ``directory`` (``None`` when unknown)."""
    with contextlib.suppress(OSError):
        st = os.statvfs(directory)
        return st.f_bavail * st.f_frsize if os.geteuid() else st.f_bfree * st.f_frsize
    return None


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n < 10_000_000 else f"{round(n / 1e6)} MB"


@contextlib.contextmanager
def full_disk_is_an_error(places: Sequence[tuple[str, Path, str]]) -> Iterator[None]:
    """Turn a full file system (ENOSPC, EDQUOT) met in the block, by this thread or by a worker
    whose error it re-raises, into a :class:`BuildError` (exit 1) naming what was being written.

    ``places``: ``(what, directory, hint)`` for each directory the block writes below. The one
    that filled up is the one with the least space left afterwards (the first on a tie); its
    free space before the block is the lower bound given for what was needed. The block's own
    ``with`` statements have removed their temporary files by the time this one sees the error."""
    before = [free_bytes(directory) for _, directory, _ in places]
    try:
        yield
    except OSError as exc:
        if exc.errno not in _FULL or not places:
            raise
        after = [free_bytes(directory) for _, directory, _ in places]
        i = min(range(len(places)), key=lambda k: (after[k] if after[k] is not None else 1 << 62, k))
        what, directory, hint = places[i]
        free = before[i]
        need = f" (needed more than the {_megabytes(free)} that were free in {directory})" if free is not None else ""
        raise BuildError(f"{_FULL[exc.errno]} writing {what}{need}", hint=hint) from exc


def _unwritable(directory: Path, exc: OSError) -> UserError:
    return UserError(
        f"cannot write to output directory {directory}: {exc.strerror}",
        hint="choose a writable directory (--dir) or output file (--o)",
    )


def check_writable(directory: Path) -> None:
    """Fail early, before any work, when no file can be created in ``directory`` (or, while it does
    not exist yet, in the nearest existing directory above it). Nothing is created."""
    existing = directory
    while not existing.is_dir():
        if existing.exists():
            raise UserError(f"cannot write below {existing}: it is not a directory")
        if existing.parent == existing:
            return
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        code = errno.EROFS if _read_only(existing) else errno.EACCES
        raise _unwritable(directory, OSError(code, os.strerror(code)))


def _read_only(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


class OutputSet:
    """A transaction over output files: ``path(final)`` hands out a temp path; ``commit()`` renames
    them all; leaving the ``with`` block by an exception (or without commit) removes them all."""

    def __init__(self) -> None:
        self._pending: dict[Path, Path] = {}
        self._created: list[Path] = []  # directories we made, removed again on abort when empty

    def path(self, final: str | os.PathLike[str]) -> Path:
        """A fresh temporary path that becomes ``final`` on commit."""
        target = Path(final)
        try:
            self._make_parents(target.parent)
            if target in self._pending:
                return self._pending[target]
            # recorded before it is created: a signal raised just after the file was made (SIGTERM
            # and Ctrl-C unwind as exceptions) still finds it in the set, and abort removes it
            temp = self._pending[target] = _temp_name(target)
            try:
                _create(temp)
            except BaseException as exc:
                if isinstance(exc, FileExistsError):  # not ours: leave it alone
                    del self._pending[target]
                raise
        except OSError as exc:
            if exc.errno not in _UNWRITABLE:
                raise
            raise _unwritable(target.parent, exc) from exc
        return temp

    def _make_parents(self, directory: Path) -> None:
        missing = []
        while not directory.is_dir():
            if directory.exists():
                raise UserError(f"cannot write below {directory}: it is not a directory")
            missing.append(directory)
            directory = directory.parent
        for d in reversed(missing):
            self._created.append(d)  # first, as for files: abort's rmdir is harmless if it was not made
            try:
                d.mkdir()
            except FileExistsError:
                self._created.remove(d)  # made by someone else meanwhile
                if not d.is_dir():
                    raise

    @contextlib.contextmanager
    def open(self, final: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
        with open(self.path(final), "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())

    @property
    def finals(self) -> list[Path]:
        return list(self._pending)

    def commit(self) -> list[Path]:
        done = []
        umask = os.umask(0)
        os.umask(umask)
        for final, temp in self._pending.items():
            os.chmod(temp, 0o666 & ~umask)
            os.replace(temp, final)
            fsync_dir(final.parent)
            done.append(final)
        self._pending.clear()
        self._created.clear()
        return done

    def abort(self) -> None:
        for temp in self._pending.values():
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        self._pending.clear()
        for directory in reversed(self._created):
            with contextlib.suppress(OSError):
                directory.rmdir()
        self._created.clear()

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.abort()
