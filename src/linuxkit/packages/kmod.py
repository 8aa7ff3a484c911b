"""A LinuxKit kernel image from a Debian kernel package: ``/kernel`` and ``/kernel.tar``.

``kernel.tar`` holds ``lib/modules/VERSION/`` with only the modules asked for plus the modules they
depend on, and the index files ``modprobe`` reads. Debian's packages ship no ``modules.dep`` (its
postinst runs ``depmod``), so we write ``modules.dep`` and ``modules.alias`` ourselves from each
module's ``.modinfo`` section: that is all busybox ``modprobe`` needs, and it avoids running a host
``depmod`` (package kmod) that would have to match the target's kernel and architecture.
"""

from __future__ import annotations

import difflib
import io
import posixpath
import tarfile
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from .. import log
from ..errors import BuildError, UserError
from .fstree import REG, Matcher, Tree


@dataclass(frozen=True)
class Module:
    name: str  # normalised: dashes → underscores
    path: str  # relative to lib/modules/VERSION
    depends: tuple[str, ...]
    aliases: tuple[str, ...]


def module_name(filename: str) -> str:
    base = posixpath.basename(filename)
    for suffix in (".ko", ".ko.xz", ".ko.zst", ".ko.gz"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base.replace("-", "_")


def read_modinfo(path: Path) -> dict[str, list[str]]:
    """The ``key=value`` strings of a module's ``.modinfo`` section."""
    with open(path, "rb") as fh:
        return parse_modinfo(fh, path.name)


def parse_modinfo(module: IO[bytes], what: str) -> dict[str, list[str]]:
    """The ``key=value`` strings of the ``.modinfo`` section of a module (a seekable stream)."""
    try:
        section = ELFFile(module).get_section_by_name(".modinfo")
    except ELFError as exc:
        raise BuildError(f"{what}: not a kernel module: {exc}") from exc
    data = section.data() if section is not None else b""
    info: dict[str, list[str]] = {}
    for item in data.split(b"\0"):
        if b"=" in item:
            key, value = item.decode(errors="replace").split("=", 1)
            info.setdefault(key, []).append(value)
    return info


def find_kernel(tree: Tree) -> tuple[str, str]:
    """(path of the vmlinuz in the tree, kernel version)."""
    images = sorted(p for p, n in tree.nodes.items() if n.kind == REG and p.startswith("boot/vmlinuz-"))
    if len(images) != 1:
        found = ", ".join(images) or "none"
        raise UserError(
            f"debian.kernel needs exactly one boot/vmlinuz-* in the packages (found: {found})",
            hint="list exactly one linux-image package in debian.packages",
        )
    return images[0], images[0][len("boot/vmlinuz-") :]


def load_modules(tree: Tree, version: str) -> dict[str, Module]:
    base = f"lib/modules/{version}/"
    found: dict[str, Module] = {}
    for path, node in tree.nodes.items():
        if node.kind != REG or not path.startswith(base) or not path.endswith(".ko"):
            continue
        info = read_modinfo(tree.staged(path))
        deps = tuple(d for v in info.get("depends", []) for d in v.split(",") if d)
        name = module_name(path)
        found[name] = Module(name, path[len(base) :], tuple(module_name(d) for d in deps), tuple(info.get("alias", [])))
    return found


def builtin_modules(tree: Tree, version: str) -> set[str]:
    path = f"lib/modules/{version}/modules.builtin"
    if path not in tree.nodes:
        return set()
    return {module_name(line.strip()) for line in tree.staged(path).read_text().splitlines() if line.strip()}


class HasDepends(Protocol):
    @property
    def depends(self) -> tuple[str, ...]: ...


def dependency_order(
    modules: Mapping[str, HasDepends], wanted: Iterable[str], *, skip: Container[str] = (), owner: str = "the kernel"
) -> tuple[list[str], list[str]]:
    """``(order, unknown)``: the wanted modules and their dependencies, each after what it needs, and the
    wanted names that are not modules. ``skip`` (built-in modules) is left out; a missing dependency or a
    loop is a :class:`BuildError`."""
    order: list[str] = []
    done: set[str] = set()
    unknown: list[str] = []

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in done or name in skip:
            return
        if name in chain:
            raise BuildError(f"kernel modules depend on each other in a loop: {' → '.join((*chain, name))}")
        module = modules.get(name)
        if module is None:
            if chain:
                raise BuildError(f"kernel module {chain[-1]} depends on {name}, which {owner} lacks")
            unknown.append(name)
            return
        for dep in module.depends:
            visit(dep, (*chain, name))
        done.add(name)
        order.append(name)

    for name in wanted:
        visit(name, ())
    return order, unknown


def closure(modules: dict[str, Module], wanted: Sequence[str], builtin: set[str]) -> list[str]:
    """Wanted modules and their dependencies, in a valid load order (dependencies first)."""
    names = [module_name(raw) for raw in wanted]
    for name in names:
        if name in builtin:
            log.debug(f"  module {name} is built into the kernel")
    order, unknown = dependency_order(modules, names, skip=builtin, owner="the kernel package")
    if unknown:
        hints = [m for u in unknown for m in difflib.get_close_matches(u, modules, n=2)]
        raise UserError(
            "debian.kernel.modules: unknown module" + ("s " if len(unknown) > 1 else " ") + ", ".join(unknown),
            hint=("did you mean " + ", ".join(hints) + "?") if hints else "check the names with modinfo",
        )
    return order


def modules_dep(modules: dict[str, Module], chosen: Sequence[str]) -> str:
    """``modules.dep`` as depmod writes it: each module, then all its dependencies, the ones to load
    last first (modprobe loads the list from the end)."""
    lines = []
    for name in sorted(chosen, key=lambda n: modules[n].path):
        load = _load_order(modules, name)
        deps = " ".join(modules[d].path for d in reversed(load))
        lines.append(f"{modules[name].path}:{' ' + deps if deps else ''}\n")
    return "".join(lines)


def _load_order(modules: dict[str, Module], name: str) -> list[str]:
    """The dependencies of ``name`` (not itself), each after the ones it needs."""
    load: list[str] = []

    def visit(n: str) -> None:
        for dep in modules[n].depends:
            if dep in modules and dep not in load:
                visit(dep)
                if dep not in load:
                    load.append(dep)

    visit(name)
    return load


def modules_alias(modules: dict[str, Module], chosen: Sequence[str]) -> str:
    lines = ["# Aliases extracted from modules themselves.\n"]
    for name in sorted(chosen):
        lines.extend(f"alias {alias} {name}\n" for alias in modules[name].aliases)
    return "".join(lines)


#: where upstream's kernel images keep their device trees (``make dtbs_install`` into ``boot/dtb``)
DTB_DIR = "boot/dtb"


def device_trees(tree: Tree, version: str, patterns: Sequence[str]) -> dict[str, Path]:
    """``boot/dtb/REL`` → staged file, for each ``usr/lib/linux-image-VERSION/REL`` (Debian's place for
    a kernel's device trees) matching one of ``patterns``; a pattern matching none is an error."""
    base = f"usr/lib/linux-image-{version}/"
    found: dict[str, Path] = {}
    for pattern in patterns:
        match = Matcher([base + pattern.strip("/")])
        paths = sorted(p for p, n in tree.nodes.items() if n.kind == REG and p.startswith(base) and match(p))
        if not paths:
            raise UserError(
                f"debian.kernel.dtbs: no device tree of kernel {version} matches {pattern}",
                hint=f"the patterns are relative to /{base} (e.g. broadcom/bcm2837-rpi-3-b.dtb)",
            )
        for path in paths:
            found[f"{DTB_DIR}/{path[len(base) :]}"] = tree.staged(path)
    return found


def kernel_tar(
    tree: Tree, version: str, wanted: Sequence[str], *, mtime: int, added: Mapping[str, Path] | None = None
) -> bytes:
    """The ``kernel.tar`` bytes (a few MiB: the chosen modules only), plus the ``added`` files (path in
    the tar → file), e.g. the device trees."""
    modules = load_modules(tree, version)
    builtin = builtin_modules(tree, version)
    chosen = closure(modules, wanted, builtin)
    base = f"lib/modules/{version}"
    generated = {
        "modules.dep": modules_dep(modules, chosen).encode(),
        "modules.alias": modules_alias(modules, chosen).encode(),
    }
    for extra in ("modules.builtin", "modules.builtin.modinfo", "modules.order"):
        if f"{base}/{extra}" in tree.nodes:
            generated[extra] = tree.staged(f"{base}/{extra}").read_bytes()
    files = {f"{base}/{modules[n].path}": tree.staged(f"{base}/{modules[n].path}") for n in chosen}
    files.update(added or {})
    dirs: set[str] = set()
    for path in [*files, *(f"{base}/{g}" for g in generated)]:
        parent = posixpath.dirname(path)
        while parent:
            dirs.add(parent)
            parent = posixpath.dirname(parent)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        entries = sorted([*dirs, *files, *(f"{base}/{g}" for g in generated)])
        for path in entries:
            info = tarfile.TarInfo(path)
            info.mtime = mtime
            info.uname = info.gname = ""
            if path in dirs:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                info.name = path + "/"
                tf.addfile(info)
                continue
            data = generated[posixpath.basename(path)] if path not in files else files[path].read_bytes()
            info.mode = 0o644
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    log.info(f"  kernel {version}: {len(chosen)} modules")
    return buf.getvalue()
