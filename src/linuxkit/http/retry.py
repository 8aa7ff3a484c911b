"""The one retry policy of every HTTP request: registries, the Debian archive, YAML URLs.

Connection errors (refused, reset, timed out, a body cut short) and HTTP 429/500/502/503/504 are
retried ``retries`` times with exponential backoff from ``backoff`` seconds (0.5, 1, 2, 4 s by
default); a ``Retry-After`` header (seconds or an HTTP date) is honoured up to ``max_retry_after``.
A host name that does not resolve, a refused TLS certificate and a redirect loop are not retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

#: HTTP statuses worth sending the request again for.
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class RetryPolicy(NamedTuple):
    """How often and how long to wait; ``sleep`` replaces :func:`time.sleep` (tests).

    A named tuple, not a dataclass: ``dataclasses`` costs ~10 ms of import on paths that need nothing else of it.
    """

    retries: int = 4
    backoff: float = 0.5
    max_retry_after: float = 30.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (0-based)."""
        return float(min(self.backoff * (2**attempt), self.max_retry_after))

    def delay_for(self, attempt: int, retry_after_header: str | None) -> float:
        """The server's ``Retry-After`` (capped) when it sent one, else :meth:`delay`."""
        asked = retry_after(retry_after_header, self.max_retry_after)
        return asked if asked is not None else self.delay(attempt)


#: The policy of every client that is given none (tests replace it to skip the waits).
DEFAULT = RetryPolicy()


def retry_after(value: str | None, limit: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or HTTP date), at most ``limit``."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        import email.utils  # rare: most servers send seconds
        from datetime import UTC, datetime

        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(seconds, limit))
