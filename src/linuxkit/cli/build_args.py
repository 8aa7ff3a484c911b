"""``linuxkit build``'s flags resolved by upstream's rules (names, formats, ``--o``, ``--size``),
checked before anything is loaded: shared by the build and the dry run, which checks them too."""

from __future__ import annotations

import argparse
import os
from typing import NamedTuple

from ..arch import normalize_arch
from ..errors import UserError
from ..formats import registry
from ..gocompat.path import go_base, go_ext  # the format table: no writer is imported
from ..sizes import parse_size_mb

DEFAULT_NAME_FOR_STDIN = "moby"


class BuildArgs(NamedTuple):
    formats: list[str]
    name: str
    out_dir: str
    output_file: str
    size_mb: int
    arch: str


def resolve(args: argparse.Namespace) -> BuildArgs:
    """Upstream's rules for names, formats and ``--o``."""
    name: str = args.name
    out_dir: str = args.dir
    output_file: str = args.output_file
    configs: list[str] = args.configs
    if not name and not output_file:
        last = configs[-1]
        # upstream: strings.TrimSuffix(filepath.Base(conf), filepath.Ext(conf)), URLs included
        name = DEFAULT_NAME_FOR_STDIN if last == "-" else go_base(last).removesuffix(go_ext(last))
    formats = registry.split_formats(args.format) or (["tar"] if output_file else ["kernel+initrd"])
    registry.check_alone(formats)
    first = registry.find(formats[0])
    streamable = first is not None and first.streamed
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
    if bool(args.sign_key) != bool(args.sign_cert):
        raise UserError(
            "--sign-key and --sign-cert go together", hint="give both, to sign the EFI binaries (Secure Boot)"
        )
    if args.input_tar and output_file and args.input_tar == output_file:
        raise UserError("input-tar and output file cannot be the same")
    return BuildArgs(formats, name, out_dir, output_file, parse_size_mb(args.size), normalize_arch(args.arch))
