"""``linuxkit pkg manifest|index`` and ``pkg remote-tag``: package images in a registry, nothing built (so
none of the package builder is imported: the tag comes from :mod:`linuxkit.packages.tag`)."""

from __future__ import annotations

import argparse

from .. import log
from ..oci import reference
from ..oci.registry.arch_index import push_arch_index
from ..oci.registry.retag import remote_tag
from ..packages.tag import package_tag
from .common import CommonOptions
from .pkg_tag_cmd import tag_options
from .registries import registry_options


def run_manifest(args: argparse.Namespace, common: CommonOptions) -> int:
    """Rebuild each package's index in the registry from its ``TAG-<arch>`` images there (and the
    release's, with ``--release``), as upstream's ``pkg manifest``."""
    options = registry_options(common)
    opts = tag_options(args)
    for directory in args.dirs:
        name = package_tag(directory, opts).canonical
        names = [name] + ([name.rsplit(":", 1)[0] + ":" + args.release] if args.release else [])
        for ref in names:
            with log.step(f"Updating the index {ref} from the {ref}-<arch> images in the registry"):
                pushed = push_arch_index(ref, options=options)
            log.info(f"{ref} {pushed.descriptor.digest}" + (" (unchanged)" if pushed.outcome == "unchanged" else ""))
    return 0


def run_remote_tag(args: argparse.Namespace, common: CommonOptions) -> int:
    source, target = reference.normalize(args.source), reference.normalize(args.target)
    with log.step(f"Tagging {source} as {target}"):
        pushed = remote_tag(source, target, options=registry_options(common))
    log.info(f"{target} {pushed.descriptor.digest}")
    return 0
