"""Reading .deb files: the ``ar`` container, ``control.tar.*`` and ``data.tar.*``. No maintainer script is run."""

from __future__ import annotations

import gzip
import io
import lzma
import tarfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, cast

import zstandard

from ..errors import BuildError

AR_MAGIC = b"!<arch>\n"
_HEADER = 60


@dataclass(frozen=True)
class ArMember:
    name: str
    offset: int  # of the data, from the start of the file
    size: int


class _Window(io.RawIOBase):
    """A read-only view of ``size`` bytes of ``f`` starting at ``offset``."""

    def __init__(self, f: BinaryIO, offset: int, size: int) -> None:
        self._f = f
        self._start = offset
        self._pos = 0
        self._size = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self._size - self._pos)
        if n <= 0:
            return 0
        self._f.seek(self._start + self._pos)
        data = self._f.read(n)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


def ar_members(f: BinaryIO, where: str = "") -> list[ArMember]:
    """The members of an ``ar`` archive (System V / GNU names; a .deb uses short plain names)."""
    end = f.seek(0, io.SEEK_END)
    f.seek(0)
    if f.read(8) != AR_MAGIC:
        raise BuildError(f"{where}: not a Debian package (no ar header)")
    members: list[ArMember] = []
    while True:
        header = f.read(_HEADER)
        if not header:
            return members
        if len(header) != _HEADER or header[58:60] != b"`\n":
            raise BuildError(f"{where}: corrupt ar member header")
        name = header[0:16].decode("ascii", errors="replace").rstrip()
        if name.endswith("/") and name != "/":
            name = name[:-1]
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError as exc:
            raise BuildError(f"{where}: corrupt ar member size") from exc
        offset = f.tell()
        if offset + size > end:
            raise BuildError(f"{where}: truncated ar member {name}")
        members.append(ArMember(name, offset, size))
        f.seek(offset + size + (size & 1))  # members are 2-byte aligned


@contextmanager
def _open_tar_member(path: Path, prefix: str) -> Iterator[tarfile.TarFile]:
    with path.open("rb") as f:
        members = ar_members(f, str(path))
        if not members or members[0].name != "debian-binary":
            raise BuildError(f"{path}: not a Debian package (debian-binary must come first)")
        member = next((m for m in members if m.name == prefix or m.name.startswith(prefix + ".")), None)
        if member is None:
            raise BuildError(f"{path}: no {prefix}.* member")
        raw = io.BufferedReader(_Window(f, member.offset, member.size), buffer_size=1 << 20)
        stream: IO[bytes]
        ext = member.name[len(prefix) :]
        with ExitStack() as stack:
            if ext == ".xz":
                stream = stack.enter_context(lzma.LZMAFile(raw))
            elif ext == ".zst":
                reader = zstandard.ZstdDecompressor().stream_reader(raw, read_size=1 << 20)
                stream = cast(IO[bytes], stack.enter_context(reader))
            elif ext == ".gz":
                stream = cast(IO[bytes], stack.enter_context(gzip.GzipFile(fileobj=raw)))
            elif ext == "":
                stream = raw
            else:
                raise BuildError(f"{path}: unsupported compression of {member.name}")
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                yield tar


def iter_deb_data(path: Path) -> Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]:
    """The members of the package's ``data.tar.*`` in archive order; regular files come with a file object that
    is valid until the next item is requested."""
    with _open_tar_member(Path(path), "data.tar") as tar:
        for info in tar:
            yield info, (tar.extractfile(info) if info.isreg() else None)


def deb_control(path: Path) -> dict[str, str]:
    """The fields of the package's ``control`` file (continuation lines joined with newlines)."""
    with _open_tar_member(Path(path), "control.tar") as tar:
        for info in tar:
            if info.isreg() and info.name.lstrip("./") == "control":
                handle = tar.extractfile(info)
                assert handle is not None
                return parse_control(handle.read().decode("utf-8", errors="replace"))
    raise BuildError(f"{path}: control.tar has no control file")


def parse_control(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[0] in " \t" and key is not None:
            fields[key] += "\n" + line[1:]
            continue
        name, _, value = line.partition(":")
        key = name.strip()
        fields[key] = value.strip()
    return fields
