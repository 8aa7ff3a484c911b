"""Packages indexes: a fast parser and :class:`Archive`, the merged view of several suites."""

from __future__ import annotations

import bz2
import functools
import gzip
import lzma
import marshal
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from .. import log
from ..errors import BuildError, UserError
from . import transport
from .model import Package, Relation, parse_relation
from .release import IndexFile, Release, parse_release, verify_inrelease
from .sources import Source
from .version import compare_versions

# Bump when the parsed-index cache layout changes.
_PARSED_FORMAT = 1
_COMPRESSIONS: tuple[tuple[str, Callable[[bytes], bytes]], ...] = (
    (".xz", lzma.decompress),
    (".gz", gzip.decompress),
    (".bz2", bz2.decompress),
    ("", bytes),
)
_WANTED = frozenset(
    (
        b"Package",
        b"Version",
        b"Architecture",
        b"Filename",
        b"Size",
        b"SHA256",
        b"Depends",
        b"Pre-Depends",
        b"Provides",
        b"Priority",
        b"Essential",
        b"Multi-Arch",
    )
)

# One raw stanza reduced to the fields we keep, as plain values (what the parsed-index cache stores):
# name, version, architecture, filename, size, sha256, depends, pre-depends, provides, priority, essential, multi-arch
Row = tuple[str, str, str, str, int, str, str, str, str, str, bool, str]


def parse_rows(data: bytes, arch: str) -> list[Row]:
    """The stanzas of an uncompressed Packages index for ``arch`` (and ``all``), as plain tuples."""
    rows: list[Row] = []
    keep_arch = {arch, "all"}
    for stanza in data.split(b"\n\n"):
        fields: dict[bytes, bytes] = {}
        key = b""
        for line in stanza.split(b"\n"):
            if not line:
                continue
            if line[0] in b" \t":
                if key in _WANTED:
                    fields[key] += b" " + line.strip()
                continue
            key, _, value = line.partition(b":")
            if key in _WANTED:
                fields[key] = value.strip()
        if not fields:
            continue
        try:
            name = fields[b"Package"].decode()
            a = fields[b"Architecture"].decode()
            if a not in keep_arch:
                continue
            rows.append(
                (
                    name,
                    fields[b"Version"].decode(),
                    a,
                    fields[b"Filename"].decode(),
                    int(fields[b"Size"]),
                    fields[b"SHA256"].decode().lower(),
                    fields.get(b"Depends", b"").decode(),
                    fields.get(b"Pre-Depends", b"").decode(),
                    fields.get(b"Provides", b"").decode(),
                    fields.get(b"Priority", b"optional").decode(),
                    fields.get(b"Essential", b"no").strip().lower() == b"yes",
                    fields.get(b"Multi-Arch", b"no").decode(),
                )
            )
        except (KeyError, ValueError) as exc:
            where = fields.get(b"Package", b"?").decode(errors="replace")
            raise BuildError(f"malformed Packages stanza for {where!r}: {exc}") from exc
    return rows


class _RelationParser:
    """Parses relation fields, sharing equal groups: the same few thousand groups recur across 60k packages."""

    def __init__(self) -> None:
        self._groups: dict[str, tuple[Relation, ...]] = {}
        self._fields: dict[str, tuple[tuple[Relation, ...], ...]] = {}

    def field(self, text: str) -> tuple[tuple[Relation, ...], ...]:
        parsed = self._fields.get(text)
        if parsed is None:
            parsed = tuple(self.group(g) for g in text.split(",") if g.strip())
            self._fields[text] = parsed
        return parsed

    def group(self, text: str) -> tuple[Relation, ...]:
        parsed = self._groups.get(text)
        if parsed is None:
            parsed = tuple(parse_relation(alt) for alt in text.split("|"))
            self._groups[text] = parsed
        return parsed


def rows_to_packages(rows: Sequence[Row], suite: str, source_uri: str, parser: _RelationParser) -> list[Package]:
    packages = []
    for name, version, arch, filename, size, sha256, dep, predep, prov, priority, essential, multi_arch in rows:
        depends = parser.field(predep) + parser.field(dep) if predep else parser.field(dep)
        provides = tuple(g[0] for g in parser.field(prov)) if prov else ()
        packages.append(
            Package(
                name, version, arch, filename, size, sha256, depends, provides, priority, essential, multi_arch,
                suite, source_uri,
            )
        )  # fmt: skip
    return packages


def parse_packages(data: bytes, *, arch: str, suite: str, source_uri: str) -> list[Package]:
    """Parse an uncompressed Packages index."""
    return rows_to_packages(parse_rows(data, arch), suite, source_uri, _RelationParser())


class Archive:
    """Merged view of the Packages indexes of several suites for one architecture."""

    def __init__(
        self,
        sources: Sequence[Source],
        arch: str,
        cache_dir: Path,
        *,
        ignore_valid_until: bool = False,
        now: datetime | None = None,
    ) -> None:
        self.sources = list(sources)
        self.arch = arch
        self.cache_dir = Path(cache_dir)
        self.ignore_valid_until = ignore_valid_until
        self._now = now
        # name -> packages, or raw rows (with suite and URI) until first asked for
        self._by_name: dict[str, list[Package | tuple[Row, str, str]]] = {}
        self._materialized: set[str] = set()
        self._by_provides: dict[str, list[str]] = {}  # virtual name -> names of real packages providing it
        self._parser = _RelationParser()
        self._loaded = False
        self.releases: dict[str, Release] = {}

    # -- loading ---------------------------------------------------------------------------------------------------

    def load(self, *, ignore_valid_until: bool | None = None) -> None:
        """Fetch and verify each suite's InRelease, then its Packages indexes (cached by sha256), and merge them."""
        if ignore_valid_until is not None:
            self.ignore_valid_until = ignore_valid_until
        self._by_name.clear()
        self._by_provides.clear()
        self._materialized.clear()
        for source in self.sources:
            start = time.monotonic()
            release = self._load_release(source)
            self.releases[source.suite] = release
            for component in source.components:
                rows = self._load_rows(source, release, component)
                self._add_rows(rows, source.suite, source.uri)
            log.debug(f"Debian {source.suite}: index loaded in {time.monotonic() - start:.2f}s")
        self._loaded = True

    def add_packages(self, packages: Sequence[Package]) -> None:
        """Merge already built ``packages`` into the view (handy for tests with recorded indexes)."""
        for pkg in packages:
            self._by_name.setdefault(pkg.name, []).append(pkg)
            self._materialized.discard(pkg.name)  # sort again on next use
            for rel in pkg.provides:
                self._by_provides.setdefault(rel.name, []).append(pkg.name)
        self._loaded = True

    def _add_rows(self, rows: Sequence[Row], suite: str, uri: str) -> None:
        # Packages are built only when asked for: building all 60k objects costs more than loading the index.
        for row in rows:
            self._by_name.setdefault(row[0], []).append((row, suite, uri))
            if row[8]:
                for group in self._parser.field(row[8]):
                    self._by_provides.setdefault(group[0].name, []).append(row[0])

    def _url(self, source: Source, path: str) -> str:
        return f"{source.uri}/dists/{source.suite}/{path}"

    def _load_release(self, source: Source) -> Release:
        what = f"Debian suite {source.suite} at {source.uri}"
        dest = self.cache_dir / "releases" / _safe(source.uri) / source.suite / "InRelease"
        try:
            transport.download(self._url(source, "InRelease"), dest)
        except transport.NotFound as exc:
            raise UserError(
                f"{what}: no InRelease file ({exc.url})",
                hint="check the suite name and the mirror URI (it must contain dists/SUITE/InRelease)",
            ) from exc
        release = parse_release(verify_inrelease(dest, source.keyring, what=what, cache_dir=self.cache_dir))
        if source.suite not in (release.suite, release.codename):
            raise BuildError(
                f"{what}: InRelease is for suite {release.suite!r} / codename {release.codename!r}",
                hint="the mirror serves another suite under this name; check the mirror URI",
            )
        self._check_valid_until(release, what)
        return release

    def _check_valid_until(self, release: Release, what: str) -> None:
        until = release.valid_until
        now = self._now or datetime.now(UTC)
        if until is None or now <= until:
            return
        message = f"{what}: InRelease expired on {until:%Y-%m-%d %H:%M} UTC (Valid-Until)"
        if self.ignore_valid_until:
            log.warn(message + "; using it anyway")
            return
        raise UserError(
            message,
            hint="an expired index may hide security fixes; for a snapshot mirror allow it explicitly "
            "with --debian-allow-expired",
        )

    def _index_file(self, source: Source, release: Release, component: str) -> IndexFile:
        base = f"{component}/binary-{self.arch}/Packages"
        for ext, _ in _COMPRESSIONS:
            entry = release.files.get(base + ext)
            if entry is not None:
                return entry
        raise UserError(
            f"Debian suite {source.suite} has no {base} index",
            hint=f"check the architecture ({self.arch}) and the components ({', '.join(source.components)})",
        )

    def _load_rows(self, source: Source, release: Release, component: str) -> list[Row]:
        entry = self._index_file(source, release, component)
        ext = next(e for e, _ in _COMPRESSIONS if entry.path.endswith("Packages" + e))
        decompress = dict(_COMPRESSIONS)[ext]
        index_dir = self.cache_dir / "indexes"
        raw = index_dir / f"{entry.sha256}{ext or '.txt'}"
        parsed = index_dir / f"{entry.sha256}.{self.arch}.v{_PARSED_FORMAT}.marshal"
        if raw.exists() and (raw.stat().st_size != entry.size or transport.sha256_file(raw) != entry.sha256):
            log.warn(f"cached index {raw} is corrupt; downloading it again")
            raw.unlink()
            parsed.unlink(missing_ok=True)
        if not raw.exists():
            directory = entry.path.rpartition("/")[0]
            path = f"{directory}/by-hash/SHA256/{entry.sha256}" if release.acquire_by_hash else entry.path
            try:
                transport.download(self._url(source, path), raw, size=entry.size, sha256=entry.sha256)
            except transport.NotFound as exc:
                raise BuildError(
                    f"index {exc.url} not found on the mirror", hint="retry; the mirror may be syncing"
                ) from exc
            except transport.DigestMismatch as exc:
                raise BuildError(
                    f"index does not match its InRelease: {exc}", hint="retry; the mirror may be syncing"
                ) from exc
        if parsed.exists():
            try:
                rows: list[Row] = marshal.loads(parsed.read_bytes())
                return rows
            except (EOFError, ValueError, TypeError):
                parsed.unlink(missing_ok=True)
        rows = parse_rows(decompress(raw.read_bytes()), self.arch)
        # Unique temp name + rename: several builds may share the cache.
        fd, tmp = tempfile.mkstemp(dir=index_dir, prefix=".parsed-")
        with os.fdopen(fd, "wb") as out:
            out.write(marshal.dumps(rows))
        os.chmod(tmp, 0o644)
        Path(tmp).replace(parsed)
        return rows

    # -- queries ---------------------------------------------------------------------------------------------------

    def _require_loaded(self) -> None:
        if not self._loaded:
            raise RuntimeError("Archive.load() was not called")

    def candidates(self, name: str) -> list[Package]:
        """Real packages named ``name``, newest version first; a version in several suites appears once, from the
        suite listed first in the sources."""
        self._require_loaded()
        entries = self._by_name.get(name)
        if entries is None:
            return []
        if name not in self._materialized:
            built: dict[str, Package] = {}
            for entry in entries:
                if isinstance(entry, Package):
                    pkg = entry
                else:
                    row, suite, uri = entry
                    pkg = rows_to_packages([row], suite, uri, self._parser)[0]
                built.setdefault(pkg.version, pkg)
            self._by_name[name] = list(_newest_first(list(built.values())))
            self._materialized.add(name)
        return [p for p in self._by_name[name] if isinstance(p, Package)]

    def providers(self, name: str) -> list[Package]:
        """Packages that Provide ``name``, sorted by name and then newest version first."""
        self._require_loaded()
        found = []
        for real in sorted(set(self._by_provides.get(name, ()))):
            found += [p for p in self.candidates(real) if any(r.name == name for r in p.provides)]
        return found

    def lookup(self, name: str, version: str) -> Package | None:
        for pkg in self.candidates(name):
            if compare_versions(pkg.version, version) == 0:
                return pkg
        return None

    def names(self) -> list[str]:
        """Every real package name, sorted."""
        self._require_loaded()
        return sorted(self._by_name)


def _newest_first(packages: list[Package]) -> list[Package]:
    def newer(a: Package, b: Package) -> int:
        return compare_versions(b.version, a.version)

    return sorted(packages, key=functools.cmp_to_key(newer))


def _safe(uri: str) -> str:
    """A directory name for a URI."""
    return "".join(c if c.isalnum() or c in "-._" else "_" for c in uri.split("://", 1)[-1])
