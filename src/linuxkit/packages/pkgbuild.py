"""``linuxkit pkg build``: make a package's image for each platform and put it in the cache.

As upstream: the image is named ``org/image:tag`` (tag from git, see :mod:`.tag`), each platform is
also named ``…:tag-<arch>``, and the plain name is an index over the platforms built so far. A
platform already in the cache is not built again unless ``force``.

Packages with a ``debian:`` section are built here from Debian packages; packages with only a
``Dockerfile`` go to an existing engine (:mod:`.dockerfile`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .. import log
from ..errors import UserError
from ..oci.cache import Cache
from ..oci.descriptor import Descriptor
from ..oci.image import Platform
from ..oci.indexmerge import without_dangling
from ..oci.mediatypes import ANNOTATION_DOCKER_REFERENCE_DIGEST, is_index
from .attestation import add_sbom_attestation
from .buildyml import read_build_yml
from .debian_image import BuiltLayer, DebianSettings, build_layer, locked_packages
from .spdx import package_document
from .tag import Git, PackageTag, TagOptions, package_tag


@dataclass(frozen=True)
class PkgBuildOptions:
    cache: Cache
    debian: DebianSettings
    tag: TagOptions = field(default_factory=TagOptions)
    platforms: tuple[Platform, ...] = ()  # empty: every arch of build.yml
    force: bool = False
    #: push only (``--nobuild``): every platform must be in the cache already
    nobuild: bool = False
    #: architectures of build.yml left out (``--skip-platforms``; not with ``platforms``)
    skip_arches: tuple[str, ...] = ()
    #: ``--pull``: fetch a platform missing from the cache (its ``TAG-<arch>`` image) from the registry
    #: instead of building it; returns its manifest descriptor, or ``None`` to build it
    pull: Callable[[str, Platform], Descriptor | None] | None = None
    release: str = ""
    #: Also name the result so (``linuxkit build`` asks for the tag its YAML resolved to, which a
    #: lock written by this build would otherwise change).
    also_name: str = ""


@dataclass(frozen=True)
class PkgBuildResult:
    name: str  # canonical reference of the index
    built: tuple[Platform, ...]
    skipped: tuple[Platform, ...]
    dirty: bool = False  # the tag is a ``-dirty-`` one: such a package must not be pushed
    release: str = ""  # canonical ``org/image:RELEASE`` when ``release`` was asked for
    pulled: tuple[Platform, ...] = ()  # fetched from the registry (``--pull``) instead of built


#: the architectures a package can be built for (upstream's platforms of ``pkg manifest``)
KNOWN_ARCHES = ("amd64", "arm64", "riscv64", "s390x", "ppc64le")


def parse_platforms(text: str, flag: str = "--platforms") -> tuple[Platform, ...]:
    """``linux/amd64,linux/arm64`` as upstream spells platforms (``OS/ARCH``, comma-separated); an
    OS other than linux or an architecture not in :data:`KNOWN_ARCHES` is a :class:`UserError`."""
    out: list[Platform] = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        parts = item.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise UserError(
                f"{flag}: invalid target platform specification {item!r}", hint="write OS/ARCH, e.g. linux/arm64"
            )
        plat = Platform.parse(item)
        if plat.os != "linux" or plat.architecture not in KNOWN_ARCHES:
            raise UserError(
                f"{flag}: unknown platform {item!r}",
                hint="packages are built for " + ", ".join(f"linux/{a}" for a in KNOWN_ARCHES),
            )
        out.append(plat)
    return tuple(dict.fromkeys(out))


def _platforms(arches: Sequence[str], opts: PkgBuildOptions) -> list[Platform]:
    if opts.platforms:
        return list(opts.platforms)
    return [Platform("linux", arch) for arch in arches if arch not in opts.skip_arches]


def _check_arches(directory: Path, arches: Sequence[str], platforms: Sequence[Platform]) -> None:
    """A system built for an architecture its ``@pkg:`` package does not list (before anything is locked)."""
    missing = [p.architecture for p in platforms if p.architecture not in arches]
    if missing:
        raise UserError(
            f"{directory} is built for {', '.join(arches) or 'no architecture'} only (arches: in its build.yml),"
            f" not {', '.join(missing)}",
            hint="use a package that lists that architecture (for arm64, e.g. pkg/kernel instead of pkg/kernel-cloud),"
            " or add it to arches: when Debian has what the package needs there",
        )


def _labels(tag: PackageTag, pkg_dir: Path) -> dict[str, str]:
    labels = {"org.opencontainers.image.source": tag.info.gitrepo}
    git = Git(str(pkg_dir))
    if not tag.dirty and git.is_work_tree():
        for commit in git.lines("rev-parse", "HEAD"):
            labels["org.opencontainers.image.revision"] = commit
    return labels


def build_package(pkg_dir: str | os.PathLike[str], opts: PkgBuildOptions) -> PkgBuildResult:
    directory = Path(pkg_dir).resolve()
    info = read_build_yml(str(directory), opts.tag.build_yml)
    if opts.also_name:  # `linuxkit build` needs this image for its platform: one the package lacks is an error
        _check_arches(directory, info.arches, opts.platforms)
    if info.debian is not None and not opts.nobuild:
        # lock first: the lock is part of the package, so the tag is computed with it in place
        for plat in _platforms(info.arches, opts):
            locked_packages(info, directory, plat.architecture, opts.debian)
    tag = package_tag(str(directory), opts.tag)
    name = tag.canonical
    wanted = _platforms(tag.info.arches, opts)
    if not wanted:  # as upstream: not an error, nothing to build or push
        log.info(f"Skipping {name} with no architectures to build")
        return PkgBuildResult(name, (), (), tag.dirty)
    todo = [p for p in wanted if opts.force or opts.cache.resolve(name, p) is None]
    skipped = tuple(p for p in wanted if p not in todo)
    pulled: dict[Platform, Descriptor] = {}
    if opts.pull is not None and not opts.force:
        for plat in todo:
            found = opts.pull(name, plat)
            if found is not None:
                pulled[plat] = found
        todo = [p for p in todo if p not in pulled]
    if opts.nobuild and todo:
        raise UserError(
            f"{name}: no image for {', '.join(map(str, todo))} in the cache {opts.cache.root}, and --nobuild was given",
            hint="build it first (drop --nobuild), or push only the platforms that were built (--platforms)",
        )
    for plat in skipped:
        log.info(f"{name} ({plat}) is already in the cache; skipping (use --force to build it again)")
    attestations: list[Descriptor] = []  # the SBOMs of the images built from Debian packages
    if todo and tag.info.debian is None:
        from .dockerfile import build_dockerfile_package  # only when a Dockerfile package is built

        built = {p: build_dockerfile_package(tag, directory, p, opts) for p in todo}
    elif todo:
        built = {}
        for plat in todo:
            built[plat], attestation = _build_debian(tag, directory, plat, opts)
            attestations.append(attestation)
    else:
        built = {}
    manifests = {**pulled, **built}
    if opts.also_name and opts.also_name != name:
        if not manifests:  # already built under its current name: point the requested name at it too
            current = opts.cache.find(name)
            if current is not None:
                opts.cache.writer().tag(opts.also_name, current)
        else:
            _name_index(opts.cache, opts.also_name, manifests, attestations)
    release = name.rsplit(":", 1)[0] + ":" + opts.release if opts.release else ""
    if manifests:
        _name_index(opts.cache, name, manifests, attestations)
        if release:
            _name_index(opts.cache, release, manifests, attestations)
    elif release:  # nothing new: the release names what the cache already has (to push it)
        current = opts.cache.find(name)
        if current is not None:
            opts.cache.writer().tag(release, current)
    return PkgBuildResult(name, tuple(built), skipped, tag.dirty, release, tuple(pulled))


def _build_debian(
    tag: PackageTag, directory: Path, platform: Platform, opts: PkgBuildOptions
) -> tuple[Descriptor, Descriptor]:
    """The image manifest of ``platform`` and its SBOM attestation manifest (both in the cache)."""
    arch = platform.architecture
    with (
        log.step(f"Building {tag.canonical} for {platform} from Debian packages"),
        build_layer(tag.info, directory, arch, opts.debian) as built,
    ):
        config = built.config
        config["config"].setdefault("Labels", {}).update(_labels(tag, directory))
        writer = opts.cache.writer()
        with open(built.layer, "rb") as layer:
            desc = writer.add_image(config, [layer], platform=platform)
        writer.tag(f"{tag.canonical}-{arch}", desc)
        log.info(f"  {tag.canonical}-{arch}: {desc.digest}")
        attestation = add_sbom_attestation(
            writer, desc, tag.canonical, str(platform), _sbom(tag, arch, built, opts.debian.epoch)
        )
    return desc, attestation


def _sbom(tag: PackageTag, arch: str, built: BuiltLayer, epoch: int) -> dict[str, object]:
    image, _, version = tag.canonical.rpartition(":")
    created = datetime.fromtimestamp(epoch, UTC)
    return package_document(image, version, arch, built.described, built.files, created=created)


def _name_index(
    cache: Cache, name: str, built: dict[Platform, Descriptor], attestations: Sequence[Descriptor] = ()
) -> None:
    """Point ``name`` at an index of the platforms just built plus those it already had, with the
    attestation manifests of the images it lists (an image's SBOM goes with it)."""
    keep: list[Descriptor] = []
    current = cache.find(name)
    if current is not None and is_index(current.media_type):
        for child in cache.children(current):
            plat = child.platform or {}
            arch = plat.get("architecture")
            # a platform an index pulled from a registry lists but that was never pulled is left out
            present = cache.layout.has_blob(child.digest, child.size)
            if present and (child.is_attestation or arch is None or all(p.architecture != arch for p in built)):
                keep.append(child)
    images = sorted(
        [d for d in [*keep, *built.values()] if not d.is_attestation],
        key=lambda d: str((d.platform or {}).get("architecture", "")),
    )
    # attestations after the images, in their images' order (as BuildKit lists them; the same index whatever
    # the order the platforms were built in), each only while its image is listed
    position = {d.digest: i for i, d in enumerate(images)}
    notes = {d.digest: d for d in [*keep, *attestations] if d.is_attestation and d.digest not in position}
    ordered = sorted(
        notes.values(),
        key=lambda d: (position.get(d.annotations.get(ANNOTATION_DOCKER_REFERENCE_DIGEST, ""), -1), d.digest),
    )
    manifests = without_dangling([*images, *ordered])
    writer = cache.writer()
    writer.tag(name, writer.add_index(manifests))


def head_release_tags(pkg_dir: str | os.PathLike[str]) -> list[str]:
    """The git tags pointing at ``HEAD`` of the package's repository: upstream releases a pushed
    package under them when no ``--release`` is given."""
    git = Git(str(pkg_dir))
    if not git.is_work_tree():
        return []
    return git.lines("tag", "--list", "--points-at", "HEAD")


def require_dirs(dirs: Sequence[str]) -> None:
    for d in dirs:
        if not os.path.isdir(d):
            raise UserError(f"{d}: not a package directory", hint="pass directories that hold a build.yml")
