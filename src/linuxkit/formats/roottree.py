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

import contextlib
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .. import log, runner
from ..errors import BuildError, LinuxKitError, ToolMissingError, UserError
from ..safetree import SafeTree, xattrs
from ..tar.header import Header, Readable
from ..tar.reader import read_entries
from ..tar.writer import copy_data

__all__ = ["extract_root", "image_from_tree", "split_boot", "xattrs"]

_ERROR_FILE = "error.json"
_ERRORS: dict[str, type[LinuxKitError]] = {cls.__name__: cls for cls in (UserError, BuildError, ToolMissingError)}


def is_boot(name: str) -> bool:
    """Whether a rootfs entry is below ``boot/`` (taken out of root images, as upstream)."""
    return name == "boot" or name.startswith("boot/")


def split_boot(rootfs_tar: Path | BinaryIO, work: Path, entry: Callable[[Header, Readable], None]) -> tuple[Path, Path]:
    """Stream ``rootfs_tar`` (a path or an open file): ``boot/kernel`` and ``boot/cmdline`` to ``work``
    (the last one of each wins), other ``boot/`` entries dropped, every other entry handed to ``entry``."""
    kernel, cmdline = work / "kernel", work / "cmdline"
    kernel.write_bytes(b"")
    cmdline.write_bytes(b"")
    with contextlib.ExitStack() as stack:
        src = rootfs_tar if not isinstance(rootfs_tar, Path) else stack.enter_context(open(rootfs_tar, "rb"))
        for item in read_entries(src):
            hdr = item.header
            if hdr.name in ("boot/kernel", "boot/cmdline"):
                with open(kernel if hdr.name == "boot/kernel" else cmdline, "wb") as out:
                    copy_data(out, item.data, hdr.size)
            elif is_boot(hdr.name):
                continue
            else:
                entry(hdr, item.data)
    return kernel, cmdline


def extract_root(rootfs_tar: Path | BinaryIO, work: Path, epoch: int) -> tuple[Path, Path, Path]:
    """``(kernel, cmdline, tree)``: the rootfs without ``boot/`` extracted to ``work/root`` (run it
    as root or under fakeroot; :func:`image_from_tree` does)."""
    tree = work / "root"
    with SafeTree(tree, epoch, source="rootfs") as writer:
        kernel, cmdline = split_boot(rootfs_tar, work, writer.add)
        writer.finish()
    return kernel, cmdline, tree


#: The ids a root build drops to for the session (nobody/nogroup): the extraction and the image tool
#: read untrusted content, so a bug there must not be able to reach the host's files as root.
UNPRIVILEGED_ID = 65534


def _others_can_use(path: Path) -> bool:
    """True when a user with none of the file's or its directories' ids can reach and read ``path``."""
    try:
        return bool(path.stat().st_mode & stat.S_IROTH) and _reachable_by_others(path)
    except OSError:
        return False


def _interpreter_for_others(package_root: Path) -> str | None:
    """A Python 3.11+ an unprivileged user can run, when this package can be read by one too (else
    ``None``: the session then keeps the caller's ids, with a warning)."""
    if not _others_can_use(package_root / "linuxkit" / "formats" / "roottree.py"):
        return None
    on_path = [os.path.join(d, "python3") for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    for exe in [sys.executable, *on_path, "/usr/bin/python3"]:
        if exe and _others_can_use(Path(exe)):
            minor = Path(exe).resolve().name.removeprefix("python3.")
            if exe == sys.executable or (minor.isdigit() and int(minor) >= 11):
                return exe
    return None


def _reachable_by_others(directory: Path) -> bool:
    """True when a user with none of the ids of ``directory``'s parents can reach ``directory``."""
    try:
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in directory.resolve(strict=True).parents)
    except OSError:
        return False


#: Where an unprivileged session's own directory may be made when ``work`` is out of its reach: the
#: system's temp directory first, then the usual world-writable ones (a root whose /tmp is mode 0700,
#: as on some CI machines, would otherwise lose the drop)
_SHARED_TEMP_DIRS = ("/var/tmp", "/dev/shm")


def dir_for_others() -> Path | None:
    """The first of the temp directories that a user with none of its ids can enter (``None``: none)."""
    for candidate in (tempfile.gettempdir(), *_SHARED_TEMP_DIRS):
        path = Path(candidate)
        try:
            if path.is_dir() and path.stat().st_mode & stat.S_IXOTH and _reachable_by_others(path):
                return path
        except OSError:
            continue
    return None


@dataclass(frozen=True)
class _Session:
    """How the session runs: ``prefix`` before ``fakeroot`` (``setpriv`` when dropping root), the
    interpreter, and where it works (``None``: in ``work`` itself)."""

    prefix: list[str]
    python: str
    parent: Path | None = None  # an unprivileged session's own directory is made here


def _plan(work: Path, package_root: Path) -> _Session:
    """Run as root, the session drops to :data:`UNPRIVILEGED_ID` (``setpriv``: no capabilities, no
    set-id gains, no groups) when that user can run a Python 3.11+, read this package and reach a
    directory to work in; otherwise it keeps the caller's ids, with a warning."""
    if os.geteuid() != 0:
        return _Session([], sys.executable)
    python = _interpreter_for_others(package_root)
    # work's own mode does not matter (it is handed to the session's user); image tools resolve
    # their paths, so its parents must be reachable, else a directory of its own is made elsewhere
    parent = work.parent if _reachable_by_others(work) else dir_for_others()
    if python is None or parent is None:
        log.warn(
            "the root tree is extracted as root: no Python, linuxkit package or working directory here is "
            "reachable by an unprivileged user (install them world-readable to get the extra isolation)"
        )
        return _Session([], sys.executable)
    ids = str(UNPRIVILEGED_ID)
    prefix = [
        runner.find_tool("setpriv"),
        *("--reuid", ids, "--regid", ids, "--clear-groups", "--no-new-privs", "--bounding-set", "-all", "--"),
    ]
    return _Session(prefix, python, None if parent == work.parent else parent)


@contextlib.contextmanager
def _session_dir(work: Path, session: _Session) -> Iterator[Path]:
    """Where the session works: ``work`` itself (handed to the session's user while it runs), or a
    directory of its own in ``session.parent``. Afterwards everything the session made there, except
    the tree, is in ``work`` and the caller's."""
    if not session.prefix:
        yield work
        return
    own = work if session.parent is None else Path(tempfile.mkdtemp(prefix="linuxkit-tree.", dir=session.parent))
    os.chown(own, UNPRIVILEGED_ID, UNPRIVILEGED_ID)
    try:
        yield own
    finally:
        uid, gid = os.getuid(), os.getgid()
        os.chown(own, uid, gid)
        with os.scandir(own) as found:
            for item in list(found):
                if item.name == "root":
                    continue
                os.chown(item.path, uid, gid, follow_symlinks=False)
                if own is not work:
                    shutil.move(item.path, work / item.name)
        if own is not work:
            shutil.rmtree(own)


def image_from_tree(
    rootfs_tar: Path,
    work: Path,
    epoch: int,
    tool: Callable[[Path], runner.Cmd],
    extra_env: dict[str, str] | None = None,
) -> tuple[Path, Path]:
    """Extract ``rootfs_tar`` (without ``boot/``) to a tree ``root`` and run ``tool(Path("root"))`` (an
    argv) in one fakeroot session in the tree's parent directory (so the tool names its outputs
    relative to it); the outputs, ``kernel`` and ``cmdline`` come back in ``work``. Run as root, the
    session runs as an unprivileged user that reads the tar from its standard input and can write
    only in a directory of its own. Tool errors are raised here as the session raised them."""
    argv = [os.fspath(a) for a in tool(Path("root"))]
    fakeroot = runner.find_tool("fakeroot")
    # the session imports this very package, even from a source tree or a sys.path set by hand; an
    # installed one is found without help (and site-packages put first could shadow the stdlib)
    package_root = Path(__file__).resolve().parents[2]
    own = "" if package_root.name in ("site-packages", "dist-packages") else str(package_root)
    path = os.pathsep.join(p for p in (own, os.environ.get("PYTHONPATH", "")) if p)
    error_file = work / _ERROR_FILE
    error_file.unlink(missing_ok=True)
    plan = _plan(work, package_root)
    session = [plan.python, "-P", "-m", __name__, "-", ".", str(epoch), str(log.level())]
    with _session_dir(work, plan) as cwd, open(rootfs_tar, "rb") as tar:
        proc = runner.run(
            [*plan.prefix, fakeroot, "--", *session, "--", *argv],
            check=False,
            stdin=tar,
            cwd=cwd,
            extra_env={**(extra_env or {}), "PYTHONPATH": path},
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
        usage = "usage: python -m linuxkit.formats.roottree ROOTFS_TAR|- WORK EPOCH LOG_LEVEL -- TOOL..."
        print(usage, file=sys.stderr)
        return 2
    rootfs_tar, work, epoch, level, tool = args[0], Path(args[1]), int(args[2]), int(args[3]), args[5:]
    log.configure(level)
    try:
        extract_root(sys.stdin.buffer if rootfs_tar == "-" else Path(rootfs_tar), work, epoch)
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
