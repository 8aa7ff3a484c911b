"""Where the Debian archive is: explicit mirrors, the environment, or the host's apt configuration.

Mirror choice for each suite, first match wins:

1. ``mirror`` / ``security_mirror`` arguments (``--debian-mirror`` / ``--debian-security-mirror``), else the
   ``LINUXKIT_DEBIAN_MIRROR`` / ``LINUXKIT_DEBIAN_SECURITY_MIRROR`` environment variables;
2. the apt configuration under ``apt_dir`` (deb822 ``sources.list.d/*.sources`` and one-line ``sources.list`` /
   ``sources.list.d/*.list``), honouring ``Signed-By``; a suite apt does not list (say ``trixie`` on a bookworm
   host) comes from the mirror of an entry of the same kind (security or not), checked with the archive keyring;
3. otherwise a :class:`UserError` saying how to set a mirror.

Suites ending in ``-security`` live in their own archive. When only ``mirror`` is given, the security archive is
derived from it by replacing its last ``debian`` path segment with ``debian-security`` (this is how both the
official layout ``…/debian`` → ``…/debian-security`` and snapshot mirrors ``…/archive/debian/<time>/`` →
``…/archive/debian-security/<time>/`` are organised). If the mirror has no such segment the apt configuration is
used for security suites, and failing that, an error asks for ``--debian-security-mirror``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

DEFAULT_SUITES = ("bookworm", "bookworm-updates", "bookworm-security")
DEFAULT_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
MIRROR_ENV = "LINUXKIT_DEBIAN_MIRROR"
SECURITY_MIRROR_ENV = "LINUXKIT_DEBIAN_SECURITY_MIRROR"

_MIRROR_HINT = (
    "pass --debian-mirror URL (or set LINUXKIT_DEBIAN_MIRROR), e.g. the base URI of a Debian mirror or of a "
    "snapshot mirror of the Debian archive; security suites use --debian-security-mirror / "
    "LINUXKIT_DEBIAN_SECURITY_MIRROR"
)


@dataclass(frozen=True)
class Source:
    """One suite of one archive: ``URI/dists/SUITE/COMPONENT/…``, signed by a key in ``keyring``."""

    uri: str
    suite: str
    components: tuple[str, ...]
    keyring: Path


@dataclass(frozen=True)
class AptEntry:
    """One ``deb`` line (or one deb822 stanza expanded to one URI) of the apt configuration."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: Path | None
    origin: str  # file (and line) it came from, for messages


def is_security_suite(suite: str) -> bool:
    return suite.endswith("-security") or suite.endswith("/updates")


def _normalise_uri(uri: str) -> str:
    uri = uri.strip()
    if not re.match(r"^(https?|file)://", uri):
        raise UserError(f"unsupported Debian mirror URI {uri!r}", hint="use an http://, https:// or file:// URI")
    return uri.rstrip("/")


def derive_security_uri(mirror: str) -> str | None:
    """The security archive next to ``mirror``: its last ``debian`` path segment becomes ``debian-security``."""
    parts = mirror.rstrip("/").split("/")
    for i in range(len(parts) - 1, 2, -1):  # never the scheme or host
        if parts[i] == "debian":
            return "/".join([*parts[:i], "debian-security", *parts[i + 1 :]])
    return None


def _signed_by(value: str | None, origin: str) -> Path | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    if "BEGIN PGP PUBLIC KEY BLOCK" in value or "\n" in value:
        raise UserError(
            f"{origin}: an inline Signed-By key is not supported",
            hint="store the key in a file and point Signed-By at it",
        )
    # apt also accepts fingerprints here; only a keyring file can be given to gpgv.
    first = value.split(",")[0].strip()
    if not first.startswith("/"):
        raise UserError(f"{origin}: Signed-By {value!r} is not a keyring file", hint="use an absolute file path")
    return Path(first)


def parse_deb822_sources(text: str, origin: str) -> list[AptEntry]:
    """Entries of a deb822 ``.sources`` file (``Types: deb`` only; ``Enabled: no`` skipped)."""
    entries = []
    for n, stanza in enumerate(_deb822_stanzas(text), 1):
        where = f"{origin} (stanza {n})"
        types = stanza.get("types", "").split()
        if "deb" not in types or stanza.get("enabled", "yes").strip().lower() == "no":
            continue
        suites = tuple(stanza.get("suites", "").split())
        components = tuple(stanza.get("components", "").split())
        signed_by = _signed_by(stanza.get("signed-by"), where)
        for uri in stanza.get("uris", "").split():
            entries.append(AptEntry(uri.rstrip("/"), suites, components, signed_by, where))
    return entries


def _deb822_stanzas(text: str) -> Iterable[dict[str, str]]:
    fields: dict[str, str] = {}
    key = None
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if fields:
                yield fields
            fields, key = {}, None
            continue
        if raw[0] in " \t":
            if key is not None:
                fields[key] += "\n" + raw.strip()
            continue
        name, sep, value = raw.partition(":")
        if sep:
            key = name.strip().lower()
            fields[key] = value.strip()
    if fields:
        yield fields


def parse_one_line_sources(text: str, origin: str) -> list[AptEntry]:
    """Entries of a one-line ``sources.list``: ``deb [opt=val ...] URI SUITE COMPONENT...``."""
    entries = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{origin}:{lineno}"
        options: dict[str, str] = {}
        m = re.match(r"^(\S+)\s+\[([^\]]*)\]\s*(.*)$", line)
        if m:
            kind, opts, rest = m.groups()
            for opt in opts.split():
                name, _, value = opt.partition("=")
                options[name.lower()] = value
        else:
            kind, _, rest = line.partition(" ")
        if kind != "deb":
            continue
        words = rest.split()
        if len(words) < 2:
            continue
        uri, suite, *components = words
        entries.append(
            AptEntry(uri.rstrip("/"), (suite,), tuple(components), _signed_by(options.get("signed-by"), where), where)
        )
    return entries


def read_apt_sources(apt_dir: Path) -> list[AptEntry]:
    """All ``deb`` entries of the apt configuration under ``apt_dir``, in apt's reading order."""
    entries: list[AptEntry] = []
    main = apt_dir / "sources.list"
    if main.is_file():
        entries += parse_one_line_sources(main.read_text(errors="replace"), str(main))
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.name.endswith(".list") and path.is_file():
                entries += parse_one_line_sources(path.read_text(errors="replace"), str(path))
            elif path.name.endswith(".sources") and path.is_file():
                entries += parse_deb822_sources(path.read_text(errors="replace"), str(path))
    return entries


def debian_sources(
    suites: Sequence[str] = DEFAULT_SUITES,
    *,
    mirror: str | None = None,
    security_mirror: str | None = None,
    apt_dir: Path = Path("/etc/apt"),
    components: Sequence[str] = ("main",),
    keyring: Path | None = None,
) -> list[Source]:
    """One :class:`Source` per suite, in the order given (see the module docstring for the mirror choice).

    ``keyring`` overrides the keyring of every source (default: apt's ``Signed-By``, else the Debian archive
    keyring).
    """
    if mirror is None:
        mirror = os.environ.get(MIRROR_ENV) or None
    if security_mirror is None:
        security_mirror = os.environ.get(SECURITY_MIRROR_ENV) or None
    mirror = _normalise_uri(mirror) if mirror else None
    security_mirror = _normalise_uri(security_mirror) if security_mirror else None
    if security_mirror is None and mirror is not None:
        security_mirror = derive_security_uri(mirror)
    apt: list[AptEntry] | None = None
    result = []
    for suite in suites:
        explicit = security_mirror if is_security_suite(suite) else mirror
        signed_by = None
        if explicit is not None:
            uri = explicit
        else:
            if apt is None:
                apt = read_apt_sources(apt_dir)
            entry = next((e for e in apt if suite in e.suites), None)
            if entry is not None:
                signed_by = entry.signed_by
            else:
                # an archive serves every suite: another release's entry of the same kind gives the mirror;
                # its Signed-By was chosen for its own suites, so the Debian archive keyring checks this one
                entry = next(
                    (e for e in apt if any(is_security_suite(s) == is_security_suite(suite) for s in e.suites)), None
                )
            if entry is None:
                what = "security suite" if is_security_suite(suite) else "suite"
                raise UserError(f"no Debian mirror known for {what} {suite!r}", hint=_MIRROR_HINT)
            uri = _normalise_uri(entry.uri)
        result.append(Source(uri, suite, tuple(components), keyring or signed_by or DEFAULT_KEYRING))
    return result


def uri_for(sources: Sequence[Source], suite: str) -> str:
    """The base URI that serves ``suite`` (its ``pool/`` files)."""
    for source in sources:
        if source.suite == suite:
            return source.uri
    known = ", ".join(s.suite for s in sources) or "none"
    raise UserError(
        f"no Debian mirror configured for suite {suite!r} (configured: {known})",
        hint="add the suite to the Debian suites of the build, or regenerate the lock file",
    )
