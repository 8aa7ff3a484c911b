"""Build one architecture of a package image from its ``debian:`` section.

lock (or resolve and lock) → download (sha256 from the lock) → unpack every ``.deb`` → choose files →
add the package's own files → one reproducible layer + an image config. No maintainer script runs and
nothing needs root: the image is described, not installed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import log
from ..config.dump import image_config_label
from ..debian.deb import iter_deb_data
from ..debian.download import fetch_debs
from ..debian.index import Archive
from ..debian.model import DebRef
from ..debian.resolver import resolve
from ..debian.sources import DEFAULT_SUITES, debian_sources
from ..errors import BuildError, UserError
from . import kernel_image, kmod
from .buildyml import DebianSection, PkgInfo, context_path
from .debian_sbom import describe_packages, image_files
from .fstree import REG, Matcher, Tree, copy_tree, select, write_layer
from .lockfile import LOCK_NAME, Lock, inputs_digest, read_lock, write_lock
from .spdx import DebianPackage, ImageFile

#: Never shipped unless a package asks for them by ``include``: documentation and translations.
DEFAULT_EXCLUDES = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "usr/share/bug",
    "usr/share/doc-base",
)
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def default_debian_cache(env: dict[str, str] | None = None) -> Path:
    """Where downloaded indexes and ``.deb`` files are kept (``LINUXKIT_DEBIAN_CACHE``)."""
    env = dict(os.environ) if env is None else env
    if env.get("LINUXKIT_DEBIAN_CACHE"):
        return Path(env["LINUXKIT_DEBIAN_CACHE"])
    return Path.home() / ".linuxkit" / "debian"


@dataclass(frozen=True)
class DebianSettings:
    cache_dir: Path
    mirror: str | None = None
    security_mirror: str | None = None
    update_lock: bool = False  # resolve again even when the lock is current
    frozen_lock: bool = False  # refuse to change the lock (CI: "the lock must be current")
    epoch: int = 0  # mtime of every file in the image
    jobs: int = 4
    allow_expired: bool = False  # accept an InRelease past its Valid-Until (snapshot mirrors)


@dataclass(frozen=True)
class BuiltLayer:
    config: dict[str, Any]
    layer: Path
    packages: tuple[DebRef, ...]
    #: for the SBOM: the packages as their .deb files describe them, the layer's regular files (their
    #: ``staged`` paths are valid inside the ``with`` block of :func:`build_layer` only)
    described: tuple[DebianPackage, ...] = ()
    files: tuple[ImageFile, ...] = ()


def _section(info: PkgInfo) -> DebianSection:
    assert info.debian is not None
    return info.debian


def archive_components(deb: DebianSection) -> tuple[str, ...]:
    """The archive components to read (``debian.components``; apt's configuration does not decide them,
    so a package builds the same on a machine whose apt has only ``main``)."""
    return tuple(deb.components or ("main",))


def locked_packages(info: PkgInfo, pkg_dir: Path, arch: str, settings: DebianSettings) -> list[DebRef]:
    """The exact packages for ``arch``: from ``debian.lock`` when current, else resolved and written."""
    deb = _section(info)
    suites = tuple(deb.suites or DEFAULT_SUITES)
    inputs = inputs_digest(deb.packages, deb.exclude_packages or (), suites, deb.components or ())
    lock_path = pkg_dir / LOCK_NAME
    lock = read_lock(lock_path)
    if lock is not None and not settings.update_lock:
        refs = lock.for_arch(arch, inputs)
        if refs is not None:
            return refs
    if settings.frozen_lock:
        why = "has no entry for " + arch if lock is not None and lock.inputs == inputs else "is out of date"
        raise UserError(
            f"{lock_path} {why}" if lock is not None else f"{lock_path} is missing",
            hint=f"run: linuxkit pkg lock {pkg_dir}",
        )
    refs = resolve_packages(deb, arch, settings)
    if lock is None or lock.inputs != inputs:
        lock = Lock(inputs=inputs)
    lock.arches[arch] = refs
    write_lock(lock_path, lock)
    log.info(f"  wrote {lock_path} ({arch}: {len(refs)} packages)")
    return refs


ARCH_PLACEHOLDER = "{{.Arch}}"


def for_arch(names: Sequence[str], arch: str) -> list[str]:
    """Package names with ``{{.Arch}}`` replaced by the Debian architecture (``linux-image-cloud-{{.Arch}}``)."""
    return [name.replace(ARCH_PLACEHOLDER, arch) for name in names]


def resolve_packages(deb: DebianSection, arch: str, settings: DebianSettings) -> list[DebRef]:
    suites = tuple(deb.suites or DEFAULT_SUITES)
    sources = debian_sources(
        suites, mirror=settings.mirror, security_mirror=settings.security_mirror, components=archive_components(deb)
    )
    archive = Archive(sources, arch, settings.cache_dir, ignore_valid_until=settings.allow_expired)
    roots = for_arch(deb.packages, arch)
    with log.step(f"Resolving {', '.join(roots)} for {arch}"):
        archive.load()
        packages = resolve(archive, roots, exclude=for_arch(deb.exclude_packages or (), arch))
    return [p.ref() for p in packages]


@contextmanager
def build_layer(info: PkgInfo, pkg_dir: Path, arch: str, settings: DebianSettings) -> Iterator[BuiltLayer]:
    """Build ``arch``'s layer in a temporary directory (removed when the ``with`` block ends)."""
    deb = _section(info)
    refs = locked_packages(info, pkg_dir, arch, settings)
    sources = debian_sources(
        tuple(deb.suites or DEFAULT_SUITES),
        mirror=settings.mirror,
        security_mirror=settings.security_mirror,
        components=archive_components(deb),
    )
    debs = fetch_debs(refs, sources, settings.cache_dir, jobs=settings.jobs)
    with tempfile.TemporaryDirectory(prefix="linuxkit-pkg-") as tmp:
        tree = Tree(Path(tmp) / "stage")
        tree.root.mkdir()
        for ref in sorted(refs, key=lambda r: r.name):
            for member, data in iter_deb_data(debs[ref]):
                tree.add_deb_member(member, data, ref.name)
        if deb.kernel is not None:
            image = _kernel_tree(tree, deb, Path(tmp) / "kernel", settings.epoch)
            chosen = set(image.nodes)
        else:
            image = tree
            chosen = select(tree, arch=arch, include=deb.include, exclude=[*DEFAULT_EXCLUDES, *(deb.exclude or ())])
        # what copy, symlinks and directories add or replace is shipped, also where a package had that path
        before = dict(image.nodes)
        for item in deb.copy_ or []:
            source = context_path(pkg_dir, info, item.src)
            copy_tree(image, source, item.dst, int(item.mode, 8) if item.mode else None)
        for link, target in sorted((deb.symlinks or {}).items()):
            image.add_symlink(link.strip("/"), target)
        for directory in deb.directories or []:
            image.add_dir(directory.strip("/"))
        for target, patterns in sorted((deb.concat or {}).items()):
            image.add_bytes(target.strip("/"), concatenated(tree, patterns, target), origin="concat")
        chosen |= {path for path, node in image.nodes.items() if before.get(path) is not node}
        for path in [*(deb.symlinks or {}), *(deb.directories or [])]:
            chosen.add(path.strip("/"))
        layer = Path(tmp) / "layer.tar"
        shipped = _with_parents(chosen)
        with open(layer, "wb") as out:
            write_layer(image, shipped, out, mtime=settings.epoch)
        described = describe_packages(refs, debs, tree)
        files = image_files(image, shipped, tree, deb, [r.name for r in refs])
        yield BuiltLayer(image_config(info, arch), layer, tuple(refs), tuple(described), tuple(files))


def concatenated(tree: Tree, patterns: Sequence[str], target: str) -> bytes:
    """The regular files of the unpacked packages matching ``patterns``, in path order, each ending with a
    newline (as ``update-ca-certificates`` writes its bundle)."""
    match = Matcher(patterns)
    parts = []
    for path in sorted(p for p, node in tree.nodes.items() if node.kind == REG and match(p)):
        data = tree.staged(path).read_bytes()
        parts.append(data if data.endswith(b"\n") or not data else data + b"\n")
    if not parts:
        raise BuildError(f"debian.concat {target}: no file of the packages matches {', '.join(patterns)}")
    return b"".join(parts)


def _with_parents(paths: set[str]) -> set[str]:
    out = set(paths)
    for path in paths:
        parent = os.path.dirname(path)
        while parent:
            out.add(parent)
            parent = os.path.dirname(parent)
    return out


def _kernel_tree(tree: Tree, deb: DebianSection, root: Path, epoch: int) -> Tree:
    """A tree with just ``kernel`` (the vmlinuz; an uncompressed arm64/riscv64 ``Image`` gzipped) and
    ``kernel.tar`` (the chosen modules)."""
    assert deb.kernel is not None
    vmlinuz, version = kmod.find_kernel(tree)
    out = Tree(root)
    root.mkdir()
    shipped = kernel_image.kernel_file(tree.staged(vmlinuz), root.parent / "kernel.gz")
    out.add_file("kernel", shipped, 0o644, origin="kernel")
    dtbs = kmod.device_trees(tree, version, deb.kernel.dtbs)
    tar = kmod.kernel_tar(tree, version, deb.kernel.modules, mtime=epoch, added=dtbs)
    out.add_bytes("kernel.tar", tar, origin="kernel")
    return out


def image_config(info: PkgInfo, arch: str) -> dict[str, Any]:
    """The OCI image config: entrypoint/cmd/env/workdir from ``debian:``, upstream's labels."""
    deb = _section(info)
    labels: dict[str, str] = {}
    if info.config is not None:
        labels["org.mobyproject.config"] = image_config_label(info.config)
    container: dict[str, Any] = {"Env": list(deb.env) if deb.env is not None else [DEFAULT_PATH]}
    if deb.entrypoint is not None:
        container["Entrypoint"] = list(deb.entrypoint)
    if deb.cmd is not None:
        container["Cmd"] = list(deb.cmd)
    if deb.workdir:
        container["WorkingDir"] = deb.workdir
    if labels:
        container["Labels"] = labels
    return {"architecture": arch, "os": "linux", "config": container}
