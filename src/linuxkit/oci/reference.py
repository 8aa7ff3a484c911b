"""Image references, expanded and parsed the way upstream LinuxKit does.

``redis`` → ``docker.io/library/redis:latest``; ``org/img:tag`` → ``docker.io/org/img:tag``;
a first component with ``.`` or ``:`` or equal to ``localhost`` is a registry host.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ..errors import UserError

DEFAULT_DOMAIN = "docker.io"
OFFICIAL_PREFIX = "library/"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE_RE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*)(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)


def expand(ref: str, *, with_tag: bool = False) -> str:
    """Add the default registry (and ``library/``) to a short reference, as upstream does.

    With ``with_tag``, ``:latest`` is added when the reference has no ``:`` at all (upstream's
    rule, which skips ``host:port/img``).
    """
    parts = ref.split("/")
    out = ref
    if len(parts) == 1:
        out = f"{DEFAULT_DOMAIN}/{OFFICIAL_PREFIX}{ref}"
    elif len(parts) == 2 and "." not in parts[0] and ":" not in parts[0] and parts[0] != "localhost":
        out = f"{DEFAULT_DOMAIN}/{ref}"
    if with_tag and ":" not in out:
        out += ":latest"
    return out


class Reference(NamedTuple):
    """A fully qualified image reference: ``domain/path[:tag][@digest]``."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``domain/path`` without tag or digest."""
        return f"{self.domain}/{self.path}"

    @property
    def object(self) -> str:
        """What follows the name: ``tag``, ``@digest`` or ``tag@digest`` (containerd's Spec.Object)."""
        out = self.tag or ""
        if self.digest:
            out += "@" + self.digest
        return out

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.domain, self.path, tag, None)

    def with_default_tag(self) -> Reference:
        """This reference, with ``latest`` as tag when it has neither tag nor digest."""
        if self.tag or self.digest:
            return self
        return Reference(self.domain, self.path, "latest", None)


def parse(ref: str) -> Reference:
    """Parse ``ref`` after expanding it; raise :class:`UserError` when it is not a valid reference."""
    full = expand(ref.strip())
    match = _REFERENCE_RE.match(full)
    if match is None or "://" in ref:
        raise UserError(
            f"invalid image reference {ref!r}",
            hint="use [registry/]repository[:tag][@sha256:digest], lower case, e.g. docker.io/library/alpine:3.20",
        )
    name = match.group("name")
    domain, _, path = name.partition("/")
    return Reference(domain, path, match.group("tag"), match.group("digest"))


def normalize(ref: str) -> str:
    """The canonical string of ``ref``: expanded, with ``:latest`` when it has no tag or digest."""
    return str(parse(ref).with_default_tag())
