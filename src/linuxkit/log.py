"""The one progress and logging layer: steps with timing, messages, progress bars (rich).

Everything goes to stderr so that ``--o -`` can stream an image on stdout. rich is imported only
when it can show something plain text cannot: when stderr is a terminal (or the environment asks
rich for colour), when a console is configured, or when a progress display is made. Otherwise
messages are written as the plain lines rich would print there (start-up time).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

QUIET = 0
INFO = 1
DEBUG = 2
TRACE = 3


#: environment variables through which rich decides about terminals and colour by itself
_RICH_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


class _State:
    def __init__(self) -> None:
        self.console: Console | None = None
        self.level = INFO
        self.depth = 0


_state = _State()


def configure(level: int = INFO, *, console: Console | None = None) -> None:
    """Set the verbosity (0 quiet, 1 info, 2 debug, 3 trace) and optionally the console."""
    _state.level = level
    if console is not None:
        _state.console = console


def level() -> int:
    return _state.level


def console() -> Console:
    """The rich console (made on first use: stderr, no highlighting, no wrapping)."""
    if _state.console is None:
        from rich.console import Console

        _state.console = Console(stderr=True, highlight=False, soft_wrap=True)
    return _state.console


def _plain() -> bool:
    """Whether plain lines on stderr show exactly what the rich console would."""
    if _state.console is not None or any(name in os.environ for name in _RICH_ENV):
        return False
    try:
        return not sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def is_terminal() -> bool:
    """Whether output goes to a terminal (progress bars are shown only there)."""
    return not _plain() and console().is_terminal


def _print(text: str, style: str | None) -> None:
    if _plain():
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
        return
    from rich.markup import escape

    console().print(escape(text), style=style)


def _emit(prefix: str, message: str, style: str | None = None) -> None:
    _print(f"{'  ' * _state.depth}{prefix}{message}", style)


def info(message: str) -> None:
    if _state.level >= INFO:
        _emit("", message)


def debug(message: str) -> None:
    if _state.level >= DEBUG:
        _emit("", message, style="dim")


def warn(message: str) -> None:
    _emit("warning: ", message, style="yellow")


def error(message: str) -> None:
    _print(message, "bold red")


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

    shown = console()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=shown,
        disable=_state.level < INFO or not shown.is_terminal,
        transient=True,
    )
