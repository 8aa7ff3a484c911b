"""``linuxkit build``: the flags resolved into :class:`~linuxkit.build.BuildOptions`, and the build
(``--dry-run``: :mod:`.dry_run_cmd`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..build import BuildOptions, run_build
from ..images import PackageBuilder
from ..oci.cache import Cache
from ..oci.image import Platform
from ..packages.pkgbuild import PkgBuildOptions, build_package
from ..packages.tag import TagOptions
from .build_args import resolve
from .common import CommonOptions
from .pkg_cmd import debian_settings
from .registries import registry_options


def options_from_args(args: argparse.Namespace, common: CommonOptions) -> BuildOptions:
    """The build's options: the flags by upstream's rules, the registries, the package builder."""
    resolved = resolve(args)
    return BuildOptions(
        configs=args.configs,
        formats=resolved.formats,
        name=resolved.name,
        out_dir=Path(resolved.out_dir or "."),
        output_file=resolved.output_file,
        size_mb=resolved.size_mb,
        pull=args.pull,
        docker=args.docker,
        decompress_kernel=args.decompress_kernel,
        arch=resolved.arch,
        cache_dir=common.cache_dir,
        input_tar=Path(args.input_tar) if args.input_tar else None,
        sbom=None if args.no_sbom else args.sbom_output,
        sbom_current_time=args.sbom_current_time,
        registry=registry_options(common),
        pkg_builder=package_builder(args, common),
        debian=lambda: debian_settings(args),
    )


def package_builder(args: argparse.Namespace, common: CommonOptions) -> PackageBuilder:
    """Builds a missing ``@pkg:`` package for one platform, as ``pkg build`` would (tag ``{{.Hash}}``)."""

    def build(directory: str, platform: Platform, name: str) -> None:
        opts = PkgBuildOptions(
            cache=Cache(common.cache_dir),
            debian=debian_settings(args),
            tag=TagOptions(tag_template="{{.Hash}}"),
            platforms=(platform,),
            also_name=name,
        )
        build_package(directory, opts)

    return build


def run(args: argparse.Namespace, common: CommonOptions) -> int:
    run_build(options_from_args(args, common))
    return 0
