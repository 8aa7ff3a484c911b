"""``linuxkit build``: upstream's flags, resolved into :class:`~linuxkit.build.BuildOptions`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UserError
from ..formats import registry  # the format table: no writer is imported
from ..oci.image import host_arch, normalize_arch  # small: the --arch default
from .common import CommonOptions, add_verb
from .pkg_cmd import debian_settings

if TYPE_CHECKING:
    from ..build import BuildOptions
    from ..images import PackageBuilder
    from ..oci.image import Platform

DEFAULT_NAME_FOR_STDIN = "moby"
DEFAULT_SBOM_FILENAME = "sbom.spdx.json"


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps help lines between words only, so format names such as ``iso-efi-initrd`` stay whole."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_verb(verbs, "build", "Build a bootable OS image from a yaml configuration file")
    p.formatter_class = _HelpFormatter
    p.add_argument("configs", nargs="+", metavar="FILE", help="YAML files (or - for stdin, or http(s) URLs)")
    p.add_argument("--name", default="", help="name to use for output files")
    p.add_argument("--dir", default="", help="directory for output files (default: current directory)")
    p.add_argument("--o", dest="output_file", default="", metavar="FILE", help="single output file, or - for stdout")
    p.add_argument("--size", default="1024M", help="size of disk images, where the format has a fixed size")
    p.add_argument("--pull", action="store_true", help="always pull images")
    p.add_argument("--docker", action="store_true", help="look for images in docker before the linuxkit cache")
    p.add_argument("--decompress-kernel", action="store_true", help="decompress the Linux kernel")
    p.add_argument("--arch", default=host_arch(), help="target architecture (default: host)")
    p.add_argument(
        "-f",
        "--format",
        action="append",
        default=[],
        help="formats to create (repeat or comma list): " + " ".join(registry.names()),
    )
    p.add_argument("--input-tar", default="", help="tar from a previous build to reuse unchanged parts from")
    p.add_argument("--no-sbom", action="store_true", help="do not write a consolidated SBOM into the image")
    p.add_argument("--sbom-output", default=DEFAULT_SBOM_FILENAME, help="SBOM file name in the root filesystem")
    p.add_argument("--sbom-current-time", action="store_true", help="use the current time in the SBOM")
    p.add_argument("--dry-run", action="store_true", help="print the merged configuration and stop")
    p.add_argument("--debian-mirror", default=None, help="Debian archive URL for @pkg: packages built on the way")
    p.add_argument("--debian-security-mirror", default=None, help="Debian security archive URL (same)")
    p.set_defaults(func=run)


def options_from_args(args: argparse.Namespace, common: CommonOptions) -> BuildOptions:
    """Upstream's rules for names, formats and ``--o``."""
    from ..build import BuildOptions
    from ..sizes import parse_size_mb

    name: str = args.name
    out_dir: str = args.dir
    output_file: str = args.output_file
    configs: list[str] = args.configs
    if not name and not output_file:
        last = configs[-1]
        name = (
            DEFAULT_NAME_FOR_STDIN
            if last == "-"
            else Path(last).stem
            if "://" not in last
            else Path(last.rstrip("/").rsplit("/", 1)[-1]).stem
        )
    formats = registry.split_formats(args.format) or (["tar"] if output_file else ["kernel+initrd"])
    registry.check_alone(formats)
    first = registry.find(formats[0])
    streamable = first is not None and first.input is registry.Input.STREAM
    if len(formats) == 1 and first is not None and streamable and not output_file:
        output_file = os.path.join(out_dir, name + first.outputs[0].suffix)
        name = ""
        out_dir = ""
    if args.input_tar and args.pull:
        raise UserError("cannot use --input-tar and --pull together")
    if output_file:
        if len(formats) > 1:
            raise UserError("the --o option can only be specified when generating a single output format")
        if name:
            raise UserError("the --o option cannot be specified with --name")
        if out_dir:
            raise UserError("the --o option cannot be specified with --dir")
        if not streamable:
            raise UserError(f"the --o option cannot be specified for build type {formats[0]} as it cannot be streamed")
    if args.input_tar and output_file and args.input_tar == output_file:
        raise UserError("input-tar and output file cannot be the same")
    return BuildOptions(
        configs=configs,
        formats=formats,
        name=name,
        out_dir=Path(out_dir or "."),
        output_file=output_file,
        size_mb=parse_size_mb(args.size),
        pull=args.pull,
        docker=args.docker,
        decompress_kernel=args.decompress_kernel,
        arch=normalize_arch(args.arch),
        cache_dir=common.cache_dir,
        input_tar=Path(args.input_tar) if args.input_tar else None,
        sbom=None if args.no_sbom else args.sbom_output,
        sbom_current_time=args.sbom_current_time,
        dry_run=args.dry_run,
        registry=common.registry_options(),
        pkg_builder=package_builder(args, common),
        debian=lambda: debian_settings(args),  # made only if a build needs it: it loads the package builder
    )


def package_builder(args: argparse.Namespace, common: CommonOptions) -> PackageBuilder:
    """Builds a missing ``@pkg:`` package for one platform, as ``pkg build`` would (tag ``{{.Hash}}``)."""

    def build(directory: str, platform: Platform, name: str) -> None:
        from ..oci.cache import Cache
        from ..packages.pkgbuild import PkgBuildOptions, build_package
        from ..packages.tag import TagOptions

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
    from ..build import run_build

    run_build(options_from_args(args, common))
    return 0
