"""``linuxkit pkg build|push|lock`` (``show-tag``: :mod:`.pkg_tag_cmd`; ``manifest`` and ``remote-tag``:
:mod:`.pkg_registry_cmd`)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from .. import log
from ..errors import UserError
from ..oci import reference, registry
from ..oci.cache import Cache
from ..oci.descriptor import Descriptor
from ..oci.image import Platform
from ..oci.mediatypes import is_image_manifest
from ..oci.registry import RegistryOptions
from ..oci.registry.remote import lookup
from ..packages.buildyml import read_build_yml
from ..packages.debian_image import DebianSettings, default_debian_cache, locked_packages
from ..packages.pkgbuild import (
    PkgBuildOptions,
    PkgBuildResult,
    build_package,
    head_release_tags,
    parse_platforms,
    require_dirs,
)
from ..packages.tag import TagOptions, package_tag
from .common import CommonOptions
from .pkg_tag_cmd import tag_options
from .registries import registry_options
from .signing_args import sign_pushed, signing_key

if TYPE_CHECKING:
    from ..oci.signing.keys import SigningKey


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


def build_for_image(
    args: argparse.Namespace, common: CommonOptions, directory: str, platform: Platform, name: str
) -> None:
    """Build the ``@pkg:`` package in ``directory`` for one platform, as ``pkg build`` would (tag
    ``{{.Hash}}``), also named ``name``: what ``linuxkit build`` does for such an image missing from
    the cache (see :class:`linuxkit.cli.build_cmd.Packages`)."""
    opts = PkgBuildOptions(
        cache=Cache(common.cache_dir),
        debian=debian_settings(args),
        tag=TagOptions(tag_template="{{.Hash}}"),
        platforms=(platform,),
        also_name=name,
    )
    build_package(directory, opts)


def run_push(args: argparse.Namespace, common: CommonOptions) -> int:
    """``pkg push``: upstream's (deprecated) spelling of ``pkg build --push``, with its flags."""
    args.push = True
    return run_build(args, common)


def run_build(args: argparse.Namespace, common: CommonOptions) -> int:
    require_dirs(args.dirs)
    if args.nobuild and args.force:
        raise UserError("flags --force and --nobuild conflict", hint="--nobuild pushes what the cache has; drop one")
    if args.pull and args.force:
        raise UserError("flags --force and --pull conflict", hint="--force builds every platform; drop one")
    if args.platforms and args.skip_platforms:
        raise UserError(
            "--skip-platforms and --platforms may not be used together",
            hint="--platforms names every platform to build; --skip-platforms leaves some of build.yml's out",
        )
    options = registry_options(common) if (args.push or args.pull) else None
    key = signing_key(args.sign_key, push=args.push)  # a bad key is refused before a long build
    cache = Cache(common.cache_dir)
    opts = PkgBuildOptions(
        cache=cache,
        debian=debian_settings(args, update=args.update, locked=args.locked),
        tag=tag_options(args),
        platforms=parse_platforms(args.platforms),
        force=args.force,
        nobuild=args.nobuild and args.push,  # as upstream: --nobuild means something only with --push
        skip_arches=tuple(p.architecture for p in parse_platforms(args.skip_platforms, "--skip-platforms")),
        pull=_puller(cache, options) if args.pull and options is not None else None,
        release=args.release,
    )
    if not args.push:
        options = None
    for directory in args.dirs:
        releases = [args.release]
        if options is not None:
            # refuse before a long build when the package is dirty already (a new lock can only add to that)
            before = package_tag(directory, opts.tag)
            _refuse_dirty(before.canonical, dirty=before.dirty)
            # and when its registry cannot be reached or refuses us (upstream asks it before building too)
            _check_registry(before.canonical, options)
            releases = [args.release] if args.release else head_release_tags(directory) or [""]
        pushed: set[str] = set()
        for release in releases:  # several only for several git tags on HEAD: built once, the rest skip
            result = build_package(directory, replace(opts, release=release))
            if result.built:
                log.info(f"Built {result.name} ({', '.join(str(p) for p in result.built)})")
            if result.pulled:
                log.info(f"Pulled {result.name} ({', '.join(str(p) for p in result.pulled)}) instead of building")
            if options is not None and (result.built or result.skipped or result.pulled):
                pushed |= push_result(opts.cache, result, options, skip=pushed, key=key)
    return 0


def _puller(cache: Cache, options: RegistryOptions) -> Callable[[str, Platform], Descriptor | None]:
    """``--pull``: a platform missing from the cache is pulled from its ``TAG-<arch>`` image in the
    registry (what ``pkg push`` leaves there); ``None`` (build it) when the registry has none."""

    def pull(name: str, platform: Platform) -> Descriptor | None:
        ref = f"{name}-{platform.architecture}"
        try:
            with log.step(f"Pulling {ref}"):
                root = registry.pull(cache, ref, [platform], options=options)
        except registry.RegistryError as exc:
            log.info(f"{ref} could not be pulled; building it: {exc.message}")
            return None
        if not is_image_manifest(root.media_type):
            log.info(f"{ref} in the registry is not a single image; building it")
            return None
        return root.with_platform(platform)

    return pull


def _check_registry(name: str, options: RegistryOptions) -> None:
    try:
        found = lookup(name, options, f"checking {name} in its registry")
    except registry.RegistryError as exc:
        if reference.parse(name).domain != reference.DEFAULT_DOMAIN:
            raise
        raise registry.RegistryError(
            exc.message,
            hint=(f"{exc.hint}; " if exc.hint else "")
            + "the package's org names no registry host, so it goes to Docker Hub:"
            " name a registry with --org HOST/ORG (or org: in build.yml)",
        ) from exc
    log.debug(f"{name} in the registry: {found or 'not yet'}")


def _refuse_dirty(name: str, *, dirty: bool) -> None:
    if dirty:
        raise UserError(
            f"{name}: cannot push a dirty package",
            hint="commit the package's changes (see `git status`) and build again, or build without --push",
        )


def push_result(
    cache: Cache,
    result: PkgBuildResult,
    options: RegistryOptions,
    *,
    skip: set[str] | frozenset[str] = frozenset(),
    key: SigningKey | None = None,
) -> set[str]:
    """Push a built package as upstream does: the index with its ``TAG-<arch>`` images, merged with
    the registry's index of that tag (platforms built elsewhere stay), then the release, unless
    the registry has it already. Names in ``skip`` are not pushed again. Returns the names pushed.
    With ``key``, what was pushed is signed in cosign's format (index and each platform's image)."""

    _refuse_dirty(result.name, dirty=result.dirty)
    done: set[str] = set()
    for name in (result.name, result.release):
        if not name or name in skip or name in done:
            continue
        release = name == result.release and name != result.name
        with log.step(f"Pushing {name}"):
            pushed = registry.push_image(
                cache, name, options=options, with_arch_tags=True, override=not release, merge=not release
            )
        log.info(f"Pushed {name} {pushed.descriptor.digest}{_OUTCOMES.get(pushed.outcome, '')}")
        if key is not None and pushed.outcome == "exists":
            log.warn(f"{name}: the registry's release was left as it was: not signed")
        elif key is not None:
            sign_pushed(cache, name, name, pushed.descriptor.digest, key, options)
        done.add(name)
    return done


_OUTCOMES = {
    "merged": " (merged with the platforms the registry's index had)",
    "unchanged": " (the registry had it already)",
    "exists": " (the registry had this release already: left as it was)",
}


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
