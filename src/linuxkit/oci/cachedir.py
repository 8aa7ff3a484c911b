"""Where the image cache lives (``--cache``'s default): small, so the command line can name it
without importing the cache."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ENV_CACHE = "LINUXKIT_CACHE"


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$LINUXKIT_CACHE`` when set, else ``~/.linuxkit/cache`` (upstream's default)."""
    environ = os.environ if env is None else env
    value = environ.get(ENV_CACHE)
    if value:
        return Path(value).expanduser()
    return Path.home() / ".linuxkit" / "cache"


def cache_dir(flag: str | None, env: Mapping[str, str] | None = None) -> Path:
    """``--cache`` when given, else :func:`default_cache_dir`."""
    return Path(flag) if flag else default_cache_dir(env)
