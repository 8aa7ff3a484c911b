"""``linuxkit build``: the flags resolved into :class:`~linuxkit.build.BuildOptions`, and the build
(``--dry-run``: :mod:`.dry_run_cmd`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..build import BuildOptions, run_build
from ..formats.signing import signing_key
from .build_args import resolve
from .common import CommonOptions
from .registries import registry_options
from .signing_args import signature_check

if TYPE_CHECKING:
    from ..oci.image import Platform
    from ..packages.debian_image import DebianSettings


def options_from_args(args: argparse.Namespace, common: CommonOptions) -> BuildOptions:
    """The build's options: the flags by upstream's rules, the registries, the package builder."""
    resolved = resolve(args)
    packages = Packages(args, common)
    registry = registry_options(common)
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
        signing=signing_key(args.sign_key, args.sign_cert),
        verity=args.verity,
        registry=registry,
        verify=signature_check(args.verify_key, args.verify_policy, registry),
        pkg_builder=packages.build,
        debian=packages.debian,
    )


class Packages:
    """What a build may need of ``pkg build``: a ``@pkg:`` image missing from the cache built (as
    ``pkg build`` would, tag ``{{.Hash}}``), and the Debian settings of the flags (for those and the
    boot loaders). The package builder and the Debian client cost ~85 ms to import and most builds
    use neither, so :mod:`.pkg_cmd` is imported here, when one of these is first called."""

    def __init__(self, args: argparse.Namespace, common: CommonOptions) -> None:
        self.args = args
        self.common = common

    def build(self, directory: str, platform: Platform, name: str) -> None:
        from .pkg_cmd import build_for_image

        build_for_image(self.args, self.common, directory, platform, name)

    def debian(self) -> DebianSettings:
        from .pkg_cmd import debian_settings

        return debian_settings(self.args)


def run(args: argparse.Namespace, common: CommonOptions) -> int:
    run_build(options_from_args(args, common))
    return 0
