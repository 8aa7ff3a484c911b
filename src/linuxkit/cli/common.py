"""Flags every verb accepts (upstream's cobra persistent flags) and small CLI helpers.

Imported on every start (even ``--help``): it imports nothing heavy; the logging layer, the cache
and the registry options are imported by the functions that need them.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UserError

if TYPE_CHECKING:
    from ..oci.registry import RegistryOptions

#: ``linuxkit.log.QUIET`` and ``.DEBUG``, spelled here so that parsing need not import rich (a unit
#: test keeps them equal)
QUIET = 0
DEBUG = 2

# Boolean long flags that upstream (pflag) also accepts as ``--flag=true|false``.
BOOL_FLAGS = frozenset(
    {
        "--pull",
        "--docker",
        "--decompress-kernel",
        "--no-sbom",
        "--sbom-current-time",
        "--dry-run",
        "--quiet",
        "--debug",
        "--canonical",
        "--short",
        "--commit",
        "--force",
        "--dev",
        "--force-dirty",
        "--published-only",
        "--with-arch-tags",
        "--override",
    }
)


def new_parser(prog: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=description, allow_abbrev=False)


def add_common(parser: argparse.ArgumentParser, *, top_level: bool = False) -> None:
    """Global flags, accepted before or after the verb (defaults only at the top level)."""
    default = (lambda value: value) if top_level else (lambda _value: argparse.SUPPRESS)
    group = parser.add_argument_group("global options")
    group.add_argument("--cache", default=default(None), help="image cache directory (env LINUXKIT_CACHE)")
    group.add_argument("--mirror", action="append", default=default([]), help="registry mirror [REGISTRY=]URL")
    group.add_argument("--cert-file", action="append", default=default([]), help="extra CA certificate file")
    group.add_argument(
        "--registry-creds",
        action="append",
        default=default([]),
        metavar="REGISTRY=USER:PASSWORD|TOKEN",
        help="credentials for a registry (repeatable; before ~/.docker/config.json); a bare TOKEN is a bearer token",
    )
    group.add_argument("-q", "--quiet", action="store_true", default=default(False), help="only errors")
    group.add_argument(
        "-v", "--verbose", type=int, default=default(1), metavar="N", help="0 quiet, 1 info, 2 debug, 3 trace"
    )
    group.add_argument("--debug", action="store_true", default=default(False), help="debug output and tracebacks")


def add_verb(
    verbs: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
) -> argparse.ArgumentParser:
    parser = verbs.add_parser(name, help=help_text, description=help_text, allow_abbrev=False)
    add_common(parser)
    return parser


@dataclass(frozen=True)
class CommonOptions:
    cache: Path | None  # --cache; None: the default (``cache_dir``)
    verbosity: int
    debug: bool
    mirrors: list[str] = field(default_factory=list)
    cert_files: list[str] = field(default_factory=list)
    registry_creds: list[str] = field(default_factory=list, repr=False)

    @property
    def cache_dir(self) -> Path:
        """``--cache``, else ``$LINUXKIT_CACHE`` or ``~/.linuxkit/cache``."""
        if self.cache is not None:
            return self.cache
        from ..oci.cache import default_cache_dir

        return default_cache_dir()

    def registry_options(self) -> RegistryOptions:
        """Mirrors (``--mirror``, ``LINUXKIT_MIRROR``) and CA files as upstream reads them."""
        from ..oci.registry.options import RegistryOptions, parse_registry_creds

        raw = [m for m in os.environ.get("LINUXKIT_MIRROR", "").replace(",", " ").split() if m] + self.mirrors
        mirrors: dict[str, str] = {}
        for item in raw:
            key, eq, value = item.partition("=")
            if not eq:
                key, value = "*", item
            if not value.startswith(("http://", "https://")):
                raise UserError(f"mirror {value!r} must start with http:// or https://")
            for host in (
                ("docker.io", "index.docker.io", "registry-1.docker.io") if key.rstrip("/") == "docker.io" else (key,)
            ):
                mirrors[host] = value
        for cert in self.cert_files:
            if not Path(cert).is_file():
                raise UserError(f"failed to read certificate file {cert!r}")
        try:
            creds = parse_registry_creds(self.registry_creds)
        except ValueError as exc:
            raise UserError(
                str(exc), hint="e.g. --registry-creds ghcr.io=me:TOKEN or --registry-creds host=TOKEN"
            ) from exc
        return RegistryOptions(mirrors=mirrors, cert_files=tuple(Path(c) for c in self.cert_files), credentials=creds)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> CommonOptions:
        verbosity = QUIET if args.quiet else args.verbose
        if args.debug:
            verbosity = max(verbosity, DEBUG)
        cache = Path(os.path.expanduser(args.cache)) if args.cache else None
        return cls(
            cache,
            verbosity,
            verbosity >= DEBUG,
            list(args.mirror),
            list(args.cert_file),
            list(getattr(args, "registry_creds", None) or []),
        )
