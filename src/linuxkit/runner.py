"""The one way to run a host program: argv lists, a clean error naming the missing tool and its
Debian package, a copy-pasteable ``+ cmd`` line in debug mode."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
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
}

Cmd = Sequence[str | os.PathLike[str]]
Stream = int | IO[bytes] | None


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
    argv = [os.fspath(a) for a in cmd]
    if not argv:
        raise ValueError("empty command")
    exe = argv[0] if os.sep in argv[0] else find_tool(argv[0])
    full_env = dict(os.environ if env is None else env)
    if extra_env:
        full_env.update(extra_env)
    log.debug("+ " + shlex.join(argv))
    if capture:
        stdout = subprocess.PIPE if stdout is None else stdout
        stderr = subprocess.PIPE if stderr is None else stderr
    try:
        proc = subprocess.run(
            [exe, *argv[1:]],
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
