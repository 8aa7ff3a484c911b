"""Worker threads, and the guarantee that none outlives the command.

The build runs a few helper threads (the initrd's gzip in :mod:`linuxkit.formats.pipe`, the layer
read-ahead in :mod:`linuxkit.oci.layers`). Each is owned by an object whose ``stop_worker()`` tells
the thread to stop and joins it; owners call it when they close, including on errors.

The threads are daemon threads so that a forgotten one can never keep the process alive, but a
daemon thread still running at interpreter exit is worse than a hang: the interpreter freezes it
wherever it is, possibly holding the lock of a buffered file the main thread then touches while
finalising, and Python aborts ("Fatal Python error: ... possibly due to daemon threads", exit 134).
So every owner is registered here while its thread runs and the CLI calls :func:`stop_all` before
it returns, whatever happened: an error that left an owner unreachable but not yet collected (a
suspended generator held by a traceback) still gets its thread stopped by the main thread.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Protocol


class Owner(Protocol):
    def stop_worker(self) -> object:
        """Stop the owner's thread and join it (idempotent; never raises for the thread's error)."""


_live: weakref.WeakSet[Owner] = weakref.WeakSet()
_lock = threading.Lock()


def thread(target: Callable[[], object], name: str) -> threading.Thread:
    """A daemon thread for :func:`start` (the owner keeps it before it is registered)."""
    return threading.Thread(target=target, name=name, daemon=True)


def start(owner: Owner, worker: threading.Thread) -> None:
    """Register ``owner`` and start its thread ``worker``.

    A signal (SIGTERM, Ctrl-C) may raise while ``Thread.start()`` waits for the new thread to run:
    the owner is then registered and its ``stop_worker()`` must cope with a thread that may or may
    not run yet (see :func:`join`); owners stop their thread by a flag or queue it checks first."""
    with _lock:
        _live.add(owner)
    worker.start()


def join(worker: threading.Thread, timeout: float | None = None) -> None:
    """``worker.join()``, also for a thread whose ``start()`` was cut short by a signal: it never
    started, or it starts later and finds the stop request its owner left before joining."""
    try:
        worker.join(timeout)
    except RuntimeError:
        if worker.is_alive():
            raise


def finished(owner: Owner) -> None:
    """``owner``'s thread has ended (called by ``stop_worker``)."""
    with _lock:
        _live.discard(owner)


def running() -> int:
    """How many owners still have a thread (for tests and debugging)."""
    with _lock:
        return len(_live)


def stop_all() -> int:
    """Stop and join every worker thread still running; returns how many there were."""
    with _lock:
        owners = list(_live)
    for owner in owners:
        owner.stop_worker()
    return len(owners)
