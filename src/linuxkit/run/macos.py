"""What the two macOS backends (``run hyperkit``, ``run virtualization``) share: the user-data CD, the
kernel command line file, raw disk images created and grown as upstream does, gzip-compressed kernels,
and the small in-process steps their plans call (:class:`linuxkit.run.plan.Call` targets: each takes the
plain data tree the plan shows)."""

from __future__ import annotations

import gzip
import os
import secrets
import shutil
import time
from pathlib import Path

from .. import log
from ..errors import UserError
from ..metadata.iso import metadata_iso_bytes
from .plan import Data, WriteFile

MIB = 1024 * 1024
#: upstream's hyperkit grows a raw image 1000 MiB at a time (APFS refuses to grow a sparse file "too fast")
HYPERKIT_GROW_STEP_MB = 1000
GZIP_MAGIC = b"\x1f\x8b\x08"  # what Go's http.DetectContentType calls application/x-gzip


def user_data(data: str, data_file: str) -> bytes | None:
    """``--data`` / ``--data-file`` as upstream's ``CreateMetadataISO`` reads them (an empty value is none)."""
    if data and data_file:
        raise UserError("cannot specify both --data and --data-file")
    if data_file:
        try:
            return Path(data_file).read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read user data from path {data_file}: {exc.strerror}") from exc
    return data.encode() if data else None


def data_iso(state: Path, data: bytes) -> WriteFile:
    """``STATE/data.iso``: the ISO9660 image holding ``config`` that ``linuxkit metadata create`` writes."""
    return WriteFile(state / "data.iso", metadata_iso_bytes(data))


def read_cmdline(prefix: str) -> str:
    try:
        return Path(prefix + "-cmdline").read_text(errors="surrogateescape")
    except OSError as exc:
        raise UserError(
            f"cannot open cmdline file {prefix}-cmdline: {exc.strerror}",
            hint="build it with `linuxkit build --format kernel+initrd`",
        ) from exc


def is_gzip(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(3) == GZIP_MAGIC


def _mapping(data: Data) -> dict[str, Data]:
    if not isinstance(data, dict):
        raise TypeError(f"expected a mapping, got {data!r}")
    return data


def _str(data: dict[str, Data], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise TypeError(f"{key}: expected a string, got {value!r}")
    return value


def _int(data: dict[str, Data], key: str) -> int:
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{key}: expected an integer, got {value!r}")
    return value


def ensure_raw_disk(data: Data) -> None:
    """Plan step ``{"path", "size_mb", "step_mb"}``: create the raw image if missing and grow it to
    ``size_mb`` MiB, ``step_mb`` MiB at a time (sparse: ``truncate``); a bigger image is left alone, as
    upstream's ``RawDisk.Ensure`` does."""
    d = _mapping(data)
    path, size_mb, step_mb = _str(d, "path"), _int(d, "size_mb"), _int(d, "step_mb")
    try:
        current = os.stat(path).st_size // MIB
    except FileNotFoundError:
        log.info(f"Creating raw disk {path} ({size_mb} MiB)")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        os.close(fd)
        current = 0
    if current > size_mb:
        log.warn(f"cannot safely shrink {path} from {current} MiB to {size_mb} MiB: left as it is")
        return
    size = current
    while size < size_mb:
        size = min(size + step_mb, size_mb)
        os.truncate(path, size * MIB)


def gunzip(data: Data) -> None:
    """Plan step ``{"src", "dst"}``: decompress a gzip kernel (the Virtualization framework boots an
    uncompressed one), into a temporary name beside ``dst`` renamed over it."""
    d = _mapping(data)
    src, dst = Path(_str(d, "src")), Path(_str(d, "dst"))
    temp = dst.parent / f".{dst.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        with open(fd, "wb") as out, gzip.open(src, "rb") as compressed:
            shutil.copyfileobj(compressed, out, 1 << 20)
        os.replace(temp, dst)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        temp.unlink(missing_ok=True)
        raise UserError(f"unable to decompress kernel file {src} to {dst}: {exc}") from exc
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def remove_sockets(data: Data) -> None:
    """Plan step ``{"paths": [...]}``: remove stale Unix sockets before a program binds them again."""
    paths = _mapping(data)["paths"]
    assert isinstance(paths, list)
    for p in paths:
        assert isinstance(p, str)
        try:
            if Path(p).is_socket():
                os.unlink(p)
        except FileNotFoundError:
            pass


def wait_for_sockets(data: Data) -> None:
    """Plan step ``{"paths": [...], "timeout": S}``: wait until a program started in the background has
    bound each Unix socket, or fail after ``timeout`` seconds. (Upstream binds them itself and passes the
    descriptors; waiting for the files keeps vpnkit's own start-up untouched by a test connection.)"""
    d = _mapping(data)
    paths, timeout = d["paths"], _int(d, "timeout")
    assert isinstance(paths, list)
    deadline = time.monotonic() + timeout
    for p in paths:
        assert isinstance(p, str)
        while not Path(p).is_socket():
            if time.monotonic() > deadline:
                raise UserError(
                    f"{p} did not appear within {timeout} s",
                    hint="check that vpnkit starts (linuxkit --debug shows its command line)",
                )
            time.sleep(0.05)
