"""A writer that hands its bytes to a worker thread, in fixed-size blocks, through a bounded queue.

Used to gzip the initrd on the second core while the build thread reads layers and writes the
cpio: ISA-L compression releases the GIL, so both run at once. The blocks the worker sees depend
only on the bytes written (never on timing or the machine), so the output stays deterministic;
the queue is bounded, so memory stays flat (``depth`` blocks at most).
"""

from __future__ import annotations

import queue
from types import TracebackType
from typing import Protocol

from .. import workers

#: Block size handed to the worker: large enough that per-block costs vanish, small enough to overlap.
BLOCK = 1 << 20
#: Writes queued ahead of the worker (each at most a chunk of the caller's, ~1 MiB).
DEPTH = 8


class Sink(Protocol):
    """Gets bytes or a memoryview that is only valid during the call (it must not keep it)."""

    def write(self, data: bytes | memoryview, /) -> object: ...


class ThreadedWriter:
    """``write()`` queues bytes for a worker thread that passes them to ``target.write`` in
    ``block``-sized pieces (the last one shorter), in order; :meth:`close` waits for the worker
    and re-raises its error. An error in the worker is also raised by the next ``write``.
    ``target`` is not closed.

    The writing thread does not copy ``bytes`` (it hands over the object); the worker passes a
    block lying inside one write as a memoryview and joins the others (one copy, on its core)."""

    def __init__(self, target: Sink, *, block: int = BLOCK, depth: int = DEPTH, name: str = "writer") -> None:
        self._target = target
        self._block = block
        self._queue: queue.Queue[bytes | None] = queue.Queue(depth)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = workers.thread(self._work, name)
        workers.start(self, self._thread)

    def _work(self) -> None:
        size = self._block
        pieces: list[memoryview] = []  # the block being gathered
        have = 0
        while True:
            item = self._queue.get()
            if self._error is not None:
                # after an error the queue is still emptied, so the writing thread never blocks on put()
                if item is None:
                    return
                continue
            try:
                if item is None:
                    if pieces:
                        self._target.write(b"".join(pieces))
                    return
                view = memoryview(item)
                while view:
                    if not have and len(view) >= size:
                        self._target.write(view[:size])  # a whole block inside one write: no copy
                        view = view[size:]
                        continue
                    take = view[: size - have]
                    pieces.append(take)
                    have += len(take)
                    view = view[len(take) :]
                    if have == size:
                        self._target.write(b"".join(pieces))  # the one copy: pieces of several writes
                        pieces.clear()
                        have = 0
            except BaseException as exc:  # handed to the writing thread, raised there
                self._error = exc
                if item is None:
                    return

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        if self._closed:
            raise ValueError("write to a closed ThreadedWriter")
        if self._error is not None:
            raise self._error
        n = len(data)
        if n:
            self._queue.put(data if isinstance(data, bytes) else bytes(data))
        return n

    def close(self) -> None:
        """Hand over what is left, wait for the worker, and raise its error if it had one."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        workers.join(self._thread)
        workers.finished(self)
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop the worker without raising (an error elsewhere is already on its way)."""
        if self._closed:
            return
        self._closed = True
        self._error = self._error or _Aborted()
        self._queue.put(None)
        workers.join(self._thread)
        workers.finished(self)

    def stop_worker(self) -> None:
        """:meth:`abort` (see :mod:`linuxkit.workers`)."""
        self.abort()

    def __enter__(self) -> ThreadedWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


class _Aborted(Exception):
    """Marks a writer stopped by :meth:`ThreadedWriter.abort` (the worker skips what is queued)."""
