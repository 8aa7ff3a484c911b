"""Flags every verb accepts (upstream's cobra persistent flags) and small CLI helpers.

Imported on every start (even ``--help``): it imports nothing heavy (the registry options are made
by :mod:`linuxkit.cli.registries`, imported by the verbs that talk to registries).
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

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
        "--verity",
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
        "--debian-allow-expired",
        "--detached",
        "--secure-boot",
        "--gui",
        "--iso",
        "--kernel",
        "--locked",
        "--nobuild",
        "--push",
        "--repair",
        "--registry",
        "--squashfs",
        "--update",
        "--usb",
        "--console-file",  # run hyperkit
        # push/run on the clouds
        "--ena",
        "--tpm",
        "--uefi",
        "--keep",
        "--nested-virt",
        "--no-image",
        "--public",
        "--skip-cleanup",
        "--uefi-compatible",
        "--vtpm",
        "--powerOn",
        "--waitForIP",
        "--clean",
        "--no-attach",
        "--no-clean",
        "--decompress",
    }
)


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, for every parser: help lines wrap between words only (format names
    such as ``iso-efi-initrd`` stay whole), and the terminal width is read as ``shutil`` reads it
    without importing ``shutil`` (argparse makes a formatter for every argument it adds, and
    ``shutil`` with its compression modules cost 2.3 ms of each start)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None):
        if width is None:
            width = _terminal_columns() - 2  # as argparse
        super().__init__(prog, indent_increment, max_help_position, width)

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap  # as argparse's own formatter: only when help is printed

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def _terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``: ``$COLUMNS``, else stdout's terminal, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(1).columns
        except (OSError, ValueError):
            columns = 0
    return columns or 80


def new_parser(prog: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog=prog, description=description, allow_abbrev=False, formatter_class=HelpFormatter
    )


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


class CommonOptions:
    """The global flags, as the verbs use them. A plain class: ``dataclasses`` and ``pathlib`` cost
    15 ms of a start that uses neither (``version``)."""

    __slots__ = ("cache", "cert_files", "debug", "mirrors", "registry_creds", "verbosity")

    def __init__(
        self,
        cache: str | None,
        verbosity: int,
        debug: bool,
        mirrors: list[str] | None = None,
        cert_files: list[str] | None = None,
        registry_creds: list[str] | None = None,
    ) -> None:
        self.cache = cache  # --cache, ``~`` expanded; None: the default (``cache_dir``)
        self.verbosity = verbosity
        self.debug = debug
        self.mirrors = mirrors or []
        self.cert_files = cert_files or []
        self.registry_creds = registry_creds or []

    def __repr__(self) -> str:  # no credentials
        return f"CommonOptions(cache={self.cache!r}, verbosity={self.verbosity}, debug={self.debug})"

    @property
    def cache_dir(self) -> Path:
        """``--cache``, else ``$LINUXKIT_CACHE`` or ``~/.linuxkit/cache``."""
        from ..oci.cachedir import cache_dir  # pathlib: loaded by the verbs that use the cache

        return cache_dir(self.cache)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> CommonOptions:
        verbosity = QUIET if args.quiet else args.verbose
        if args.debug:
            verbosity = max(verbosity, DEBUG)
        return cls(
            os.path.expanduser(args.cache) if args.cache else None,
            verbosity,
            verbosity >= DEBUG,
            list(args.mirror),
            list(args.cert_file),
            list(getattr(args, "registry_creds", None) or []),
        )
