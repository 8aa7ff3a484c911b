"""``linuxkit pkg build|lock|show-tag``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .. import log
from ..errors import UserError
from ..oci.cache import Cache
from ..oci.image import Platform
from ..packages.buildyml import BUILD_YML, read_build_yml
from ..packages.debian_image import DebianSettings, default_debian_cache, locked_packages
from ..packages.pkgbuild import PkgBuildOptions, build_package, require_dirs
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

    p = add_verb(sub, "build", "build packages (from Debian packages, or a Dockerfile through buildah/docker)")
    _add_pkg_flags(p)
    _add_debian_flags(p)
    p.add_argument("dirs", nargs="+", metavar="DIR")
    p.add_argument("--force", action="store_true", help="build even when the image is already in the cache")
    p.add_argument("--platforms", default="", help="comma-separated platforms, e.g. linux/amd64 (default: build.yml)")
    p.add_argument("--release", default="", help="also name the image org/image:RELEASE")
    p.add_argument("--update", action="store_true", help="resolve the Debian packages again and rewrite debian.lock")
    p.add_argument("--locked", action="store_true", help="fail instead of changing a missing or stale debian.lock")
    p.add_argument("--push", action="store_true", help="push the result to its registry (not available yet)")
    p.set_defaults(func=run_build)

    p = add_verb(sub, "lock", "resolve the Debian packages of packages and write their debian.lock")
    _add_pkg_flags(p)
    _add_debian_flags(p)
    p.add_argument("dirs", nargs="+", metavar="DIR")
    p.add_argument("--platforms", default="", help="comma-separated platforms (default: the arches of build.yml)")
    p.set_defaults(func=run_lock)


def _add_debian_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debian-mirror", default=None, help="Debian archive URL (env LINUXKIT_DEBIAN_MIRROR)")
    p.add_argument(
        "--debian-security-mirror",
        default=None,
        help="Debian security archive URL (env LINUXKIT_DEBIAN_SECURITY_MIRROR)",
    )
    p.add_argument(
        "--debian-allow-expired",
        action="store_true",
        help="accept archive indexes past their Valid-Until date (for snapshot mirrors)",
    )


def debian_settings(args: argparse.Namespace, *, update: bool = False, locked: bool = False) -> DebianSettings:
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "0")
    try:
        mtime = int(epoch)
    except ValueError as exc:
        raise UserError(f"SOURCE_DATE_EPOCH={epoch!r} is not a number of seconds") from exc
    return DebianSettings(
        cache_dir=default_debian_cache(),
        mirror=args.debian_mirror,
        security_mirror=args.debian_security_mirror,
        update_lock=update,
        frozen_lock=locked,
        epoch=mtime,
        allow_expired=bool(getattr(args, "debian_allow_expired", False)),
    )


def parse_platforms(text: str) -> tuple[Platform, ...]:
    return tuple(Platform.parse(p.strip()) for p in text.split(",") if p.strip())


def run_build(args: argparse.Namespace, common: CommonOptions) -> int:
    if args.push:
        raise UserError("pkg build --push is not available yet", hint="build, then: linuxkit cache push NAME")
    require_dirs(args.dirs)
    opts = PkgBuildOptions(
        cache=Cache(common.cache_dir),
        debian=debian_settings(args, update=args.update, locked=args.locked),
        tag=tag_options(args),
        platforms=parse_platforms(args.platforms),
        force=args.force,
        release=args.release,
    )
    for directory in args.dirs:
        result = build_package(directory, opts)
        if result.built:
            log.info(f"Built {result.name} ({', '.join(str(p) for p in result.built)})")
    return 0


def run_lock(args: argparse.Namespace, common: CommonOptions) -> int:
    require_dirs(args.dirs)
    settings = debian_settings(args, update=True)
    for directory in args.dirs:
        info = read_build_yml(directory, args.build_yml)
        if info.debian is None:
            raise UserError(f"{directory}: build.yml has no debian: section, nothing to lock")
        arches = [p.architecture for p in parse_platforms(args.platforms)] or list(info.arches)
        for arch in arches:
            locked_packages(info, Path(directory), arch, settings)
    return 0


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
