"""What the SBOM of a Debian-built image needs from the build: the packages as their ``.deb`` files
describe themselves, and the layer's regular files with the package each came from.

Read from the unpacked tree (no file of it is written or followed outside it): the ``control`` of
every ``.deb`` (source, maintainer, homepage) and ``usr/share/doc/NAME/copyright`` (licences; a
symlinked doc directory is followed inside the tree, as Debian shares one among a source's packages).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path

from ..debian.deb import deb_control
from ..debian.model import DebRef
from .buildyml import DebianSection
from .debian_copyright import Licensing, copyright_licensing
from .fstree import REG, Matcher, Tree
from .spdx import DebianPackage, ImageFile

#: a copyright file larger than this is not read (the largest in bookworm are ~1 MB)
MAX_COPYRIGHT = 8 << 20


def _licensing(tree: Tree, name: str) -> Licensing:
    path = tree.resolve(f"usr/share/doc/{name}/copyright")
    node = tree.nodes.get(path) if path is not None else None
    if path is None or node is None or node.kind != REG:
        return Licensing()
    staged = tree.staged(path)
    if staged.stat().st_size > MAX_COPYRIGHT:
        return Licensing()
    return copyright_licensing(staged.read_bytes().decode("utf-8", errors="replace"))


def describe_packages(refs: Iterable[DebRef], debs: Mapping[DebRef, Path], tree: Tree) -> list[DebianPackage]:
    """The packages of the lock with their control fields and licences (``tree``: every ``.deb`` unpacked)."""
    out = []
    for ref in sorted(refs, key=lambda r: r.name):
        control = deb_control(debs[ref])
        out.append(
            DebianPackage(
                ref,
                source=control.get("Source", ""),
                maintainer=control.get("Maintainer", ""),
                homepage=control.get("Homepage", ""),
                licensing=_licensing(tree, ref.name),
            )
        )
    return out


def _concat_origins(tree: Tree, deb: DebianSection) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for target, patterns in (deb.concat or {}).items():
        match = Matcher(patterns)
        origins = {n.origin for p, n in tree.nodes.items() if n.kind == REG and match(p)}
        out[target.strip("/")] = tuple(sorted(origins))
    return out


def image_files(
    image: Tree, paths: Collection[str], tree: Tree, deb: DebianSection, packages: Sequence[str]
) -> list[ImageFile]:
    """The regular files among ``paths`` of ``image`` (the layer's tree; ``tree``: the unpacked packages):
    a file a package unpacked is that package's; the kernel and its modules tar are generated from the
    package with the vmlinuz, a ``concat`` from the packages of the files it joins."""
    names = set(packages)
    generated = _concat_origins(tree, deb)
    if deb.kernel is not None:
        vmlinuz = sorted(p for p, n in tree.nodes.items() if n.kind == REG and p.startswith("boot/vmlinuz-"))
        kernel_from = tuple(tree.nodes[p].origin for p in vmlinuz[:1])
        generated.update({"kernel": kernel_from, "kernel.tar": kernel_from})
    out = []
    for path in sorted(paths):
        node = image.nodes.get(path)
        if node is None or node.kind != REG:
            continue
        owner = node.origin if node.origin in names else ""
        made_from = () if owner else generated.get(path, ())
        out.append(ImageFile(path, image.staged(path), owner, made_from))
    return out
