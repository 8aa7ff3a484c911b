"""``linuxkit metadata create``: an ISO9660 image holding one file, ``config``, with the data.

Upstream writes it with ``iso9660wrap`` (volume identifier ``config``, file ``config``). We use
pycdlib at interchange level 4 so the name can stay lower case. pycdlib stamps volume and directory
dates with the current local time; they are pinned to ``SOURCE_DATE_EPOCH`` (else 0) in UTC so
the same data gives the same bytes.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pycdlib
import pycdlib.dates
import pycdlib.headervd
import pycdlib.pycdlib
import pycdlib.utils

from ..errors import UserError

VOLUME_ID = "config"
FILE_NAME = "config"
_LOCK = threading.Lock()


def source_date_epoch() -> int:
    raw = os.environ.get("SOURCE_DATE_EPOCH", "")
    try:
        return int(raw) if raw else 0
    except ValueError:
        raise UserError(f"SOURCE_DATE_EPOCH={raw!r} is not a number of seconds") from None


@contextmanager
def _fixed_clock(epoch: int) -> Iterator[None]:
    """pycdlib reads ``time.time()``/``time.localtime()``: give its modules a clock stopped at
    ``epoch`` in UTC (the process's own ``time`` module is left alone)."""
    fake = SimpleNamespace(
        time=lambda: float(epoch),
        localtime=lambda t=None: time.gmtime(epoch if t is None else t),
        gmtime=time.gmtime,
        strftime=time.strftime,
        mktime=time.mktime,
        timezone=0,
        altzone=0,
        daylight=0,
    )
    modules: list[Any] = [pycdlib.pycdlib, pycdlib.headervd, pycdlib.dates, pycdlib.utils]
    with _LOCK:
        saved = [m.time for m in modules]
        for m in modules:
            m.time = fake
        try:
            yield
        finally:
            for m, original in zip(modules, saved, strict=True):
                m.time = original


def metadata_iso_bytes(data: bytes, *, epoch: int | None = None) -> bytes:
    """The ISO image for ``data`` (deterministic for a given ``epoch``)."""
    epoch = source_date_epoch() if epoch is None else epoch
    out = io.BytesIO()
    with _fixed_clock(epoch):
        iso = pycdlib.PyCdlib()
        iso.new(interchange_level=4, vol_ident=VOLUME_ID)
        iso.add_fp(io.BytesIO(data), len(data), "/" + FILE_NAME)
        iso.write_fp(out)
        iso.close()
    return out.getvalue()


def write_metadata_iso(path: Path, data: bytes, *, epoch: int | None = None) -> None:
    """Write the metadata ISO to ``path`` atomically (temp file + rename)."""
    _write(path, metadata_iso_bytes(data, epoch=epoch))


def files_iso_bytes(files: dict[str, bytes], volume_id: str, *, epoch: int | None = None) -> bytes:
    """An ISO image of ``files`` (``dir/name`` → contents) labelled ``volume_id``, with Rock Ridge names
    (as ``genisoimage -R`` writes cloud config drives: ``config-2`` for OpenStack, ``cidata`` for NoCloud);
    deterministic for a given ``epoch``."""
    epoch = source_date_epoch() if epoch is None else epoch
    out = io.BytesIO()
    with _fixed_clock(epoch):
        iso = pycdlib.PyCdlib()
        iso.new(interchange_level=4, vol_ident=volume_id, rock_ridge="1.09")
        made: set[str] = set()
        for name in sorted(files):
            parts = name.strip("/").split("/")
            for depth in range(1, len(parts)):
                directory = "/" + "/".join(parts[:depth])
                if directory not in made:
                    iso.add_directory(directory, rr_name=parts[depth - 1])
                    made.add(directory)
            data = files[name]
            iso.add_fp(io.BytesIO(data), len(data), "/" + "/".join(parts), rr_name=parts[-1])
        iso.write_fp(out)
        iso.close()
    return out.getvalue()


def write_files_iso(path: Path, files: dict[str, bytes], volume_id: str, *, epoch: int | None = None) -> None:
    """Write :func:`files_iso_bytes` to ``path`` atomically (temp file + rename)."""
    _write(path, files_iso_bytes(files, volume_id, epoch=epoch))


def _write(path: Path, image: bytes) -> None:
    """``image`` to ``path`` atomically (temp file + rename); a missing directory is an error, as
    upstream's ``os.Create`` (:class:`~linuxkit.outputs.OutputSet` would make it)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(image)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {exc.strerror}") from exc
