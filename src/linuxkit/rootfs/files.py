"""The ``files`` section: directories, symlinks, inline contents, host files and the config dump.

Follows upstream's ``filesystem()``: checks in the same order with the same outcomes, missing
parent directories emitted once each with the file's mode plus the matching execute bits, the
owner resolved from a number or a container name, PAX records ``linuxkit.files`` / ``files[N]``.
Host files are streamed rather than read into memory.

Deliberate differences: every leading ``/`` of a path is stripped (upstream strips one and then
writes a broken entry); a path with a ``..`` component (``../x``, ``a/../../b``) or a NUL is an
error (upstream writes it as given); a relative ``source`` is taken relative to ``base_dir`` (pass
the working directory for upstream's rule).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO

from .. import log
from ..config import schema
from ..config.paths import file_path_problem
from ..errors import UserError
from ..gocompat.path import go_dir
from ..tar.header import DEFAULT_MTIME, DIR, REG, SYMLINK, Header
from ..tar.writer import TarSink, copy_data
from .sanitise import records

MetadataDump = Callable[[schema.Moby, str], bytes]
ResolveId = Callable[[int | str | None, dict[str, int]], int]

_OCTAL = re.compile(r"[+-]?[0-7]+")


def parse_mode(text: str, where: str) -> int:
    """An octal mode string as Go's ``strconv.ParseInt(s, 8, 32)`` accepts it."""
    if not _OCTAL.fullmatch(text) or not -(1 << 31) <= int(text, 8) < 1 << 31:
        raise UserError(f"cannot parse file mode as octal value: {text!r}", path=where)
    mode = int(text, 8)
    if mode < 0:
        raise UserError(f"file mode may not be negative: {text!r}", path=where)
    return mode


def dir_mode(mode: int) -> int:
    """The mode of parent directories: ``mode`` with x added wherever some permission is given."""
    for bits, x in ((0o700, 0o100), (0o070, 0o010), (0o007, 0o001)):
        if mode & bits:
            mode |= x
    return mode


def _source_path(source: str, base_dir: Path) -> Path:
    if len(source) > 2 and source.startswith("~/"):
        return Path(os.path.expanduser("~")) / source[2:]
    return base_dir / source


def _open_source(path: Path, where: str) -> tuple[IO[bytes], int]:
    try:
        handle = path.open("rb")
    except IsADirectoryError as exc:
        raise UserError(f"file source {path} is a directory", path=where, hint="source must be a file") from exc
    except OSError as exc:
        raise UserError(f"cannot read file source {path}: {exc.strerror}", path=where) from exc
    size = os.fstat(handle.fileno()).st_size
    if os.path.isdir(path):
        handle.close()
        raise UserError(f"file source {path} is a directory", path=where, hint="source must be a file")
    return handle, size


def write_files(
    moby: schema.Moby,
    sink: TarSink,
    ids: dict[str, int],
    *,
    base_dir: Path,
    metadata_dump: MetadataDump,
    resolve_id: ResolveId,
) -> None:
    """Write every ``files`` entry of ``moby`` to ``sink``."""
    added: set[str] = set()
    files = moby.files or []
    if files:
        log.info("Add files:")
    for index, f in enumerate(files):
        where = f"files[{index}]"
        log.info(f"  {f.path}")
        if not f.path:
            raise UserError("did not specify path for file", path=where)
        problem = file_path_problem(f.path)
        if problem:
            # config loading reports this with the file and line; this is for models made elsewhere
            raise UserError(f"file path {f.path!r} {problem}", path=where)
        path = f.path.lstrip("/")
        mode = 0o700 if f.directory else 0o600
        if f.mode:
            mode = parse_mode(f.mode, where)
        parent_mode = dir_mode(mode)
        uid = resolve_id(f.uid, ids)
        gid = resolve_id(f.gid, ids)

        data: IO[bytes] = io.BytesIO(f.contents.encode() if f.contents is not None else b"")
        size = len(f.contents.encode()) if f.contents is not None else 0
        if not f.directory and not f.symlink and f.contents is None:
            if not f.source and not f.metadata:
                raise UserError(f"contents of file ({path}) not specified", path=where)
            if f.source and f.metadata:
                raise UserError(f"specified Source and Metadata for file: {path}", path=where)
            if f.source:
                source = _source_path(f.source, base_dir)
                if f.optional and not source.exists():
                    log.debug(f"skipping file [{source}] as not readable and marked optional")
                    continue
                data, size = _open_source(source, where)
            else:
                if f.metadata not in ("yaml", "json"):
                    raise UserError(f"unsupported metadata type: {f.metadata}", path=where, hint="use yaml or json")
                dumped = metadata_dump(moby, f.metadata)
                data, size = io.BytesIO(dumped), len(dumped)
        else:
            if f.metadata:
                raise UserError(f"specified Contents and Metadata for file: {path}", path=where)
            if f.source:
                raise UserError(f"specified Contents and Source for file: {path}", path=where)

        with data:
            root = ""
            for part in go_dir(path).split("/"):
                if part in (".", "/", ""):
                    continue
                root = f"{root}/{part}" if root else part
                if root not in added:
                    sink.write_header(
                        Header(
                            name=root,
                            typeflag=DIR,
                            mode=parent_mode,
                            uid=uid,
                            gid=gid,
                            mtime=DEFAULT_MTIME,
                            pax=records("linuxkit.files", where),
                        )
                    )
                    added.add(root)
            added.add(path)
            hdr = Header(
                name=path, mode=mode, uid=uid, gid=gid, mtime=DEFAULT_MTIME, pax=records("linuxkit.files", where)
            )
            if f.directory:
                if f.contents is not None:
                    raise UserError("directory with contents not allowed", path=where)
                hdr.typeflag = DIR
                sink.write_header(hdr)
            elif f.symlink:
                hdr.typeflag, hdr.linkname = SYMLINK, f.symlink
                sink.write_header(hdr)
            else:
                hdr.typeflag, hdr.size = REG, size
                sink.write_header(hdr)
                copy_data(sink, data, size)
