"""What the cloud verbs share while they wait on a provider: the delays between polls, and the instance console
copied to our standard output as it arrives."""

from __future__ import annotations

import sys
from collections.abc import Iterator


def poll_delays(first: float = 0.5, longest: float = 15.0) -> Iterator[float]:
    """Delays between polls: doubling from ``first`` up to ``longest`` (fast events are seen fast, long waits
    cost few requests)."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, longest)


def console_write(text: str) -> None:
    """A piece of an instance's console output, shown at once."""
    sys.stdout.write(text)
    sys.stdout.flush()
