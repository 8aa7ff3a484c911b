"""``linuxkit pkg show-tag``: build.yml, the tag and git; none of the package builder."""

from __future__ import annotations

import argparse
import os

from ..packages.tag import TagOptions, package_tag
from .common import CommonOptions


def tag_options(args: argparse.Namespace) -> TagOptions:
    org = args.org if args.org is not None else os.environ.get("LINUXKIT_PKG_ORG") or None
    return TagOptions(
        build_yml=args.build_yml,
        hash=args.hash,
        hash_commit=args.hash_commit,
        hash_path=args.hash_path,
        force_dirty=args.force_dirty,
        dev=args.dev,
        org=org,
        tag_template=args.tag,
    )


def run_show_tag(args: argparse.Namespace, common: CommonOptions) -> int:
    opts = tag_options(args)
    for directory in args.dirs:
        tag = package_tag(directory, opts)
        print(tag.canonical if args.canonical else tag.name)
    return 0
