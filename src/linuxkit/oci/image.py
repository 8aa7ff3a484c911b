"""What the assembler needs from an image, whatever holds it (the cache, a test, a registry)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any, Protocol

from ..arch import normalize_arch

MOBY_CONFIG_LABEL = "org.mobyproject.config"


@dataclass(frozen=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``linux/arm64/v8``, ``linux/amd64`` or just ``arm64``."""
        parts = text.split("/")
        if len(parts) == 1:
            return cls("linux", normalize_arch(parts[0]))
        return cls(parts[0], normalize_arch(parts[1]), parts[2] if len(parts) > 2 else None)

    def __str__(self) -> str:
        out = f"{self.os}/{self.architecture}"
        return f"{out}/{self.variant}" if self.variant else out


class ImageSource(Protocol):
    """A resolved, single-platform image whose layers can be read.

    ``ref`` is the full reference it was asked for (``docker.io/library/alpine:3.20``);
    ``config`` is the whole OCI image config JSON (``{"architecture":…, "config": {"Env":…}}``);
    ``open_layer(i)`` gives layer ``i`` (0 = bottom) as an *uncompressed* tar stream.
    """

    @property
    def ref(self) -> str: ...

    @property
    def digest(self) -> str: ...

    @property
    def config(self) -> dict[str, Any]: ...

    def layer_count(self) -> int: ...

    def open_layer(self, index: int) -> IO[bytes]: ...


def image_labels(config: dict[str, Any]) -> dict[str, str]:
    """The labels of an OCI image config (``config.Labels``), or an empty dict."""
    inner = config.get("config") or {}
    labels = inner.get("Labels") or {}
    return {str(k): str(v) for k, v in labels.items()}
