"""Flags every verb accepts (upstream's cobra persistent flags) and small CLI helpers."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

from .. import log
from ..errors import UserError
from ..oci.cache import default_cache_dir
from ..oci.registry import RegistryOptions
from ..oci.registry.options import parse_registry_creds

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
    cache_dir: Path
    verbosity: int
    debug: bool
    mirrors: list[str] = field(default_factory=list)
    cert_files: list[str] = field(default_factory=list)
    registry_creds: list[str] = field(default_factory=list, repr=False)

    def registry_options(self) -> RegistryOptions:
        """Mirrors (``--mirror``, ``LINUXKIT_MIRROR``) and CA files as upstream reads them."""
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
        verbosity = log.QUIET if args.quiet else args.verbose
        if args.debug:
            verbosity = max(verbosity, log.DEBUG)
        cache = Path(os.path.expanduser(args.cache)) if args.cache else default_cache_dir()
        return cls(
            cache,
            verbosity,
            verbosity >= log.DEBUG,
            list(args.mirror),
            list(args.cert_file),
            list(getattr(args, "registry_creds", None) or []),
        )
