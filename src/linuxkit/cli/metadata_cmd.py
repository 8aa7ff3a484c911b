"""``linuxkit metadata create FILE.iso DATA``: an ISO holding ``config`` = DATA."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import log
from ..metadata.iso import write_metadata_iso
from .common import CommonOptions


def run_create(args: argparse.Namespace, common: CommonOptions) -> int:
    write_metadata_iso(Path(args.iso), args.data.encode("utf-8", "surrogateescape"))
    log.debug(f"wrote {args.iso}")
    return 0
