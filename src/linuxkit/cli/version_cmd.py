"""``linuxkit version``: prints with print(), loads nothing beyond the parser."""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from .common import CommonOptions

GIT_COMMIT = ""  # set by release builds


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
