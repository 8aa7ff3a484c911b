"""The file tree of an image built from Debian packages: unpack, choose, add, write one layer.

``.deb`` data is unpacked into a staging directory (regular file contents only; symlinks, modes and
directories are kept as metadata, so nothing on disk can redirect a later write). Then:

* ``include`` globs choose what to keep (everything when absent), ``exclude`` globs drop paths;
* every kept ELF program or library pulls in its interpreter and the ``DT_NEEDED`` libraries it
  loads (searched as ``ld.so`` would), and every kept symlink its target, so "ship only
  ``usr/sbin/runc``" gives a runnable runc;
* files from the package directory, symlinks and directories are added on top;
* one reproducible tar layer is written: sorted, parents first, owner 0:0, one fixed mtime.

Glob syntax: ``*`` and ``?`` stay within one path component, ``**`` crosses ``/``; a pattern that
names a directory also covers everything below it. Paths are written without a leading ``/``.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import stat
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.segments import InterpSegment

from ..errors import BuildError
from ..safetree import clean_name, create_file

REG, DIR, SYM = "file", "dir", "symlink"

#: Debian's multiarch triplets: where the dynamic loader looks for libraries.
TRIPLETS = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu", "riscv64": "riscv64-linux-gnu"}


@dataclass
class Node:
    kind: str
    mode: int
    target: str = ""  # symlink target as written
    origin: str = ""  # the package (or "copy") it came from


def clean_path(name: str) -> str | None:
    """``./usr/bin/x`` → ``usr/bin/x``; ``None`` for the root or anything that would escape it."""
    return clean_name(name) or None


def glob_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    pat = pattern.strip("/")
    while i < len(pat):
        if pat.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pat.startswith("**", i):
            out.append(".*")
            i += 2
        elif pat[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pat[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pat[i]))
            i += 1
    return re.compile("".join(out) + "(?:/.*)?\\Z")


class Matcher:
    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = [glob_regex(p) for p in patterns]

    def __call__(self, path: str) -> bool:
        return any(p.match(path) for p in self.patterns)


class Tree:
    """Paths (no leading slash) → nodes, with regular-file contents staged under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.nodes: dict[str, Node] = {}

    def staged(self, path: str) -> Path:
        return self.root / path

    # ------------------------------------------------------------------ filling
    def add_deb_member(self, info: tarfile.TarInfo, data: IO[bytes] | None, origin: str) -> None:
        path = clean_path(info.name)
        if path is None:
            return
        if info.isdir():
            self._dirs_for(path)
            self.nodes[path] = Node(DIR, info.mode & 0o7777, origin=origin)
        elif info.issym():
            self._dirs_for(path)
            self.nodes[path] = Node(SYM, 0o777, info.linkname, origin)
        elif info.islnk():
            source = clean_path(info.linkname)
            if source is None or source not in self.nodes or self.nodes[source].kind != REG:
                raise BuildError(f"{origin}: hard link {info.name} to missing {info.linkname}")
            self._dirs_for(path)
            self._place(path)
            with open(self.staged(source), "rb") as src, create_file(self.root, path) as out:
                shutil.copyfileobj(src, out, 1 << 20)
            self.nodes[path] = Node(REG, info.mode & 0o7777, origin=origin)
        elif info.isreg():
            assert data is not None
            self._dirs_for(path)
            self._place(path)
            with create_file(self.root, path) as out:
                shutil.copyfileobj(data, out, 1 << 20)
            self.nodes[path] = Node(REG, info.mode & 0o7777, origin=origin)
        # device nodes, fifos: never needed in an image built this way

    @staticmethod
    def _name(path: str) -> str:
        """``path`` as a name inside the tree; a name that climbs out is an error before anything
        on disk is touched."""
        clean = clean_path(path)
        if clean is None:
            raise BuildError(f"{path!r} is not a path inside the image", hint="fix the path in build.yml")
        return clean

    def add_file(self, path: str, source: Path, mode: int, origin: str = "copy") -> None:
        path = self._name(path)
        self._dirs_for(path)
        self._place(path)
        with open(source, "rb") as src, create_file(self.root, path) as out:
            shutil.copyfileobj(src, out, 1 << 20)
        self.nodes[path] = Node(REG, mode, origin=origin)

    def add_bytes(self, path: str, data: bytes, mode: int = 0o644, origin: str = "generated") -> None:
        path = self._name(path)
        self._dirs_for(path)
        self._place(path)
        with create_file(self.root, path) as out:
            out.write(data)
        self.nodes[path] = Node(REG, mode, origin=origin)

    def add_symlink(self, path: str, target: str, origin: str = "symlink") -> None:
        path = self._name(path)
        self._dirs_for(path)
        self.nodes[path] = Node(SYM, 0o777, target, origin)

    def add_dir(self, path: str, mode: int = 0o755, origin: str = "directory") -> None:
        path = self._name(path)
        self._dirs_for(path)
        if path not in self.nodes or self.nodes[path].kind != DIR:
            self.nodes[path] = Node(DIR, mode, origin=origin)

    def _dirs_for(self, path: str) -> None:
        parent = posixpath.dirname(path)
        while parent and parent not in self.nodes:
            self.nodes[parent] = Node(DIR, 0o755, origin="implied")
            parent = posixpath.dirname(parent)

    def _place(self, path: str) -> None:
        """Make room for a file at ``path`` (a clean name: see :meth:`_name`): a directory staged there
        goes (its parents are made by :func:`~..safetree.create_file`, which writes nothing through a
        symlink)."""
        target = self.staged(path)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)

    # ------------------------------------------------------------------ lookups
    def resolve(self, path: str, depth: int = 0) -> str | None:
        """Follow symlinks (in every component) inside the tree; ``None`` when it leads nowhere."""
        if depth > 40:
            return None
        parts = path.split("/")
        current = ""
        for i, part in enumerate(parts):
            candidate = f"{current}/{part}" if current else part
            node = self.nodes.get(candidate)
            if node is None:
                return None
            if node.kind == SYM:
                base = "" if node.target.startswith("/") else posixpath.dirname(candidate)
                joined = posixpath.normpath(posixpath.join("/", base, node.target)).lstrip("/")
                rest = "/".join(parts[i + 1 :])
                return self.resolve(f"{joined}/{rest}" if rest else joined, depth + 1)
            current = candidate
        return current


def _elf_needs(path: Path) -> tuple[str | None, list[str], list[str]]:
    """(interpreter, DT_NEEDED, DT_RUNPATH/DT_RPATH dirs) of an ELF file; empty for anything else."""
    with open(path, "rb") as fh:
        if fh.read(4) != b"\x7fELF":
            return None, [], []
        fh.seek(0)
        try:
            elf = ELFFile(fh)
            interp = None
            for seg in elf.iter_segments():
                if isinstance(seg, InterpSegment):
                    interp = seg.get_interp_name()
            needed: list[str] = []
            runpath: list[str] = []
            for section in elf.iter_sections():
                if isinstance(section, DynamicSection):
                    for tag in section.iter_tags():
                        if tag.entry.d_tag == "DT_NEEDED":
                            needed.append(str(getattr(tag, "needed", "")))
                        elif tag.entry.d_tag in ("DT_RUNPATH", "DT_RPATH"):
                            runpath.extend(getattr(tag, "runpath", getattr(tag, "rpath", "")).split(":"))
            return interp, needed, runpath
        except ELFError:
            return None, [], []


#: top-level directories that merged-/usr releases (Debian 13 on) ship only under usr/
MERGED_USR_DIRS = frozenset({"bin", "sbin", "lib", "lib32", "lib64", "libx32"})


def _merged_usr_link(tree: Tree, path: str) -> str:
    """``path`` itself, made to exist when only ``usr/path`` does.

    From Debian 13 the packages ship ``/lib64/ld-linux-x86-64.so.2`` (and the like) only under ``usr/``: the
    ``/lib64 → usr/lib64`` link comes from base-files, which an image does not carry. The kernel opens an ELF
    interpreter by its absolute path, so that one path gets a link. Not a whole-directory link: another image of
    the same system may ship a real ``/lib64`` directory, and a link there would shadow it."""
    if path in tree.nodes or path.split("/")[0] not in MERGED_USR_DIRS or tree.resolve(f"usr/{path}") is None:
        return path
    tree.add_symlink(path, posixpath.relpath(f"usr/{path}", posixpath.dirname(path)), origin="merged /usr")
    return path


def library_dirs(arch: str) -> list[str]:
    triplet = TRIPLETS.get(arch, "")
    dirs = [f"lib/{triplet}", f"usr/lib/{triplet}"] if triplet else []
    return [*dirs, "lib", "usr/lib", "lib64", "usr/lib64"]


def select(
    tree: Tree,
    *,
    arch: str,
    include: Sequence[str] | None,
    exclude: Sequence[str],
) -> set[str]:
    """The paths to ship: chosen by the globs, plus what chosen programs and links need."""
    drop = Matcher(exclude)
    keep = Matcher(include) if include is not None else None
    chosen = {p for p in tree.nodes if not drop(p) and (keep is None or keep(p))}
    queue = sorted(chosen)
    search = library_dirs(arch)
    while queue:
        path = queue.pop()
        node = tree.nodes[path]
        wanted: list[str] = []
        if node.kind == SYM:
            real = tree.resolve(path)
            if real is not None:
                # every link on the way, and the final file
                base = "" if node.target.startswith("/") else posixpath.dirname(path)
                wanted.append(posixpath.normpath(posixpath.join("/", base, node.target)).lstrip("/"))
                wanted.append(real)
        elif node.kind == REG:
            interp, needed, runpath = _elf_needs(tree.staged(path))
            if interp:
                wanted.append(_merged_usr_link(tree, posixpath.normpath(interp.lstrip("/"))))
            origin_dir = posixpath.dirname(path)
            dirs = [d.replace("$ORIGIN", "/" + origin_dir).lstrip("/") for d in runpath if d] + search
            for lib in needed:
                found = next((f"{d}/{lib}" for d in dirs if tree.resolve(f"{d}/{lib}") is not None), None)
                if found is None:
                    raise BuildError(
                        f"/{path} (from {node.origin}) needs {lib}, which no package of the image provides",
                        hint="add the Debian package that ships it to debian.packages",
                    )
                wanted.append(found)
        for item in wanted:
            item = posixpath.normpath(item)
            # walk every component so intermediate links are kept too
            parts = item.split("/")
            for i in range(1, len(parts) + 1):
                prefix = "/".join(parts[:i])
                node_i = tree.nodes.get(prefix)
                if node_i is None:
                    break
                if node_i.kind != DIR and prefix not in chosen:
                    chosen.add(prefix)
                    queue.append(prefix)
                if node_i.kind == SYM:
                    break  # the rest is reached through the link's own resolution
    # parents of everything chosen
    for path in list(chosen):
        parent = posixpath.dirname(path)
        while parent:
            chosen.add(parent)
            parent = posixpath.dirname(parent)
    return chosen


def copy_tree(tree: Tree, source: Path, dst: str, mode: int | None) -> None:
    """Add ``source`` (a file, a link or a whole directory of the build context) at ``dst`` in the image.

    File modes follow what git records (executable → 0755, else 0644) unless ``mode`` is given, so
    the image does not depend on the umask of the checkout."""
    base = dst.strip("/")
    if not os.path.lexists(source):
        raise BuildError(
            f"{source}: no such file in the package directory or its extra-sources",
            hint="fix debian.copy (or extra-sources) in build.yml",
        )

    def one(path: Path, target: str) -> None:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            tree.add_symlink(target, os.readlink(path), origin="copy")
        elif stat.S_ISDIR(st.st_mode):
            if target:
                tree.add_dir(target, 0o755, origin="copy")
            for child in sorted(os.listdir(path)):
                one(path / child, f"{target}/{child}" if target else child)
        elif stat.S_ISREG(st.st_mode):
            if not target:
                raise BuildError(f"{source}: a file cannot be copied to /")
            file_mode = mode if mode is not None else (0o755 if st.st_mode & 0o111 else 0o644)
            tree.add_file(target, path, file_mode, origin="copy")
        else:
            raise BuildError(f"{path}: only files, directories and symlinks can be copied into an image")

    one(source, base)


def write_layer(tree: Tree, paths: Iterable[str], out: IO[bytes], *, mtime: int) -> None:
    """One reproducible tar layer of ``paths`` (sorted so parents come first)."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for path in sorted(paths):
            node = tree.nodes[path]
            info = tarfile.TarInfo(path)
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = node.mode
            if node.kind == DIR:
                info.type = tarfile.DIRTYPE
                info.name = path + "/"
                tf.addfile(info)
            elif node.kind == SYM:
                info.type = tarfile.SYMTYPE
                info.linkname = node.target
                tf.addfile(info)
            else:
                staged = tree.staged(path)
                info.size = staged.stat().st_size
                with open(staged, "rb") as fh:
                    tf.addfile(info, fh)
