"""``cache rm|clean --published-only``: which cached images the registry holds, identical."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ... import log
from ...errors import UserError
from .. import reference
from .client import Client
from .errors import RegistryError
from .options import RegistryOptions
from .remote import remote_digest


@dataclass(frozen=True)
class Publication:
    """A cached image against its registry: ``remote`` is the digest there (``None``: not there or
    not reachable, ``reason`` says which)."""

    name: str
    cached: str
    remote: str | None
    reason: str = ""

    @property
    def published(self) -> bool:
        return self.remote == self.cached

    def message(self) -> str:
        """Upstream's line for an image that stays."""
        if self.remote is None:
            return f"image {self.name} not found in remote registry, leaving in cache" + (
                f" ({self.reason})" if self.reason else ""
            )
        return (
            f"image {self.name} has mismatched hashes, cache {self.cached} vs remote registry {self.remote},"
            " leaving in cache"
        )


def publications(images: Mapping[str, str], options: RegistryOptions | None = None) -> Iterator[Publication]:
    """Each cached ``name → root digest`` against its registry, in order. A registry that cannot be
    reached (or refuses us) is asked once: its other images stay, as upstream leaves them."""
    opts = options or RegistryOptions()
    unreachable: dict[str, str] = {}
    clients: dict[str, Client] = {}
    try:
        for name, digest in images.items():
            try:
                ref = reference.parse(name)
            except UserError:
                yield Publication(name, digest, None, "not a registry reference")
                continue
            if ref.domain in unreachable:
                yield Publication(name, digest, None, unreachable[ref.domain])
                continue
            client = clients.get(ref.domain)
            if client is None:
                client = clients[ref.domain] = Client(ref.domain, opts, f"looking up {name}")
            try:
                found = remote_digest(client, ref.path, ref.digest or ref.tag or "latest")
            except RegistryError as exc:
                log.debug(f"{name}: {exc}")
                unreachable[ref.domain] = f"registry {ref.domain}: {exc.message}"
                yield Publication(name, digest, None, unreachable[ref.domain])
                continue
            yield Publication(name, digest, found)
    finally:
        for client in clients.values():
            client.close()
