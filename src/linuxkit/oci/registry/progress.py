"""Progress of blob transfers: rich bars on a terminal, one plain line per finished blob otherwise.

One display is shared by every transfer running at the same time (rich allows one live
display), so images pulled in parallel show their blobs together.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import Progress, TaskID

from ... import log
from ..descriptor import Descriptor


class Transfers:
    """The shared display; :meth:`track` one blob, :meth:`done` when it is complete."""

    def __init__(self) -> None:
        self.progress: Progress = log.progress()
        self.plain = self.progress.disable
        self._lock = threading.Lock()

    def track(self, what: str, desc: Descriptor) -> tuple[TaskID, Callable[[int], None]]:
        task = self.progress.add_task(f"{what} {desc.digest[7:19]}", total=desc.size if desc.size >= 0 else None)

        def advance(n: int) -> None:
            self.progress.advance(task, n)

        return task, advance

    def done(self, task: TaskID, what: str, desc: Descriptor) -> None:
        self.progress.remove_task(task)
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
            _active.progress.start()
        _users += 1
        current = _active
    try:
        yield current
    finally:
        with _guard:
            _users -= 1
            if _users == 0:
                current.progress.stop()
                _active = None


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"
