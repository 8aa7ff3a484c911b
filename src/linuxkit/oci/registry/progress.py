"""Progress of blob transfers: rich bars on a terminal, one plain line per finished blob otherwise.

One display is shared by every transfer running at the same time (rich allows one live
display), so images pulled in parallel show their blobs together. Off a terminal rich is not
even imported (start-up time).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ... import log
from ..descriptor import Descriptor

if TYPE_CHECKING:
    from rich.progress import Progress


def _ignore(_n: int) -> None:
    pass


class Transfers:
    """The shared display; :meth:`track` one blob, :meth:`done` when it is complete."""

    def __init__(self) -> None:
        self.progress: Progress | None = log.progress() if log.level() >= log.INFO and log.is_terminal() else None
        self.plain = self.progress is None or self.progress.disable
        self._lock = threading.Lock()

    def start(self) -> None:
        if self.progress is not None:
            self.progress.start()

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()

    def track(self, what: str, desc: Descriptor) -> tuple[int | None, Callable[[int], None]]:
        progress = self.progress
        if progress is None:
            return None, _ignore
        task = progress.add_task(f"{what} {desc.digest[7:19]}", total=desc.size if desc.size >= 0 else None)

        def advance(n: int) -> None:
            progress.advance(task, n)

        return task, advance

    def done(self, task: int | None, what: str, desc: Descriptor) -> None:
        if self.progress is not None and task is not None:
            from rich.progress import TaskID

            self.progress.remove_task(TaskID(task))
        if self.plain:
            log.info(f"{what} {desc.digest[7:19]}: {_size(desc.size)} done")


_active: Transfers | None = None
_users = 0
_guard = threading.Lock()


@contextmanager
def transfers() -> Iterator[Transfers]:
    """The display, started by its first user and stopped by its last."""
    global _active, _users
    with _guard:
        if _active is None:
            _active = Transfers()
            _active.start()
        _users += 1
        current = _active
    try:
        yield current
    finally:
        with _guard:
            _users -= 1
            if _users == 0:
                current.stop()
                _active = None


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"
