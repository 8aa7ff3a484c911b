"""``linuxkit version``."""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from .common import CommonOptions, add_verb

GIT_COMMIT = ""  # set by release builds


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_verb(verbs, "version", "report the version of linuxkit")
    parser.add_argument("--short", action="store_true", help="print just the version number")
    parser.add_argument("--commit", action="store_true", help="print just the commit")
    parser.set_defaults(func=run, uses_log=False)


def run(args: argparse.Namespace, common: CommonOptions) -> int:
    version = f"v{__version__}"
    if args.short:
        print(version)
    elif args.commit:
        print(GIT_COMMIT)
    else:
        print(f"{os.path.basename(sys.argv[0]) or 'linuxkit'} version {version}")
        if GIT_COMMIT:
            print(f"commit: {GIT_COMMIT}")
    return 0
