"""Flags every verb accepts (upstream's cobra persistent flags) and small CLI helpers.

Imported on every start (even ``--help``): it imports nothing heavy (the registry options are made
by :mod:`linuxkit.cli.registries`, imported by the verbs that talk to registries).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..oci.cachedir import default_cache_dir

#: ``linuxkit.log.QUIET`` and ``.DEBUG``, spelled here so that parsing need not import rich (a unit
#: test keeps them equal)
QUIET = 0
DEBUG = 2

#: ``linuxkit.packages.buildyml.BUILD_YML`` and ``linuxkit.oci.archive.FORMATS`` (``cache export
#: --format``), spelled here for the parser (the same unit test keeps them equal)
BUILD_YML = "build.yml"
EXPORT_FORMATS = ("oci", "docker", "filesystem")

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
        return self.cache if self.cache is not None else default_cache_dir()

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
