"""Boot-loader files for ISO, disk and UKI outputs, from a package image rather than from the host.

The package definition ships with this tool (``formats/mkimage/build.yml`` and its ``debian.lock``).
Its image is named ``linuxkit/mkimage:<hash>``, the hash taken over those two files, so any machine
builds the same image from the Debian archive on first use and finds it in the cache afterwards. The
image's files are unpacked into a temporary directory with the Debian paths that
:mod:`.bootfiles` looks up.
"""

from __future__ import annotations

import hashlib
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from .. import log
from ..errors import BuildError
from ..oci.cache import Cache
from ..oci.image import Platform
from ..packages.debian_image import DebianSettings, default_debian_cache
from ..packages.pkgbuild import PkgBuildOptions, build_package
from ..packages.tag import TagOptions
from ..rootfs.flatten import flatten
from ..safetree import SafeTree

if TYPE_CHECKING:
    from collections.abc import Callable

MKIMAGE_DIR = Path(__file__).with_name("mkimage")
#: dmsetup and its libraries for the root loader of ``build --verity`` (:mod:`.rootloader`)
DMSETUP_DIR = Path(__file__).with_name("dmsetup")


def mkimage_hash(package: Path = MKIMAGE_DIR) -> str:
    """The tag of a package shipped with this tool: a hash of its ``build.yml`` and ``debian.lock``."""
    digest = hashlib.sha1()
    for name in ("build.yml", "debian.lock"):
        digest.update(name.encode() + b"\0" + (package / name).read_bytes() + b"\0")
    return digest.hexdigest()


def boot_files_tree(
    cache: Cache,
    platform: Platform,
    dest: Path,
    *,
    debian: DebianSettings | Callable[[], DebianSettings] | None = None,
    package: Path = MKIMAGE_DIR,
) -> Path:
    """Unpack the boot-loader image for ``platform`` into ``dest`` (building it first when missing);
    ``package``: another package shipped with this tool the same way (``formats/dmsetup``).

    ``debian``: the Debian settings for that build, or a function making them (called here: making
    them may load more of the package builder), or ``None`` for the defaults."""
    if debian is None:
        debian = DebianSettings(cache_dir=default_debian_cache())
    elif callable(debian):
        debian = debian()
    opts = PkgBuildOptions(
        cache=cache,
        debian=debian,
        tag=TagOptions(hash=mkimage_hash(package), tag_template="{{.Hash}}"),
        platforms=(platform,),
    )
    result = build_package(package, opts)
    image = cache.resolve(result.name, platform)
    if image is None:
        raise BuildError(f"tool image {result.name} is missing from the cache after building it")
    log.debug(f"{package.name} files from {result.name}")
    # the image comes from the cache, which may sit on a shared disk: its flattened entries go
    # straight to the one safe tree writer, without owners, devices or xattrs (the caller's files,
    # as tar's "data" filter would make them)
    with (
        SafeTree(dest, 0, source=result.name, owners=False, devices=False, xattrs=False) as tree,
        closing(flatten(image)) as entries,
    ):
        for entry in entries:
            tree.add(entry.header.copy(mode=entry.header.mode & 0o755), entry.data)
        tree.finish()
    return dest
