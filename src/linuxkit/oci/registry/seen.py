"""Where this process saw blobs: the sources a push may mount from instead of uploading."""

from __future__ import annotations

import threading

_seen_in: dict[tuple[str, str], str] = {}
_lock = threading.Lock()


def remember_blob(domain: str, repository: str, digest: str) -> None:
    """Note that ``digest`` exists in ``domain/repository`` (pulled from or pushed to it)."""
    with _lock:
        _seen_in[(domain, digest)] = repository


def repository_with(domain: str, digest: str) -> str | None:
    """The last repository of ``domain`` where ``digest`` was seen."""
    with _lock:
        return _seen_in.get((domain, digest))
