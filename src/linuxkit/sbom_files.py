"""``sbom.spdx.json`` read back from a build's output: a ``tar`` (plain or gzip) or the initrd of
``kernel+initrd`` (newc cpio, gzip, possibly several concatenated members).

Read only, streaming, bounded: the member is found by name and at most :data:`MAX_SBOM` bytes of it
are read; nothing of the output is written anywhere.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path
from typing import IO, cast

from .errors import UserError

MAX_SBOM = 256 << 20
_CPIO_MAGIC = b"070701"
_HEADER = 110


def _member_name(name: str) -> str:
    return name.lstrip("/").removeprefix("./")


def _open(path: Path) -> IO[bytes]:
    with open(path, "rb") as probe:
        magic = probe.read(2)
    return cast(IO[bytes], gzip.open(path, "rb")) if magic == b"\x1f\x8b" else open(path, "rb")


def _read_exact(fh: IO[bytes], size: int) -> bytes:
    data = fh.read(size)
    if len(data) != size:
        raise ValueError("truncated cpio archive")
    return data


def from_cpio(fh: IO[bytes], name: str) -> bytes | None:
    """The contents of member ``name`` of a newc cpio stream, or ``None`` when it has none."""
    wanted = _member_name(name)
    while True:
        header = fh.read(_HEADER)
        if len(header) < _HEADER:
            return None
        if header[:6] != _CPIO_MAGIC:
            raise ValueError("not a newc cpio archive")
        size = int(header[54:62], 16)
        namesize = int(header[94:102], 16)
        raw = _read_exact(fh, namesize)
        _read_exact(fh, (4 - (_HEADER + namesize) % 4) % 4)
        member = raw.rstrip(b"\0").decode("utf-8", errors="replace")
        if member == "TRAILER!!!":
            return None
        if _member_name(member) == wanted and size <= MAX_SBOM:
            return _read_exact(fh, size)
        _skip(fh, size + (4 - size % 4) % 4)


def _skip(fh: IO[bytes], size: int) -> None:
    while size > 0:
        chunk = fh.read(min(size, 1 << 20))
        if not chunk:
            raise ValueError("truncated cpio archive")
        size -= len(chunk)


def from_tar(fh: IO[bytes], name: str) -> bytes | None:
    wanted = _member_name(name)
    with tarfile.open(fileobj=fh, mode="r|") as tar:
        for info in tar:
            if info.isreg() and _member_name(info.name) == wanted and info.size <= MAX_SBOM:
                handle = tar.extractfile(info)
                return handle.read() if handle is not None else None
    return None


def output_file(target: str) -> Path | None:
    """The output file ``target`` names: the file itself, or a ``kernel+initrd`` prefix's initrd."""
    path = Path(target)
    if path.is_file():
        return path
    initrd = Path(f"{target}-initrd.img")
    return initrd if initrd.is_file() else None


def sbom_from_output(path: Path, name: str) -> bytes:
    """The SBOM ``name`` inside the build output ``path`` (tar or cpio initrd)."""
    try:
        with _open(path) as fh:
            head = fh.peek(_HEADER)[:6] if isinstance(fh, io.BufferedReader | gzip.GzipFile) else b""
            found = from_cpio(fh, name) if head == _CPIO_MAGIC else from_tar(fh, name)
    except (OSError, ValueError, EOFError, tarfile.TarError) as exc:
        raise UserError(
            f"{path}: cannot read it as a tar or a cpio initrd: {exc}",
            hint="give a tar or kernel+initrd output (its NAME prefix or NAME-initrd.img), or an image name",
        ) from exc
    if found is None:
        raise UserError(
            f"{path} has no {name}",
            hint="it was built with --no-sbom, or with another --sbom-output (pass it as --sbom-output)",
        )
    return found
