"""``linuxkit pkg build|lock|show-tag``."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UserError
from ..oci.image import Platform  # small module
from .common import CommonOptions, add_verb

if TYPE_CHECKING:
    from ..oci.cache import Cache
    from ..oci.registry import RegistryOptions
    from ..packages.debian_image import DebianSettings
    from ..packages.pkgbuild import PkgBuildResult
    from ..packages.tag import TagOptions

#: ``linuxkit.packages.buildyml.BUILD_YML``, spelled here so that ``--help`` need not import the
#: schema classes (a unit test keeps the two equal)
BUILD_YML = "build.yml"


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
    p.add_argument(
        "--release",
        default="",
        help="also name the image org/image:RELEASE (with --push, default: the git tag of HEAD, if any)",
    )
    p.add_argument("--update", action="store_true", help="resolve the Debian packages again and rewrite debian.lock")
    p.add_argument("--locked", action="store_true", help="fail instead of changing a missing or stale debian.lock")
    p.add_argument(
        "--push",
        action="store_true",
        help="push the result (index and TAG-<arch> images) to its registry; refuses a dirty package",
    )
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
    from ..packages.debian_image import DebianSettings, default_debian_cache

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
    from .. import log
    from ..oci.cache import Cache
    from ..packages.pkgbuild import PkgBuildOptions, build_package, head_release_tags, require_dirs
    from ..packages.tag import package_tag

    require_dirs(args.dirs)
    registry_options = common.registry_options() if args.push else None
    opts = PkgBuildOptions(
        cache=Cache(common.cache_dir),
        debian=debian_settings(args, update=args.update, locked=args.locked),
        tag=tag_options(args),
        platforms=parse_platforms(args.platforms),
        force=args.force,
        release=args.release,
    )
    for directory in args.dirs:
        releases = [args.release]
        if registry_options is not None:
            # refuse before a long build when the package is dirty already (a new lock can only add to that)
            before = package_tag(directory, opts.tag)
            _refuse_dirty(before.canonical, dirty=before.dirty)
            releases = [args.release] if args.release else head_release_tags(directory) or [""]
        pushed: set[str] = set()
        for release in releases:  # several only for several git tags on HEAD: built once, the rest skip
            result = build_package(directory, replace(opts, release=release))
            if result.built:
                log.info(f"Built {result.name} ({', '.join(str(p) for p in result.built)})")
            if registry_options is not None:
                pushed |= push_result(opts.cache, result, registry_options, skip=pushed)
    return 0


def _refuse_dirty(name: str, *, dirty: bool) -> None:
    if dirty:
        raise UserError(
            f"{name}: cannot push a dirty package",
            hint="commit the package's changes (see `git status`) and build again, or build without --push",
        )


def push_result(
    cache: Cache, result: PkgBuildResult, options: RegistryOptions, *, skip: set[str] | frozenset[str] = frozenset()
) -> set[str]:
    """Push a built package as upstream does: the index and its ``TAG-<arch>`` images, then the
    release the same way; names in ``skip`` are not pushed again. Returns the names pushed."""
    from .. import log
    from ..oci import registry

    _refuse_dirty(result.name, dirty=result.dirty)
    done: set[str] = set()
    for name in (result.name, result.release):
        if not name or name in skip or name in done:
            continue
        with log.step(f"Pushing {name}"):
            desc = registry.push(cache, name, options=options, with_arch_tags=True)
        log.info(f"Pushed {name} {desc.digest}")
        done.add(name)
    return done


def run_lock(args: argparse.Namespace, common: CommonOptions) -> int:
    from ..packages.buildyml import read_build_yml
    from ..packages.debian_image import locked_packages
    from ..packages.pkgbuild import require_dirs

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
    from ..packages.tag import TagOptions

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
    from ..packages.tag import package_tag

    opts = tag_options(args)
    for directory in args.dirs:
        tag = package_tag(directory, opts)
        print(tag.canonical if args.canonical else tag.name)
    return 0
