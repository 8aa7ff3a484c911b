"""``linuxkit pkg verify DIR...``: rebuild a Debian-built package from its lock in a temporary cache
and compare the result with the image published under its name, in the cache or (``--registry``) in
its registry: each platform's manifest (and, where it differs, its config and layers) and the index.
Prints what matches and what differs; exit 1 when anything differs."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from .. import log
from ..errors import BuildError, UserError
from ..oci.cache import Cache
from ..oci.image import Platform
from ..oci.published_view import from_cache, from_registry
from ..packages.buildyml import read_build_yml
from ..packages.pkgbuild import PkgBuildOptions, build_package, parse_platforms, require_dirs
from ..packages.rebuild_check import Published, compare
from ..packages.tag import package_tag
from .common import CommonOptions
from .pkg_cmd import debian_settings
from .pkg_tag_cmd import tag_options
from .registries import registry_options


def run_verify(args: argparse.Namespace, common: CommonOptions) -> int:
    require_dirs(args.dirs)
    options = registry_options(common) if args.registry else None
    cache = Cache(common.cache_dir)
    differ: list[str] = []
    for directory in args.dirs:
        info = read_build_yml(directory, args.build_yml)
        if info.debian is None:
            raise UserError(
                f"{directory}: build.yml has no debian: section: there is no lock to rebuild the package from",
                hint="pkg verify rebuilds packages built from Debian packages (debian.lock)",
            )
        name = package_tag(directory, tag_options(args)).canonical
        where = "its registry" if options is not None else f"the cache {cache.root}"
        with log.step(f"Reading {name} from {where}"):
            published = from_registry(name, options) if options is not None else from_cache(cache, name)
        if published is None:
            raise UserError(
                f"{name} is not in {where}",
                hint="build it first (`linuxkit pkg build`), or compare with the registry (--registry)",
            )
        platforms = _platforms(args, info.arches, published, name)
        rebuilt = _rebuild(args, directory, name, platforms)
        result = compare(rebuilt, published)
        print(f"{name} ({where}):")
        for line in result.lines:
            print(f"  {line}")
        sys.stdout.flush()
        if not result.matches:
            differ.append(name)
    if differ:
        raise BuildError(
            f"the rebuild differs from what was published: {', '.join(differ)}",
            hint="see the lines above: the platform, config and layers that differ",
        )
    return 0


def _platforms(
    args: argparse.Namespace, arches: tuple[str, ...] | list[str], published: Published, name: str
) -> list[Platform]:
    """``--platforms``, else the architectures of build.yml that the published image has."""
    chosen = list(parse_platforms(args.platforms))
    if chosen:
        return chosen
    chosen = [Platform("linux", arch) for arch in arches if f"linux/{arch}" in published.images]
    if not chosen:
        raise UserError(
            f"{name} has none of the platforms of build.yml ({', '.join(arches)})",
            hint="it has: " + (", ".join(sorted(published.images)) or "none"),
        )
    return chosen


def _rebuild(args: argparse.Namespace, directory: str, name: str, platforms: list[Platform]) -> Published:
    """The package built again, from its lock only, in a temporary cache."""
    with tempfile.TemporaryDirectory(prefix="linuxkit-pkg-verify-") as tmp:
        scratch = Cache(Path(tmp) / "cache")
        opts = PkgBuildOptions(
            cache=scratch,
            debian=debian_settings(args, locked=True),
            tag=tag_options(args),
            platforms=tuple(platforms),
            force=True,
        )
        with log.step(f"Rebuilding {name} from its lock ({', '.join(map(str, platforms))})"):
            result = build_package(directory, opts)
        if result.name != name:
            raise BuildError(f"the rebuild is named {result.name}, not {name}: the package changed while it was built")
        rebuilt = from_cache(scratch, name)
    assert rebuilt is not None
    return rebuilt
