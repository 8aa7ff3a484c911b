"""``linuxkit build --dry-run``: the flags checked as for a build, then the YAML loaded, validated
and printed; none of the build (images, registry, rootfs, formats' writers) is imported."""

from __future__ import annotations

import argparse
import sys

from ..config.dump import dry_run
from .build_args import resolve
from .common import CommonOptions


def run(args: argparse.Namespace, common: CommonOptions) -> int:
    resolve(args)  # upstream checks the flags first
    dry_run(args.configs, sys.stdout.buffer)
    return 0
