"""``cache verify``: check every blob reachable from the cache's names (size and digest).

A platform an index lists but that was never pulled (its manifest is absent) is not a fault:
pulls fetch only the platforms asked for. Anything a present manifest refers to must be there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..errors import LinuxKitError
from . import reference
from .cache import Cache
from .descriptor import Descriptor, manifest_parts, platform_of
from .digest import DigestError
from .image import Platform
from .layout import LayoutError
from .mediatypes import NON_DISTRIBUTABLE_TYPES, is_image_manifest, is_index


@dataclass(frozen=True)
class Problem:
    """One missing or corrupt blob of a name; ``role`` says what it is (``layer 2 of ...``)."""

    digest: str
    kind: str  # missing | corrupt
    role: str
    detail: str = ""

    def message(self) -> str:
        return f"{self.kind} {self.role} {self.digest}" + (f": {self.detail}" if self.detail else "")


@dataclass
class NameReport:
    """What was found for one name of the cache."""

    name: str
    root: Descriptor
    checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    platforms: list[Platform] = field(default_factory=list)  # pulled platforms of an index
    not_pulled: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class _Checker:
    """Checks blobs once each (names share them) and remembers the verdict."""

    def __init__(self, cache: Cache) -> None:
        self.layout = cache.layout
        self.verdicts: dict[str, tuple[str, str] | None] = {}

    def check(self, desc: Descriptor) -> tuple[str, str] | None:
        """``None`` when the blob is sound, else (``missing``|``corrupt``, detail)."""
        if desc.digest not in self.verdicts:
            self.verdicts[desc.digest] = self._check(desc)
        return self.verdicts[desc.digest]

    def _check(self, desc: Descriptor) -> tuple[str, str] | None:
        try:
            blob = self.layout.open_blob(desc.digest, desc.size)
        except FileNotFoundError:
            return ("missing", "")
        except (OSError, ValueError) as exc:
            return ("corrupt", str(exc))
        try:
            with blob:
                blob.drain()
        except DigestError as exc:
            return ("corrupt", exc.message.removeprefix(f"blob {desc.digest}: "))
        return None


def verify_names(cache: Cache, names: Iterable[str] | None = None) -> list[NameReport]:
    """A report for each name of the cache (or for ``names``), sorted by name."""
    checker = _Checker(cache)
    wanted = None if names is None else set(names)
    reports: list[NameReport] = []
    for desc in sorted((d for d in cache.entries() if d.name), key=lambda d: d.name or ""):
        name = desc.name or ""
        if wanted is not None and name not in wanted:
            continue
        report = NameReport(name, desc)
        _walk(cache, checker, report, desc, "root", top=True)
        reports.append(report)
    return reports


def _walk(cache: Cache, checker: _Checker, report: NameReport, desc: Descriptor, role: str, *, top: bool) -> None:
    verdict = checker.check(desc)
    report.checked += 1
    if verdict is not None:
        kind, detail = verdict
        if kind == "missing" and not top and is_image_manifest(desc.media_type):
            plat = platform_of(desc.platform)
            report.not_pulled.append(str(plat) if plat else desc.digest)
            return
        report.problems.append(Problem(desc.digest, kind, _role(desc, role), detail))
        return
    if not (is_index(desc.media_type) or is_image_manifest(desc.media_type)):
        return
    try:
        obj = cache.layout.read_json_blob(desc.digest, desc.size)
        if is_index(desc.media_type):
            for i, child in enumerate(cache.children(desc)):
                _walk(cache, checker, report, child, f"manifest {i} of index", top=False)
                plat = platform_of(child.platform)
                verdict = checker.check(child)
                if plat and not child.is_attestation and (verdict is None or verdict[0] == "corrupt"):
                    report.platforms.append(plat)  # pulled (even if now broken): to pull again
            return
        config, layers = manifest_parts(obj, f"manifest {desc.digest}")
        parts = [(config, "config"), *((x, f"layer {i}") for i, x in enumerate(layers))]
    except (LayoutError, ValueError, KeyError, TypeError, DigestError) as exc:
        report.problems.append(Problem(desc.digest, "corrupt", _role(desc, role), f"unreadable: {exc}"))
        return
    for part, part_role in parts:
        if part.media_type in NON_DISTRIBUTABLE_TYPES and part.extra.get("urls"):
            continue
        _walk(cache, checker, report, part, f"{part_role} of manifest {desc.digest[7:19]}", top=False)


def _role(desc: Descriptor, role: str) -> str:
    if role == "root":
        return "index" if is_index(desc.media_type) else "manifest"
    return role


@dataclass(frozen=True)
class RepairResult:
    name: str
    repaired: bool
    message: str


Puller = Callable[[str, str, list[Platform] | None], None]


def repair(cache: Cache, report: NameReport, pull: Puller) -> RepairResult:
    """Delete the corrupt blobs of ``report`` and pull its content again by digest.

    ``pull(ref_by_digest, name, platforms)`` pulls into ``cache`` and names the result ``name``.
    When that fails, the name is removed (and the blobs only it needed) so the cache holds
    nothing broken; the message says why.
    """
    for problem in report.problems:
        if problem.kind == "corrupt":
            cache.layout.remove_blob(problem.digest)
    ref = reference.parse(report.name)
    by_digest = f"{ref.name}@{report.root.digest}"
    platforms = report.platforms or None if is_index(report.root.media_type) else None
    try:
        pull(by_digest, report.name, platforms)
    except LinuxKitError as exc:
        why = exc.message
        cache.remove(report.name)
        return RepairResult(
            report.name,
            False,
            f"removed {report.name}: {len(report.problems)} broken blob(s) and pulling it again failed ({why}); "
            "pull or build it again",
        )
    return RepairResult(report.name, True, f"repaired {report.name}: pulled {by_digest} again")
