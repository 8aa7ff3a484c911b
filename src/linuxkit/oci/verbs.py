"""The logic of ``linuxkit cache ls|rm|clean`` (the CLI wires flags and printing).

Upstream prints these lines through its logger, i.e. on stderr.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import BuildError, UserError
from .cache import Cache


def ls_lines(cache: Cache) -> list[str]:
    """``cache ls`` output: a header, then ``name`` padded to 80 columns, a space and the root
    digest, one line per name (upstream's ``%-80s %s``; sorted here, upstream's order is random)."""
    lines = [f"{'image name':<80} root manifest hash"]
    lines += [f"{name:<80} {dig}" for name, dig in cache.images().items()]
    return lines


@dataclass(frozen=True)
class Removed:
    name: str
    digest: str
    blobs: tuple[str, ...]

    def message(self) -> str:
        """Upstream's line for it (upstream forgets the newline)."""
        return f"removing image {self.name} from cache"


def remove_images(cache: Cache, names: list[str]) -> list[Removed]:
    """``cache rm NAME...``: every name must exist (checked before anything is removed).

    Names are expanded (``alpine`` → ``docker.io/library/alpine:latest``); upstream wants the
    full name as stored.
    """
    missing = [n for n in names if cache.find(n) is None]
    if missing:
        raise UserError(
            f"image {missing[0]} is not in the cache {cache.root}",
            hint="see `linuxkit cache ls` for the names it holds",
        )
    out = []
    for n in names:
        result = cache.remove(n)
        if result is not None:
            root, blobs = result
            out.append(Removed(root.name or n, root.digest, tuple(blobs)))
    return out


def clean(cache_dir: str | Path) -> str:
    """``cache clean``: remove the whole cache directory (waiting for writers first).

    Returns upstream's message ``Cache emptied: DIR``.
    """
    root = Path(cache_dir)
    if root.is_dir():
        cache = Cache(root)
        try:
            with cache.layout.lock.exclusive():
                shutil.rmtree(root)
        except OSError as exc:
            raise BuildError(f"unable to clean cache {root}: {exc}") from exc
    elif root.exists():
        raise UserError(f"{root} is not a directory")
    return f"Cache emptied: {root}"
