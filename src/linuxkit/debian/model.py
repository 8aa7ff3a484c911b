"""Plain data of the Debian archive client: relations, packages and lock-file references."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UserError

OPS = ("<<", "<=", "=", ">=", ">>")
# Obsolete spellings dpkg still accepts: "<" means "<=" and ">" means ">=".
_OLD_OPS = {"<": "<=", ">": ">="}

_RELATION = re.compile(
    r"""^\s*(?P<name>[a-z0-9][a-z0-9+.\-]*)(?::(?P<arch>[a-z0-9\-]+))?\s*
        (?:\(\s*(?P<op><<|<=|>=|>>|=|<|>)\s*(?P<version>[0-9A-Za-z][^\s)]*)\s*\))?\s*
        (?:\[[^\]]*\])?\s*(?:<[^>]*>\s*)*$""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Relation:
    """One alternative of a dependency: ``libc6 (>= 2.34)``, ``awk``, ``foo:any``."""

    name: str
    op: str | None
    version: str | None
    arch_qualifier: str | None = None

    def __str__(self) -> str:
        text = self.name if self.arch_qualifier is None else f"{self.name}:{self.arch_qualifier}"
        return text if self.op is None else f"{text} ({self.op} {self.version})"


@dataclass(frozen=True)
class DebRef:
    """What a lock file records and what a download needs."""

    name: str
    version: str
    architecture: str
    suite: str
    filename: str
    size: int
    sha256: str

    def __str__(self) -> str:
        return f"{self.name}={self.version} ({self.architecture}, {self.suite})"


@dataclass(frozen=True)
class Package:
    """One stanza of a Packages index."""

    name: str
    version: str
    architecture: str
    filename: str
    size: int
    sha256: str
    depends: tuple[tuple[Relation, ...], ...]  # AND of OR-groups; Pre-Depends first
    provides: tuple[Relation, ...]
    priority: str
    essential: bool
    multi_arch: str
    suite: str
    source_uri: str

    def ref(self) -> DebRef:
        return DebRef(self.name, self.version, self.architecture, self.suite, self.filename, self.size, self.sha256)

    def __str__(self) -> str:
        return f"{self.name}={self.version}"


def parse_relation(text: str) -> Relation:
    """Parse one alternative such as ``libc6 (>= 2.34)`` or ``python3:any``.

    Build-profile (``<!nocheck>``) and architecture (``[amd64]``) restrictions are accepted and dropped: they
    never occur in binary Packages indexes, but tolerating them costs nothing.
    """
    m = _RELATION.match(text)
    if m is None:
        raise UserError(f"cannot parse package relation {text.strip()!r}", hint="expected e.g. 'libc6 (>= 2.34)'")
    op = m.group("op")
    if op is not None:
        op = _OLD_OPS.get(op, op)
    return Relation(m.group("name"), op, m.group("version"), m.group("arch"))


def parse_relations(text: str) -> tuple[tuple[Relation, ...], ...]:
    """Parse a ``Depends``-style field: comma-separated groups of ``|``-separated alternatives."""
    groups = []
    for group in text.split(","):
        if not group.strip():
            continue
        groups.append(tuple(parse_relation(alt) for alt in group.split("|")))
    return tuple(groups)
