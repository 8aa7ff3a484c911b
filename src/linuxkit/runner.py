"""The one way to run a host program: argv lists, a clean error naming the missing tool and its
Debian package, a copy-pasteable ``+ cmd`` line in debug mode. :func:`run` waits for the program;
:func:`start` leaves it running in the background (a :class:`Process`: wait with a timeout, terminate)."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from . import log
from .errors import BuildError, ToolMissingError

# Which Debian package provides each host program we may call.
TOOL_PACKAGES: Mapping[str, str] = {
    "git": "git",
    "fakeroot": "fakeroot",
    "qemu-img": "qemu-utils",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-system-aarch64": "qemu-system-arm",
    "mkfs.vfat": "dosfstools",
    "fsck.vfat": "dosfstools",
    "mcopy": "mtools",
    "mmd": "mtools",
    "mkfs.ext4": "e2fsprogs",
    "e2fsck": "e2fsprogs",
    "mksquashfs": "squashfs-tools",
    "unsquashfs": "squashfs-tools",
    "tar2sqfs": "squashfs-tools-ng",
    "mkfs.erofs": "erofs-utils",
    "veritysetup": "cryptsetup-bin",
    "xorriso": "xorriso",
    "syslinux": "syslinux",
    "sgdisk": "gdisk",
    "sfdisk": "fdisk",
    "skopeo": "skopeo",
    "buildah": "buildah",
    "runc": "runc",
    "depmod": "kmod",
    "cpio": "cpio",
    "gpgv": "gpgv",
    "docker-registry": "docker-registry",
    "objcopy": "binutils",
    "setpriv": "util-linux",
    "sbsign": "sbsigntool",
    "sbverify": "sbsigntool",
    "faketime": "faketime",
    "openssl": "openssl",
}

Cmd = Sequence[str | os.PathLike[str]]
Stream = int | IO[bytes] | None

#: for ``stdin``/``stdout``/``stderr``: nothing (``/dev/null``), or stderr into stdout
DEVNULL = subprocess.DEVNULL
STDOUT = subprocess.STDOUT

#: how long :meth:`Process.terminate` lets a program exit after SIGTERM before it sends SIGKILL
TERMINATE_GRACE = 5.0


def find_tool(name: str) -> str:
    """The full path of host program ``name``, or a :class:`ToolMissingError` saying how to get it."""
    found = shutil.which(name)
    if found is None:
        package = TOOL_PACKAGES.get(name)
        hint = f"install it with: apt-get install {package}" if package else f"install {name!r} and retry"
        raise ToolMissingError(f"{name}: program not found", hint=hint)
    return found


def _describe_failure(argv: list[str], returncode: int) -> str:
    name = Path(argv[0]).name
    if returncode < 0:
        try:
            signame = signal.Signals(-returncode).name
        except ValueError:
            signame = f"signal {-returncode}"
        return f"{name} was killed by {signame}"
    if returncode == 127:
        return f"{name} could not run a program it needs (exit 127)"
    return f"{name} failed with exit code {returncode}"


def _prepare(
    cmd: Cmd, env: Mapping[str, str] | None, extra_env: Mapping[str, str] | None
) -> tuple[list[str], list[str], dict[str, str]]:
    """``cmd`` as strings, the argv to execute (the program found on ``PATH``) and the environment;
    logs the ``+ cmd`` line."""
    argv = [os.fspath(a) for a in cmd]
    if not argv:
        raise ValueError("empty command")
    exe = argv[0] if os.sep in argv[0] else find_tool(argv[0])
    full_env = dict(os.environ if env is None else env)
    if extra_env:
        full_env.update(extra_env)
    log.debug("+ " + shlex.join(argv))
    return argv, [exe, *argv[1:]], full_env


def run(
    cmd: Cmd,
    *,
    check: bool = True,
    input: bytes | None = None,
    stdin: Stream = None,
    stdout: Stream = None,
    stderr: Stream = None,
    capture: bool = False,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``cmd`` (an argv list; never a shell string) and wait for it.

    ``capture`` collects stdout and stderr; on failure with ``check`` the captured stderr ends
    up in the error message. ``extra_env`` is added to the current environment (or ``env``).
    """
    argv, exe_argv, full_env = _prepare(cmd, env, extra_env)
    if capture:
        stdout = subprocess.PIPE if stdout is None else stdout
        stderr = subprocess.PIPE if stderr is None else stderr
    try:
        proc = subprocess.run(
            exe_argv,
            input=input,
            stdin=stdin if input is None else None,
            stdout=stdout,
            stderr=stderr,
            cwd=cwd,
            env=full_env,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ToolMissingError(f"{argv[0]}: program not found", hint=str(exc)) from exc
    if check and proc.returncode != 0:
        detail = ""
        if isinstance(proc.stderr, bytes) and proc.stderr.strip():
            detail = ": " + proc.stderr.decode(errors="replace").strip()[-2000:]
        raise BuildError(_describe_failure(argv, proc.returncode) + detail, hint="command: " + shlex.join(argv))
    return proc


def output(cmd: Cmd, **kwargs: object) -> str:
    """Run ``cmd`` and return its stdout as text (stripped)."""
    proc = run(cmd, capture=True, **kwargs)  # type: ignore[arg-type]
    return proc.stdout.decode(errors="replace").strip()


class Process:
    """A program started by :func:`start`. Used as a context manager, it is terminated on leaving
    the block if it still runs."""

    def __init__(self, popen: subprocess.Popen[bytes], argv: list[str]) -> None:
        self._popen = popen
        self.argv = argv

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        """The exit code once the program was seen to end (``-N``: killed by signal ``N``), else ``None``."""
        return self._popen.returncode

    def poll(self) -> int | None:
        """The exit code if the program has ended, else ``None`` (without waiting)."""
        return self._popen.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the program to end (at most ``timeout`` seconds; ``None``: as long as it takes);
        its exit code, or ``None`` when it still runs after ``timeout``."""
        try:
            return self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def terminate(self, grace: float = TERMINATE_GRACE) -> int:
        """End the program: SIGTERM, then SIGKILL if it has not exited ``grace`` seconds later;
        its exit code (that of its own exit if it had already ended)."""
        if self._popen.poll() is None:
            log.debug(f"terminating {Path(self.argv[0]).name} (pid {self.pid})")
            self._popen.terminate()
            if self.wait(grace) is None:
                self._popen.kill()
        return self._popen.wait()

    def kill(self) -> int:
        """SIGKILL the program (if it still runs) and reap it; its exit code."""
        if self._popen.poll() is None:
            self._popen.kill()
        return self._popen.wait()

    def __enter__(self) -> Process:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.terminate()


def start(
    cmd: Cmd,
    *,
    stdin: Stream = None,
    stdout: Stream = None,
    stderr: Stream = None,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    new_session: bool = False,
) -> Process:
    """Start ``cmd`` (an argv list) in the background and return at once; a missing program is a
    :class:`ToolMissingError`, as with :func:`run`. ``new_session`` detaches it from our terminal
    and process group (so a Ctrl-C for us does not reach it)."""
    argv, exe_argv, full_env = _prepare(cmd, env, extra_env)
    try:
        popen = subprocess.Popen(
            exe_argv, stdin=stdin, stdout=stdout, stderr=stderr, cwd=cwd, env=full_env, start_new_session=new_session
        )
    except FileNotFoundError as exc:
        raise ToolMissingError(f"{argv[0]}: program not found", hint=str(exc)) from exc
    return Process(popen, argv)
