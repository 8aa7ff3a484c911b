"""Map a request target to a path inside the served directory, and open files there without leaving it.

A request path is percent-decoded into segments (bytes, so any file name can be asked for); a ``..``
segment or a NUL byte is a bad request (400), as Go's ``http.FileServer`` answers ``..``. The path is
then resolved with every symbolic link followed (:func:`os.path.realpath`): one that ends outside the
served directory is refused (403; Go's server would follow it). The file is opened by its resolved path
and checked again through ``/proc/self/fd``, so a link swapped between the check and the open cannot
lead outside either. Only regular files and directories are served: a FIFO or device is refused before
it is opened (opening a FIFO would block the request).
"""

from __future__ import annotations

import errno
import os
import stat
import urllib.parse


class Refused(Exception):
    """The request cannot be answered with a file: ``status`` and a short reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _refusal(exc: OSError) -> Refused | None:
    """The answer to a failed ``stat``/``open`` the client caused (None: the server's own failure)."""
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return Refused(404, "not found")
    if isinstance(exc, PermissionError):
        return Refused(403, "permission denied")
    if exc.errno == errno.ELOOP:
        return Refused(403, "a loop of symbolic links")
    if exc.errno == errno.ENAMETOOLONG:
        return Refused(414, "name too long")
    return None


def request_parts(target: str) -> list[str]:
    """The decoded path segments of a request target (``/a/b%20c?q`` -> ``["a", "b c"]``); empty
    segments are dropped. Raises :class:`Refused` (400) for a target that is no absolute path, a ``..``
    segment or a NUL byte."""
    path = urllib.parse.urlsplit(target).path if "://" in target else target.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        raise Refused(400, "the request path must start with /")
    raw = urllib.parse.unquote_to_bytes(path)
    if b"\0" in raw:
        raise Refused(400, "NUL byte in the request path")
    parts = [os.fsdecode(seg) for seg in raw.split(b"/") if seg and seg != b"."]
    if ".." in parts:
        raise Refused(400, "invalid URL path (..)")
    return parts


def inside(root: str, path: str) -> bool:
    """Whether ``path`` (absolute, resolved) is ``root`` or below it."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def confine(root: str, parts: list[str]) -> str:
    """The resolved path of ``parts`` below ``root`` (itself resolved); raises :class:`Refused` (403)
    when symbolic links lead outside ``root``. The path need not exist."""
    real = os.path.realpath(os.path.join(root, *parts))
    if not inside(root, real):
        raise Refused(403, "a symbolic link leads outside the served directory")
    return real


def kind(path: str) -> str:
    """``"file"``, ``"dir"`` or ``"missing"`` for a resolved path; raises :class:`Refused` (403) for
    anything else (FIFO, socket, device), a path we may not look at or a loop of links; other errors
    (an I/O error) are raised as they are."""
    try:
        st = os.stat(path)
    except OSError as exc:
        refusal = _refusal(exc)
        if refusal is None:
            raise
        if refusal.status == 404:
            return "missing"
        raise refusal from exc
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    raise Refused(403, "not a regular file")


def open_file(root: str, path: str) -> tuple[int, os.stat_result]:
    """Open the regular file ``path`` (resolved, below ``root``) for reading: its descriptor (the
    caller closes it) and status. Raises :class:`Refused` (403/404) when it is no longer one, or when the
    open file turns out to be outside ``root``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        refusal = _refusal(exc)
        if refusal is None:
            raise
        raise refusal from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(403, "not a regular file")
        try:
            opened = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            opened = path  # no /proc: the realpath check stands alone
        if not inside(root, opened):
            raise Refused(403, "a symbolic link leads outside the served directory")
    except BaseException:
        os.close(fd)
        raise
    return fd, st
