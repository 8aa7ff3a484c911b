"""Atomic outputs: every file a command produces is written under a temporary name next to its
final path and renamed only when the whole command succeeded, so an interrupted or failed run
leaves nothing half-written behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO

from .errors import UserError


def _temp_name(final: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    return Path(name)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort on filesystems that refuse it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class OutputSet:
    """A transaction over output files: ``path(final)`` hands out a temp path; ``commit()`` renames
    them all; leaving the ``with`` block by an exception (or without commit) removes them all."""

    def __init__(self) -> None:
        self._pending: dict[Path, Path] = {}

    def path(self, final: str | os.PathLike[str]) -> Path:
        """A fresh temporary path that becomes ``final`` on commit."""
        target = Path(final)
        if not target.parent.is_dir():
            raise UserError(f"cannot write {target}: directory {target.parent} does not exist", hint="create it first")
        if target in self._pending:
            return self._pending[target]
        temp = _temp_name(target)
        self._pending[target] = temp
        return temp

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
        return done

    def abort(self) -> None:
        for temp in self._pending.values():
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        self._pending.clear()

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.abort()
