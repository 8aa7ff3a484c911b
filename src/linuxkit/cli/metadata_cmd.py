"""``linuxkit metadata create FILE.iso DATA``: an ISO holding ``config`` = DATA."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import CommonOptions, add_verb


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    metadata = add_verb(verbs, "metadata", "manage ISO metadata")
    sub = metadata.add_subparsers(dest="metadata_verb", metavar="COMMAND")
    sub.required = True
    p = add_verb(sub, "create", "create an ISO with metadata (written to /config in the ISO)")
    p.add_argument("iso", metavar="FILE.iso")
    p.add_argument("data", metavar="DATA")
    p.set_defaults(func=run_create)


def run_create(args: argparse.Namespace, common: CommonOptions) -> int:
    from .. import log
    from ..metadata.iso import write_metadata_iso

    write_metadata_iso(Path(args.iso), args.data.encode("utf-8", "surrogateescape"))
    log.debug(f"wrote {args.iso}")
    return 0
