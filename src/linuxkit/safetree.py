"""Write a directory tree from untrusted tar entries without ever touching anything outside its root.

Every writer of a tree on the host goes through here: the root images (``kernel+erofs``, ``kernel+iso``,
see :mod:`.formats.roottree`), the boot-loader files (:mod:`.formats.loaders`) and the package
builder's staging of regular files (:func:`create_file`, :mod:`.packages.fstree`). The entries come
from images pulled from registries, caches on shared disks and ``kernel.tar`` files, so a name or
link target can say anything. Two layers keep the writes inside:

* :class:`TreePlan` decides, from names alone, what an entry does to the tree, with the semantics of
  extracting the entries in order ("a later entry of the same name wins"), except that nothing is
  ever written *through* or *below* a symlink or other non-directory (such an entry is dropped with
  a warning), a later directory replaces a symlink or file of its name, a non-directory never
  replaces a directory (dropped: the kernel's initramfs unpacker keeps a non-empty directory too),
  and a hard link may only name a non-directory this plan already placed. It is pure bookkeeping
  (no I/O), so the ``kernel+squashfs`` tar normaliser uses the very same rules.
* :class:`SafeTree` carries out a plan on disk with directory file descriptors: every component is
  opened with ``O_NOFOLLOW|O_DIRECTORY`` below the root's descriptor, files are created with
  ``O_CREAT|O_EXCL|O_NOFOLLOW``, owners, modes, times and xattrs are set on the descriptor or with
  ``AT_SYMLINK_NOFOLLOW``, and hard links are made with ``linkat`` without ``AT_SYMLINK_FOLLOW``.
  Even if the plan were wrong, the kernel refuses to follow a symlink anywhere in a write.

Python has no binding for ``openat2(RESOLVE_BENEATH)``; opening one component at a time with
``O_NOFOLLOW`` gives the same guarantee (names are single components, never ``..``). Names and link
targets are bounded by the tar reader (``MAX_NAME``, the kernel's ``PATH_MAX``) so bookkeeping stays
linear.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from . import log
from .errors import BuildError
from .gocompat.path import go_clean
from .tar.header import BLOCKDEV, CHAR, DIR, FIFO, LINK, REG, SYMLINK, Header, Readable, enc
from .tar.reader import PathBudget, check_name_lengths
from .tar.writer import copy_data

#: PAX records that carry an extended attribute (Go's archive/tar, GNU tar, bsdtar with --format pax).
XATTR_PREFIX = "SCHILY.xattr."

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

#: Largest uid/gid Linux stores (``(uid_t)-1`` means "unchanged").
_MAX_ID = (1 << 32) - 2

# What the plan knows of a name: a directory, or anything else (nothing may go below it).
_IS_DIR, _IS_FILE = 1, 2

# What an entry does.
NEW, REPLACE, UPDATE = "new", "replace", "update"


@dataclass(frozen=True)
class Placement:
    """Where an entry goes: its cleaned ``name`` and what happens there (``action``): ``new``,
    ``replace`` (an existing non-directory, or a symlink a directory now takes the place of, is
    removed first) or ``update`` (a directory already there gets this entry's metadata).
    ``parents`` are the missing directories to make first, outermost first."""

    name: str
    action: str
    parents: tuple[str, ...] = ()
    link_target: str = ""


def xattrs(hdr: Header) -> list[tuple[str, bytes]]:
    """The entry's extended attributes from its PAX records, sorted by name (the order they are set
    in is the order the image tool lists them in, so it must not depend on the tar)."""
    records = hdr.pax or {}
    found = [(key[len(XATTR_PREFIX) :], enc(value)) for key, value in records.items() if key.startswith(XATTR_PREFIX)]
    return sorted(a for a in found if a[0])


def clean_name(name: str) -> str | None:
    """``name`` cleaned as Go's ``path.Clean`` does and made relative to the root (``./a//b/`` → ``a/b``,
    ``/a`` → ``a``, ``a/b/..`` → ``a``), ``""`` for the root, ``None`` when it climbs above the root.
    The one rule for every reader of untrusted names (layers, ``kernel.tar``, trees, staged files)."""
    cleaned = go_clean(name)
    if cleaned.startswith("/"):
        cleaned = cleaned.lstrip("/") or "."
    if cleaned == ".." or cleaned.startswith("../"):
        return None
    return "" if cleaned == "." else cleaned


class TreePlan:
    """The shape of a tree being extracted, by name: what is a directory, a symlink or another file."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.kinds: dict[str, int] = {"": _IS_DIR}
        self.budget = PathBudget(source)
        self._last_parent = ""  # a parent already checked to be a directory chain (most entries share it)

    def _drop(self, name: str, why: str) -> None:
        log.warn(f"{self.source}: dropping {name!r}: {why}")

    def place(self, hdr: Header) -> Placement | None:
        """What writing ``hdr`` does, or ``None`` when it must be dropped (a warning says why).
        The plan is updated as if the placement was carried out."""
        check_name_lengths(hdr, self.source)
        name = clean_name(hdr.name)
        if name is None:
            self._drop(hdr.name, "it climbs out of the root")
            return None
        if "\0" in hdr.name or "\0" in hdr.linkname:
            self._drop(hdr.name, "its name or link target holds a NUL byte, which no file system takes")
            return None
        if hdr.typeflag == SYMLINK and not hdr.linkname:
            self._drop(hdr.name, "a symlink with an empty target, which no file system takes")
            return None
        if name == "":
            return Placement("", UPDATE) if hdr.typeflag == DIR else None
        parents = self._parents(name)
        if parents is None:
            return None
        kind = self.kinds.get(name)
        target = ""
        if hdr.typeflag == LINK:
            found = self._link_target(name, hdr.linkname)
            if found is None:
                return None
            target = found
        if hdr.typeflag == DIR:
            action = NEW if kind is None else UPDATE if kind == _IS_DIR else REPLACE
            new_kind = _IS_DIR
        else:
            if kind == _IS_DIR:
                self._drop(name, "a directory of that name is already in the tree")
                return None
            if target == name:
                return None  # a link to itself: the file is already there
            action = NEW if kind is None else REPLACE
            new_kind = _IS_FILE
        for parent in parents:
            self.budget.charge(parent)
            self.kinds[parent] = _IS_DIR
        if kind is None:
            self.budget.charge(name)
        self.kinds[name] = new_kind
        cut = name.rfind("/")
        self._last_parent = name[:cut] if cut > 0 else ""
        return Placement(name, action, parents, target)

    def _parents(self, name: str) -> tuple[str, ...] | None:
        """The missing parents of ``name`` (outermost first), or ``None`` (dropped) when one of them
        is a symlink or another non-directory."""
        cut = name.rfind("/")
        parent = name[:cut] if cut > 0 else ""
        if parent == self._last_parent:
            return ()
        missing: list[str] = []
        probe = parent
        while probe:
            kind = self.kinds.get(probe)
            if kind == _IS_DIR:
                break
            if kind is not None:
                self._drop(name, f"{probe!r} above it is a symlink or a file, not a directory")
                return None
            missing.append(probe)
            cut = probe.rfind("/")
            probe = probe[:cut] if cut > 0 else ""
        return tuple(reversed(missing))

    def _link_target(self, name: str, linkname: str) -> str | None:
        target = clean_name(linkname)
        kind = self.kinds.get(target) if target else None
        if target is None or kind is None or kind == _IS_DIR:
            self._drop(name, f"its hard-link target {linkname!r} is not a file already in the tree")
            return None
        return target


def create_file(root: Path, name: str) -> BinaryIO:
    """Open ``root/name`` for writing (created or truncated), its missing parents made, without
    following a symlink anywhere: for writers that stage regular files only (the package builder),
    so that they too write nothing outside ``root`` whatever names they are given."""
    clean = clean_name(name)
    if not clean:
        raise BuildError(f"cannot write {name!r}: the name is empty or climbs out of {root}")
    head, base = _split(clean)
    root_fd = os.open(root, _DIR_FLAGS)
    try:
        fd = _open_beneath(root_fd, head, make=True)
    except OSError as exc:
        raise BuildError(f"cannot write {clean!r}: {head!r} is not a directory ({exc.strerror})") from exc
    finally:
        os.close(root_fd)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            out = os.open(base, flags, 0o644, dir_fd=fd)
        except OSError as exc:  # ELOOP for a symlink, EISDIR for a directory
            raise BuildError(f"cannot write {clean!r}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    return open(out, "wb")


def _split(name: str) -> tuple[str, str]:
    cut = name.rfind("/")
    return (name[:cut], name[cut + 1 :]) if cut >= 0 else ("", name)


def _open_beneath(root_fd: int, name: str, *, make: bool = False) -> int:
    """A new descriptor of directory ``name`` (cleaned, relative; ``""`` is the root) below ``root_fd``,
    opened one component at a time without following any symlink; with ``make``, missing components
    are made (0755)."""
    fd = os.dup(root_fd)
    try:
        for part in name.split("/") if name else ():
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not make:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


class SafeTree:
    """Extract tar entries below ``root`` (created; must not exist) following a :class:`TreePlan`.

    ``owners``: set uids/gids (needs root or fakeroot); ``devices``: make device nodes (else they
    are dropped); ``xattrs``: set ``SCHILY.xattr.*`` records. Times are fixed to ``epoch``; modes of
    directories and times are set by :meth:`finish`, deepest first.
    """

    def __init__(
        self, root: Path, epoch: int, *, source: str, owners: bool = True, devices: bool = True, xattrs: bool = True
    ) -> None:
        self.root = root
        self.epoch = epoch
        self.owners, self.devices, self.xattrs = owners, devices, xattrs
        self.plan = TreePlan(source)
        root.mkdir(mode=0o700)
        self._root_fd = os.open(root, _DIR_FLAGS)
        self._dir_modes: dict[str, int] = {"": 0o755}
        self._cached: tuple[str, int] | None = None

    # ------------------------------------------------------------------ descriptors
    def _open_dir(self, name: str) -> int:
        return _open_beneath(self._root_fd, name)

    def _dir_fd(self, name: str) -> int:
        """The (cached) descriptor of directory ``name``: entries mostly come grouped by directory."""
        if self._cached is not None:
            if self._cached[0] == name:
                return self._cached[1]
            os.close(self._cached[1])
            self._cached = None
        fd = self._open_dir(name)
        self._cached = (name, fd)
        return fd

    def close(self) -> None:
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1

    # ------------------------------------------------------------------ entries
    def add(self, hdr: Header, data: Readable) -> None:
        """Write one entry (its data is read from ``data``), or drop it as the plan says."""
        if hdr.typeflag in (CHAR, BLOCKDEV) and not self.devices:
            log.debug(f"{self.plan.source}: skipping device node {hdr.name!r}")
            return
        if hdr.typeflag not in (REG, DIR, SYMLINK, LINK, CHAR, BLOCKDEV, FIFO):
            raise BuildError(
                f"{self.plan.source}: tar entry {hdr.name!r} has tar type {hdr.typeflag!r}, which a tree cannot hold"
            )
        if self.owners and not (0 <= hdr.uid <= _MAX_ID and 0 <= hdr.gid <= _MAX_ID):
            raise BuildError(
                f"{self.plan.source}: tar entry {hdr.name!r} has owner {hdr.uid}:{hdr.gid}, which no Linux file "
                f"system can hold (ids go up to {_MAX_ID})",
                hint="the image is malformed or hostile: rebuild it, or leave it out",
            )
        placed = self.plan.place(hdr)
        if placed is None:
            return
        for missing in placed.parents:
            head, base = _split(missing)
            os.mkdir(base, 0o700, dir_fd=self._dir_fd(head))
            self._dir_modes[missing] = 0o755
        if placed.name == "":
            fd = os.dup(self._root_fd)
            self._dir_modes[""] = stat.S_IMODE(hdr.mode)
            try:
                self._meta_fd(fd, hdr)
            finally:
                os.close(fd)
            return
        head, base = _split(placed.name)
        parent = self._dir_fd(head)
        if placed.action == REPLACE:
            os.unlink(base, dir_fd=parent)
        kind = hdr.typeflag
        if kind == DIR:
            if placed.action != UPDATE:
                os.mkdir(base, 0o700, dir_fd=parent)
            self._dir_modes[placed.name] = stat.S_IMODE(hdr.mode)
            fd = os.open(base, _DIR_FLAGS, dir_fd=parent)
            try:
                self._meta_fd(fd, hdr)
            finally:
                os.close(fd)
        elif kind == REG:
            fd = os.open(base, _FILE_FLAGS, 0o600, dir_fd=parent)
            try:
                with open(fd, "wb", closefd=False) as out:
                    copy_data(out, data, hdr.size)
                self._meta_fd(fd, hdr)
                os.chmod(fd, stat.S_IMODE(hdr.mode))
                os.utime(fd, (self.epoch, self.epoch))
            finally:
                os.close(fd)
        elif kind == LINK:
            thead, tbase = _split(placed.link_target)
            tfd = self._open_dir(thead)
            try:
                os.link(tbase, base, src_dir_fd=tfd, dst_dir_fd=parent, follow_symlinks=False)
            finally:
                os.close(tfd)
            self._meta_at(parent, base, hdr)
        else:
            if kind == SYMLINK:
                os.symlink(hdr.linkname, base, dir_fd=parent)
            elif kind == FIFO:
                os.mkfifo(base, 0o600, dir_fd=parent)
            else:
                dev_type = stat.S_IFCHR if kind == CHAR else stat.S_IFBLK
                os.mknod(base, dev_type | 0o600, os.makedev(hdr.devmajor, hdr.devminor), dir_fd=parent)
            self._meta_at(parent, base, hdr)
            if kind != SYMLINK:
                # a device or fifo this very call made (never a symlink): fchmodat has no NOFOLLOW
                os.chmod(base, stat.S_IMODE(hdr.mode), dir_fd=parent)
            os.utime(base, (self.epoch, self.epoch), dir_fd=parent, follow_symlinks=False)

    def _meta_fd(self, fd: int, hdr: Header) -> None:
        if self.owners:
            os.fchown(fd, hdr.uid, hdr.gid)
        # xattrs after the owner: a real chown drops security.capability
        for key, value in self._xattrs(hdr):
            try:
                os.setxattr(fd, key, value)
            except OSError as exc:
                raise BuildError(f"cannot set extended attribute {key!r} on {hdr.name!r}: {exc.strerror}") from exc

    def _meta_at(self, parent: int, base: str, hdr: Header) -> None:
        if self.owners:
            os.chown(base, hdr.uid, hdr.gid, dir_fd=parent, follow_symlinks=False)
        # setxattr has no *at form: /proc/self/fd/N is the parent directory itself (no name lookup
        # above it), and the last component is not followed
        for key, value in self._xattrs(hdr):
            try:
                os.setxattr(f"/proc/self/fd/{parent}/{base}", key, value, follow_symlinks=False)
            except OSError as exc:
                raise BuildError(f"cannot set extended attribute {key!r} on {hdr.name!r}: {exc.strerror}") from exc

    def _xattrs(self, hdr: Header) -> list[tuple[str, bytes]]:
        return xattrs(hdr) if self.xattrs else []

    def finish(self) -> None:
        """Set directory modes and times last (creating their children changed them), deepest first;
        the root's time too (most rootfs tars have no entry for it)."""
        self._close_cached()
        for name in sorted(self._dir_modes, key=lambda n: n.count("/") + (1 if n else 0), reverse=True):
            fd = self._open_dir(name)
            try:
                os.chmod(fd, self._dir_modes[name])
                os.utime(fd, (self.epoch, self.epoch))
            finally:
                os.close(fd)
        self.close()

    def _close_cached(self) -> None:
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None

    def __enter__(self) -> SafeTree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
