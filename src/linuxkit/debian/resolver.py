"""Dependency closure over an :class:`Archive`: Depends and Pre-Depends, versions, alternatives, Provides.

Not handled on purpose: Recommends/Suggests (ignored), Essential packages (never added implicitly),
Conflicts/Breaks (not checked: the closure of a Debian suite is co-installable in practice), foreign architectures.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..errors import UserError
from .model import Package, Relation
from .version import satisfies

PRIORITY_ORDER = {"required": 0, "important": 1, "standard": 2, "optional": 3, "extra": 4}


class ArchiveView(Protocol):
    """What the resolver needs from an archive (:class:`~linuxkit.debian.index.Archive` provides it)."""

    def candidates(self, name: str) -> list[Package]: ...

    def providers(self, name: str) -> list[Package]: ...


@dataclass
class _Pending:
    package: Package
    group: tuple[Relation, ...]


def _qualifier_ok(rel: Relation, pkg: Package) -> bool:
    """Single-architecture view: ``:any`` needs Multi-Arch: allowed; ``:native`` and none match; others never."""
    if rel.arch_qualifier is None or rel.arch_qualifier == "native":
        return True
    if rel.arch_qualifier == "any":
        return pkg.multi_arch == "allowed" or pkg.architecture == "all"
    return False


def _provides(pkg: Package, rel: Relation) -> bool:
    """Whether ``pkg`` Provides something meeting ``rel`` (an unversioned Provides meets only unversioned needs)."""
    for prov in pkg.provides:
        if prov.name != rel.name:
            continue
        if rel.op is None:
            return True
        if prov.op == "=" and prov.version is not None and satisfies(prov.version, rel.op, rel.version):
            return True
    return False


def _meets(pkg: Package, rel: Relation) -> bool:
    if pkg.name == rel.name:
        return satisfies(pkg.version, rel.op, rel.version) and _qualifier_ok(rel, pkg)
    return rel.arch_qualifier in (None, "native", "any") and _provides(pkg, rel)


def _provider_key(pkg: Package) -> tuple[int, str]:
    return PRIORITY_ORDER.get(pkg.priority, len(PRIORITY_ORDER)), pkg.name


def _group_text(group: Sequence[Relation]) -> str:
    return " | ".join(str(r) for r in group)


class _Resolver:
    def __init__(self, archive: ArchiveView, exclude: Sequence[str]) -> None:
        self.archive = archive
        self.exclude = frozenset(exclude)
        self.chosen: dict[str, Package] = {}
        self.parent: dict[str, tuple[str | None, str]] = {}  # name -> (who needed it, the relation text)
        self.provided: dict[str, list[Package]] = {}  # virtual name -> chosen providers
        self.queue: deque[Package] = deque()
        self.deferred: deque[_Pending] = deque()

    # -- bookkeeping -----------------------------------------------------------------------------------------------

    def chain(self, name: str | None) -> list[str]:
        steps: list[str] = []
        while name is not None:
            pkg = self.chosen.get(name)
            steps.append(str(pkg) if pkg else name)
            name = self.parent.get(name, (None, ""))[0]
        return steps[::-1]

    def add(self, pkg: Package, needed_by: str | None, why: str) -> None:
        self.chosen[pkg.name] = pkg
        self.parent[pkg.name] = (needed_by, why)
        for prov in pkg.provides:
            self.provided.setdefault(prov.name, []).append(pkg)
        self.queue.append(pkg)

    def fail(self, needed_by: str | None, what: str, reason: str) -> UserError:
        chain = " → ".join([*self.chain(needed_by), what])
        return UserError(
            f"cannot resolve Debian packages: {reason}: {chain}",
            hint="check the package name and the suites searched, add the missing package to 'exclude' if the "
            "image provides it another way, or pin a version with NAME=VERSION",
        )

    # -- matching --------------------------------------------------------------------------------------------------

    def already_met(self, rel: Relation) -> bool:
        if rel.name in self.exclude:
            return True
        pkg = self.chosen.get(rel.name)
        if pkg is not None and _meets(pkg, rel):
            return True
        return any(_meets(p, rel) for p in self.provided.get(rel.name, ()))

    def options(self, rel: Relation) -> list[Package]:
        """Packages that could meet ``rel``: the newest real package first, then providers by priority and name."""
        if rel.name in self.chosen and not _meets(self.chosen[rel.name], rel):
            real: list[Package] = []  # a different version is already chosen; only a provider could still do
        else:
            real = [p for p in self.archive.candidates(rel.name) if _meets(p, rel)][:1]
        providers = [p for p in self.archive.providers(rel.name) if _meets(p, rel) and p.name not in self.exclude]
        # One version per provider (the newest meeting rel); providers already chosen must stay at their version.
        best: dict[str, Package] = {}
        for p in providers:
            chosen = self.chosen.get(p.name)
            if chosen is not None and chosen.version != p.version:
                continue
            best.setdefault(p.name, p)
        ordered = sorted(best.values(), key=lambda p: (p.name not in self.chosen, *_provider_key(p)))
        return real + ordered

    def choose(self, parent: Package | None, group: Sequence[Relation]) -> None:
        if any(self.already_met(rel) for rel in group):
            return
        needed_by = parent.name if parent else None
        for rel in group:
            for pkg in self.options(rel):
                if pkg.name in self.chosen and self.chosen[pkg.name] != pkg:
                    continue
                if pkg.name not in self.chosen:
                    self.add(pkg, needed_by, str(rel))
                return
        text = _group_text(group)
        conflicting = [self.chosen[r.name] for r in group if r.name in self.chosen]
        if conflicting:
            have = ", ".join(
                f"{p} (needed by {' → '.join(self.chain(p.name)[:-1]) or 'the roots'})" for p in conflicting
            )
            raise self.fail(needed_by, text, f"version conflict, {have} is already chosen")
        if any(self.archive.candidates(r.name) or self.archive.providers(r.name) for r in group):
            raise self.fail(needed_by, text, "no version satisfies")
        raise self.fail(needed_by, text, "no such package")

    # -- main loop -------------------------------------------------------------------------------------------------

    def run(self, roots: Sequence[str]) -> list[Package]:
        for root in roots:
            self.add_root(root)
        while self.queue or self.deferred:
            while self.queue:
                pkg = self.queue.popleft()
                for group in pkg.depends:
                    # Decide plain dependencies first; alternatives and virtual names wait until the rest is
                    # known, so that they can pick a package the closure already contains.
                    if len(group) == 1 and self.archive.candidates(group[0].name):
                        self.choose(pkg, group)
                    else:
                        self.deferred.append(_Pending(pkg, group))
            if self.deferred:
                pending = self.deferred.popleft()
                self.choose(pending.package, pending.group)
        return sorted(self.chosen.values(), key=lambda p: p.name)

    def add_root(self, root: str) -> None:
        name, sep, version = root.strip().partition("=")
        name = name.strip()
        if not name:
            raise UserError(f"empty Debian package name in {root!r}", hint="write NAME or NAME=VERSION")
        if sep:
            version = version.strip()
            matches = [p for p in self.archive.candidates(name) if satisfies(p.version, "=", version)]
            if not matches:
                known = ", ".join(p.version for p in self.archive.candidates(name))
                raise UserError(
                    f"Debian package {name} has no version {version}"
                    + (f" (available: {known})" if known else " (no such package)"),
                    hint="pick an available version, or set --debian-mirror to a snapshot mirror of the Debian "
                    "archive that still serves it",
                )
            pkg = matches[0]
            if name in self.chosen and self.chosen[name] != pkg:
                raise self.fail(None, root, f"{self.chosen[name]} is already chosen")
            if name not in self.chosen:
                self.add(pkg, None, root)
            return
        if name in self.exclude:
            return
        try:
            self.choose(None, (Relation(name, None, None),))
        except UserError:
            raise UserError(
                f"unknown Debian package {name!r}",
                hint="check the spelling and the suites searched (packages are looked up in the configured "
                "Debian suites and components)",
            ) from None


def resolve(archive: ArchiveView, roots: Sequence[str], *, exclude: Sequence[str] = ()) -> list[Package]:
    """The Depends + Pre-Depends closure of ``roots`` (``name`` or ``name=version``), sorted by name.

    ``exclude`` names packages (real or virtual) treated as present: never added, their dependencies not followed.
    Alternatives prefer a package already in the closure, else the first that can be met; a virtual name with
    several providers prefers one already chosen, then Priority (required > important > standard > optional >
    extra), then name. Errors name the chain from the root to the relation that cannot be met.
    """
    return _Resolver(archive, exclude).run(roots)
