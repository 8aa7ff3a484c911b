"""The one progress and logging layer: steps with timing, messages, progress bars (rich).

Everything goes to stderr so that ``--o -`` can stream an image on stdout.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:  # rich.progress is imported only when a progress display is made (start-up time)
    from rich.progress import Progress

QUIET = 0
INFO = 1
DEBUG = 2
TRACE = 3


@dataclass
class _State:
    console: Console = field(default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True))
    level: int = INFO
    depth: int = 0


_state = _State()


def configure(level: int = INFO, *, console: Console | None = None) -> None:
    """Set the verbosity (0 quiet, 1 info, 2 debug, 3 trace) and optionally the console."""
    _state.level = level
    if console is not None:
        _state.console = console


def level() -> int:
    return _state.level


def console() -> Console:
    return _state.console


def _emit(prefix: str, message: str, style: str | None = None) -> None:
    indent = "  " * _state.depth
    _state.console.print(f"{indent}{prefix}{escape(message)}", style=style)


def info(message: str) -> None:
    if _state.level >= INFO:
        _emit("", message)


def debug(message: str) -> None:
    if _state.level >= DEBUG:
        _emit("", message, style="dim")


def warn(message: str) -> None:
    _emit("warning: ", message, style="yellow")


def error(message: str) -> None:
    _state.console.print(escape(message), style="bold red")


@contextmanager
def step(title: str) -> Iterator[None]:
    """A named, timed step; nested steps are indented."""
    start = time.monotonic()
    if _state.level >= INFO:
        _emit("▸ ", title)
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1
    if _state.level >= DEBUG:
        _emit("✓ ", f"{title} ({time.monotonic() - start:.2f}s)", style="dim")


def progress() -> Progress:
    """A transfer progress display: bars on a terminal, nothing elsewhere (steps still print)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=_state.console,
        disable=_state.level < INFO or not _state.console.is_terminal,
        transient=True,
    )
