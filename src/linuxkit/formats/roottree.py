"""The rootfs as a directory tree for image tools that read a directory (``mkfs.erofs`` 1.5, ``xorriso``),
made by any user: the tar is extracted and the tool run in one ``fakeroot`` session.

fakeroot fakes owners, device nodes, set-id modes and extended attributes for the processes in its
session (the files on disk belong to the caller), so no root is needed and what the tool sees does
not depend on the host: its file system's xattr support, ACLs or SELinux labels (fakeroot hides real
xattrs). Root builds take the same path, so every user gets the same bytes. It is one session because
fakeroot's state file (``-s``/``-i``) keeps owners and modes but drops xattrs. The session runs this
module (``python -m linuxkit.formats.roottree``); its errors come back to the caller as a JSON file.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .. import log, runner
from ..errors import BuildError, LinuxKitError, ToolMissingError, UserError
from ..rootfs.header import BLOCKDEV, CHAR, DIR, FIFO, LINK, REG, SYMLINK, Header, Readable, enc
from ..rootfs.tarreader import read_entries
from ..rootfs.tarwriter import copy_data

#: PAX records that carry an extended attribute (Go's archive/tar, GNU tar, bsdtar with --format pax).
XATTR_PREFIX = "SCHILY.xattr."
_ERROR_FILE = "error.json"
_ERRORS: dict[str, type[LinuxKitError]] = {cls.__name__: cls for cls in (UserError, BuildError, ToolMissingError)}


def split_boot(rootfs_tar: Path, work: Path, entry: Callable[[Header, Readable], None]) -> tuple[Path, Path]:
    """Stream ``rootfs_tar``: ``boot/kernel`` and ``boot/cmdline`` to ``work`` (the last one of each
    wins), other ``boot/`` entries dropped, every other entry handed to ``entry``."""
    kernel, cmdline = work / "kernel", work / "cmdline"
    kernel.write_bytes(b"")
    cmdline.write_bytes(b"")
    with open(rootfs_tar, "rb") as src:
        for item in read_entries(src):
            hdr = item.header
            if hdr.name in ("boot/kernel", "boot/cmdline"):
                with open(kernel if hdr.name == "boot/kernel" else cmdline, "wb") as out:
                    copy_data(out, item.data, hdr.size)
            elif hdr.name == "boot" or hdr.name.startswith("boot/"):
                continue
            else:
                entry(hdr, item.data)
    return kernel, cmdline


def _safe_path(root: Path, name: str) -> Path:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise BuildError(f"rootfs tar entry {name!r} climbs out of the root")
    return root.joinpath(*parts) if parts else root


def xattrs(hdr: Header) -> list[tuple[str, bytes]]:
    """The entry's extended attributes from its PAX records, sorted by name (the order they are set
    in is the order the image tool lists them in, so it must not depend on the tar)."""
    records = hdr.pax or {}
    found = [(key[len(XATTR_PREFIX) :], enc(value)) for key, value in records.items() if key.startswith(XATTR_PREFIX)]
    return sorted(a for a in found if a[0])


class Extractor:
    """Writes tar entries into a directory with their modes, owners, xattrs and a fixed time. Owners,
    device nodes and ``security.*``/``trusted.*`` xattrs need root or a fakeroot session."""

    def __init__(self, root: Path, epoch: int) -> None:
        self.root = root
        self.epoch = epoch
        self.dirs: list[tuple[Path, int]] = []
        # what this extractor made (the tree starts empty): saves a stat per entry, a round trip to
        # fakeroot's daemon each
        self.made: set[Path] = {root}
        root.mkdir(parents=True, exist_ok=True)

    def __call__(self, hdr: Header, data: Readable) -> None:
        path = _safe_path(self.root, hdr.name)
        if path == self.root:
            self.dirs.append((path, hdr.mode))
            os.chown(path, hdr.uid, hdr.gid)
            self._set_xattrs(path, hdr)
            return
        self._parents(path.parent)
        if hdr.typeflag != DIR and path in self.made:
            path.unlink()  # a later entry of the same name wins, as when a tar is extracted
        try:
            self._make(path, hdr, data)
            os.lchown(path, hdr.uid, hdr.gid)
            self.made.add(path)
        except PermissionError as exc:
            raise BuildError(
                f"cannot create {hdr.name!r} with its owner or type: {exc.strerror}",
                hint="the tree is made under fakeroot: check that 'fakeroot -- id -u' prints 0 here",
            ) from exc
        # xattrs after the owner: a real chown drops security.capability
        self._set_xattrs(path, hdr)
        if hdr.typeflag not in (SYMLINK, LINK):
            os.chmod(path, stat.S_IMODE(hdr.mode))
            os.utime(path, (self.epoch, self.epoch))

    def _parents(self, path: Path) -> None:
        """Make the missing directories above an entry: 0755, owned by root (fakeroot's owner for a
        file it did not chown) and fixed in time like the others."""
        missing = []
        while path not in self.made:
            missing.append(path)
            path = path.parent
        for parent in reversed(missing):
            parent.mkdir()
            self.made.add(parent)
            self.dirs.append((parent, 0o755))

    def _set_xattrs(self, path: Path, hdr: Header) -> None:
        for name, value in xattrs(hdr):
            try:
                os.setxattr(path, name, value, follow_symlinks=False)
            except OSError as exc:
                raise BuildError(f"cannot set extended attribute {name!r} on {hdr.name!r}: {exc.strerror}") from exc

    def _make(self, path: Path, hdr: Header, data: Readable) -> None:
        kind = hdr.typeflag
        if kind == DIR:
            path.mkdir(exist_ok=True)
            self.dirs.append((path, hdr.mode))
        elif kind == REG:
            with open(path, "wb") as out:
                copy_data(out, data, hdr.size)
        elif kind == SYMLINK:
            os.symlink(hdr.linkname, path)
            os.utime(path, (self.epoch, self.epoch), follow_symlinks=False)
        elif kind == LINK:
            os.link(_safe_path(self.root, hdr.linkname), path)
        elif kind in (CHAR, BLOCKDEV):
            dev_type = stat.S_IFCHR if kind == CHAR else stat.S_IFBLK
            os.mknod(path, dev_type | 0o600, os.makedev(hdr.devmajor, hdr.devminor))
        elif kind == FIFO:
            os.mkfifo(path)
        else:
            raise BuildError(f"rootfs tar entry {hdr.name!r} has tar type {kind!r}, which a root image cannot hold")

    def finish(self) -> None:
        """Fix directory times last (creating their children changed them), deepest first."""
        for path, mode in sorted(self.dirs, key=lambda d: len(d[0].parts), reverse=True):
            os.chmod(path, stat.S_IMODE(mode))
            os.utime(path, (self.epoch, self.epoch))
        # the root itself has no entry in most rootfs tars: its time must be fixed too
        os.utime(self.root, (self.epoch, self.epoch))


def extract_root(rootfs_tar: Path, work: Path, epoch: int) -> tuple[Path, Path, Path]:
    """``(kernel, cmdline, tree)``: the rootfs without ``boot/`` extracted to ``work/root`` (run it
    as root or under fakeroot; :func:`image_from_tree` does)."""
    tree = work / "root"
    extractor = Extractor(tree, epoch)
    kernel, cmdline = split_boot(rootfs_tar, work, extractor)
    extractor.finish()
    return kernel, cmdline, tree


def image_from_tree(
    rootfs_tar: Path,
    work: Path,
    epoch: int,
    tool: Callable[[Path], runner.Cmd],
    extra_env: dict[str, str] | None = None,
) -> tuple[Path, Path]:
    """Extract ``rootfs_tar`` (without ``boot/``) to ``work/root`` and run ``tool(work/root)`` (an argv)
    in one fakeroot session; ``(kernel, cmdline)`` come back in ``work``. Tool errors are raised here
    as the session raised them."""
    tree = work / "root"
    argv = [os.fspath(a) for a in tool(tree)]
    # the session imports this very package, even from a source tree or a sys.path set by hand; an
    # installed one is found without help (and site-packages put first could shadow the stdlib)
    package_root = Path(__file__).resolve().parents[2]
    own = "" if package_root.name in ("site-packages", "dist-packages") else str(package_root)
    path = os.pathsep.join(p for p in (own, os.environ.get("PYTHONPATH", "")) if p)
    session = [sys.executable, "-P", "-m", __name__, str(rootfs_tar), str(work), str(epoch), str(log.level())]
    error_file = work / _ERROR_FILE
    error_file.unlink(missing_ok=True)
    proc = runner.run(
        ["fakeroot", "--", *session, "--", *argv], check=False, extra_env={**(extra_env or {}), "PYTHONPATH": path}
    )
    if error_file.exists():
        raise _load_error(error_file)
    if proc.returncode != 0:
        raise BuildError(
            f"the fakeroot session that extracts the root and runs {Path(argv[0]).name} failed "
            f"(exit {proc.returncode})",
            hint="its messages are above; check that fakeroot works here: 'fakeroot -- id -u' prints 0",
        )
    return work / "kernel", work / "cmdline"


def _dump_error(exc: LinuxKitError, path: Path) -> None:
    kind = type(exc).__name__ if type(exc).__name__ in _ERRORS else "BuildError"
    path.write_text(json.dumps({"kind": kind, "message": exc.message, "hint": exc.hint}))


def _load_error(path: Path) -> LinuxKitError:
    try:
        data = json.loads(path.read_text())
        return _ERRORS.get(data["kind"], BuildError)(str(data["message"]), hint=data.get("hint"))
    except (ValueError, KeyError, TypeError) as exc:
        return BuildError(f"the fakeroot session left an unreadable error report {path}: {exc}")


def session_main(args: Sequence[str]) -> int:
    """Inside fakeroot: ``ROOTFS_TAR WORK EPOCH LOG_LEVEL -- TOOL...``: extract, then run the tool."""
    if len(args) < 6 or args[4] != "--":
        print("usage: python -m linuxkit.formats.roottree ROOTFS_TAR WORK EPOCH LOG_LEVEL -- TOOL...", file=sys.stderr)
        return 2
    rootfs_tar, work, epoch, level, tool = Path(args[0]), Path(args[1]), int(args[2]), int(args[3]), args[5:]
    log.configure(level)
    try:
        extract_root(rootfs_tar, work, epoch)
        runner.run(tool, capture=True)
    except LinuxKitError as exc:
        _dump_error(exc, work / _ERROR_FILE)
        return 1
    except OSError as exc:
        _dump_error(BuildError(f"extracting the root file system failed: {exc}"), work / _ERROR_FILE)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(session_main(sys.argv[1:]))
