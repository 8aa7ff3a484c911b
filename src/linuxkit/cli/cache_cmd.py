"""``linuxkit cache ls|import|export``: the local cache only (``pull``, ``push`` and ``verify`` talk to
registries: :mod:`.cache_registry_cmd`; ``rm`` and ``clean`` may: :mod:`.cache_remove_cmd`)."""

from __future__ import annotations

import argparse
import sys

from .. import log
from ..errors import UserError
from ..oci.archive import export_to, import_archive
from ..oci.cache import Cache
from ..oci.image import Platform
from ..oci.verbs import ls_lines
from .common import CommonOptions


def run_ls(args: argparse.Namespace, common: CommonOptions) -> int:
    for line in ls_lines(Cache(common.cache_dir)):
        log.console().print(line, markup=False, highlight=False)
    return 0


def run_import(args: argparse.Namespace, common: CommonOptions) -> int:
    cache = Cache(common.cache_dir)
    if args.file == "-":
        imported = import_archive(cache, sys.stdin.buffer, source="stdin")
    else:
        try:
            fh = open(args.file, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UserError(f"unable to open {args.file}: {exc.strerror}") from exc
        with fh:
            imported = import_archive(cache, fh, source=args.file)
    for item in imported:
        if item.name:
            log.info(f"imported {item.name} ({item.descriptor.digest})")
        else:
            log.warn(f"imported {item.descriptor.digest} without a name (no io.containerd.image.name annotation)")
    return 0


def run_export(args: argparse.Namespace, common: CommonOptions) -> int:
    export_to(
        Cache(common.cache_dir),
        args.names[0],
        args.outfile,
        fmt=args.format,
        platform=Platform.parse(args.platform),
        name=args.name or None,
    )
    return 0
