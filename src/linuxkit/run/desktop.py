"""What the desktop ``run`` backends (vbox, vmware, hyperv) share: the image PATH names (an ISO, a
disk image and its ``qemu-img`` format, or a prefix), the default state directory, names made safe
for the hypervisor's own syntax, and the serial console on our stdio (a Unix socket, or a Windows
named pipe)."""

from __future__ import annotations

import os
import selectors
import socket
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from ..errors import UserError

#: disk image suffixes → ``qemu-img`` format names (``.img``/``.raw``: what ``raw-bios``/``raw-efi`` write)
DISK_FORMATS: Mapping[str, str] = {
    ".img": "raw",
    ".raw": "raw",
    ".qcow2": "qcow2",
    ".vhd": "vpc",
    ".vhdx": "vhdx",
    ".vmdk": "vmdk",
    ".vdi": "vdi",
}

#: how long to wait for the hypervisor to offer the console
CONSOLE_WAIT = 60.0

# a Unix socket's path must fit sockaddr_un (108 bytes on Linux, 104 on macOS, with the NUL)
_SOCKET_PATH_MAX = 103


def absolute(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute without resolving symlinks (as Go's ``filepath.Abs``)."""
    return Path(os.path.abspath(path))


def disk_format(path: str | os.PathLike[str]) -> str | None:
    """The ``qemu-img`` format of a disk image, from its suffix (``None``: not a disk image)."""
    return DISK_FORMATS.get(Path(path).suffix.lower())


def state_dir(state: str, path: str) -> Path:
    """``--state``, else upstream's default: PATH without its extension, plus ``-state``."""
    if state:
        return absolute(state)
    stem, _ = os.path.splitext(path)
    return absolute(stem + "-state")


def image_name(path: str, *suffixes: str) -> str:
    """The VM's default name: PATH's base without its extension (and then without each of ``suffixes``)."""
    base, _ = os.path.splitext(os.path.basename(path))
    for suffix in suffixes:
        base = base.removesuffix(suffix)
    return base


def check_socket_path(path: Path) -> None:
    if len(os.fsencode(path)) > _SOCKET_PATH_MAX:
        raise UserError(
            f"the console socket {path} is too long for a Unix socket ({_SOCKET_PATH_MAX} bytes at most)",
            hint="give a shorter --state directory",
        )


def _stdin_fd() -> int | None:
    try:
        fd = sys.stdin.fileno()
        os.fstat(fd)
    except (AttributeError, OSError, ValueError):
        return None
    return fd


def _write_out(data: bytes) -> None:
    out = sys.stdout.buffer
    out.write(data)
    out.flush()


def pump_socket(conn: socket.socket) -> None:
    """Copy the console to our stdout and our stdin to the console until the console closes (the
    VM powered off). The end of our stdin only stops the input (``</dev/null`` keeps the output)."""
    stdin = _stdin_fd()
    with selectors.DefaultSelector() as sel:
        sel.register(conn, selectors.EVENT_READ)
        if stdin is not None:
            try:
                sel.register(stdin, selectors.EVENT_READ)
            except (OSError, ValueError, PermissionError):  # a regular file cannot be selected on: no input
                stdin = None
        while True:
            for key, _ in sel.select():
                if key.fileobj is conn:
                    data = conn.recv(65536)
                    if not data:
                        return
                    _write_out(data)
                else:
                    assert stdin is not None
                    data = os.read(stdin, 4096)
                    if data:
                        conn.sendall(data)
                    else:
                        sel.unregister(stdin)


def connect_unix(path: Path, wait: float = CONSOLE_WAIT) -> socket.socket:
    """Connect to the hypervisor's console socket, waiting up to ``wait`` seconds for it to appear."""
    deadline = time.monotonic() + wait
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(os.fspath(path))
            return conn
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            conn.close()
            if time.monotonic() > deadline:
                raise UserError(
                    f"the VM's console {path} did not appear in {wait:.0f} s ({exc.strerror})",
                    hint="check that the VM started (the hypervisor's own log says why not)",
                ) from None
            time.sleep(0.2)
        except BaseException:
            conn.close()
            raise


def pump_pipe(path: str, wait: float = CONSOLE_WAIT) -> None:
    """A Windows named pipe (``\\\\.\\pipe\\NAME``) as the console: opened when it appears, copied to
    our stdout until it closes, our stdin copied into it by a daemon thread."""
    deadline = time.monotonic() + wait
    while True:
        try:
            pipe = open(path, "r+b", buffering=0)  # noqa: SIM115
            break
        except OSError as exc:
            if time.monotonic() > deadline:
                raise UserError(f"cannot open the VM's console {path}: {exc.strerror}") from None
            time.sleep(0.2)

    def feed() -> None:
        stdin = _stdin_fd()
        if stdin is None:
            return
        try:
            while data := os.read(stdin, 4096):
                pipe.write(data)
        except OSError:
            return

    threading.Thread(target=feed, name="console-input", daemon=True).start()
    with pipe:
        while data := pipe.read(65536):
            _write_out(data)
