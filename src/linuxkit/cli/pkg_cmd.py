"""``linuxkit pkg show-tag`` (``pkg build`` arrives with the package builder)."""

from __future__ import annotations

import argparse
import os

from ..packages.buildyml import BUILD_YML
from ..packages.tag import TagOptions, package_tag
from .common import CommonOptions, add_verb


def _add_pkg_flags(p: argparse.ArgumentParser) -> None:
    """Upstream's ``pkg`` persistent flags that affect the tag."""
    p.add_argument("--org", default=None, help="override the org (env LINUXKIT_PKG_ORG)")
    p.add_argument("--build-yml", default=BUILD_YML, help="name of the package's yml file")
    p.add_argument("--hash", default="", help="override the image hash (default: git tree hash of the package)")
    p.add_argument("--tag", default="", help="tag template, e.g. {{.Hash}}")
    p.add_argument("--hash-commit", default="HEAD", help="git commit to hash")
    p.add_argument("--hash-path", default="", help="directory to hash, a parent of the package directory")
    p.add_argument("--force-dirty", action="store_true", help="consider the package dirty")
    p.add_argument("--dev", action="store_true", help='force org and hash to $USER and "dev"')


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pkg = add_verb(verbs, "pkg", "package building")
    sub = pkg.add_subparsers(dest="pkg_verb", metavar="COMMAND")
    sub.required = True
    p = add_verb(sub, "show-tag", "show the tag of packages from their source directories")
    _add_pkg_flags(p)
    p.add_argument("dirs", nargs="+", metavar="DIR")
    p.add_argument("--canonical", action="store_true", help="show docker.io/org/image:tag")
    p.set_defaults(func=run_show_tag)


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
