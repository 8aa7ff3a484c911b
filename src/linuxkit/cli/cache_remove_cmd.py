"""``linuxkit cache rm|clean``, and their ``--published-only``: only what the registry holds, identical."""

from __future__ import annotations

import argparse

from .. import log
from ..errors import UserError
from ..oci.cache import Cache
from ..oci.reference import normalize
from ..oci.registry.published import publications
from ..oci.verbs import clean, remove_images
from .common import CommonOptions
from .registries import registry_options


def run_rm(args: argparse.Namespace, common: CommonOptions) -> int:
    cache = Cache(common.cache_dir)
    if not args.published_only:
        for removed in remove_images(cache, list(args.names)):
            log.info(removed.message())
        return 0
    images: dict[str, str] = {}
    for name in args.names:
        root = cache.find(name)
        if root is None:
            raise UserError(f"image {name} is not in the cache {cache.root}", hint="see `linuxkit cache ls`")
        images[root.name or normalize(name)] = root.digest
    _remove_published(cache, images, common)
    return 0


def run_clean(args: argparse.Namespace, common: CommonOptions) -> int:
    if not args.published_only:
        log.info(clean(common.cache_dir))
        return 0
    cache = Cache(common.cache_dir)
    _remove_published(cache, cache.images() if cache.layout.exists() else {}, common)
    return 0


def _remove_published(cache: Cache, images: dict[str, str], common: CommonOptions) -> None:
    """Remove the images the registry holds with the same root digest; say why each other one stays."""
    kept = 0
    for found in publications(images, registry_options(common)):
        current = cache.find(found.name)
        if current is not None and current.digest != found.cached:  # renamed by another process meanwhile
            log.info(f"image {found.name} changed in the cache while it was checked, leaving in cache")
            kept += 1
            continue
        if not found.published:
            log.info(found.message())
            kept += 1
            continue
        for removed in remove_images(cache, [found.name]):
            log.info(removed.message())
    if kept:
        log.info(f"{kept} image(s) left in the cache")
