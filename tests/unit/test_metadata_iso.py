"""The metadata ISO: one file ``config`` holding the data, same bytes for the same data and epoch."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pycdlib
import pytest

from linuxkit.errors import UserError
from linuxkit.metadata.iso import metadata_iso_bytes, write_metadata_iso


def _read_config(image: bytes) -> tuple[bytes, str]:
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(image))
    out = io.BytesIO()
    iso.get_file_from_iso_fp(out, iso_path="/config")
    vol = iso.pvd.volume_identifier.decode().strip()
    iso.close()
    return out.getvalue(), vol


def test_holds_config_with_the_data() -> None:
    data, volume = _read_config(metadata_iso_bytes(b'{"hostname": "vm"}', epoch=0))
    assert data == b'{"hostname": "vm"}'
    assert volume == "config"


def test_deterministic_and_epoch_sensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    a = metadata_iso_bytes(b"x", epoch=1700000000)
    time.sleep(1.1)  # pycdlib would otherwise stamp the current second
    assert metadata_iso_bytes(b"x", epoch=1700000000) == a
    assert metadata_iso_bytes(b"x", epoch=1700000100) != a
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert metadata_iso_bytes(b"x") == a
    assert time.time() > 1700000100  # the process clock is untouched


def test_bad_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(UserError):
        metadata_iso_bytes(b"x")


def test_write_is_atomic_and_reports_bad_paths(tmp_path: Path) -> None:
    target = tmp_path / "m.iso"
    write_metadata_iso(target, b"data", epoch=0)
    assert _read_config(target.read_bytes())[0] == b"data"
    assert [p.name for p in tmp_path.iterdir()] == ["m.iso"]
    with pytest.raises(UserError, match="cannot write"):
        write_metadata_iso(tmp_path / "missing-dir" / "m.iso", b"data", epoch=0)
