"""An output directory that cannot be written is the user's choice: a UserError naming it, not an
internal error; other OS errors are not hidden by that."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from linuxkit import outputs
from linuxkit.errors import UserError
from linuxkit.outputs import OutputSet, check_writable


def _raise(code: int) -> Any:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise OSError(code, os.strerror(code), str(kwargs.get("dir") or (args[0] if args else "")))

    return fail


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.EPERM])
def test_temp_file_refused_is_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    monkeypatch.setattr(outputs, "_create", _raise(code))
    with OutputSet() as out, pytest.raises(UserError) as info:
        out.path(tmp_path / "x.tar")
    assert info.value.exit_code == 2
    assert info.value.message == f"cannot write to output directory {tmp_path}: {os.strerror(code)}"
    assert info.value.hint and "--dir" in info.value.hint


def test_missing_parent_that_cannot_be_made_is_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Path, "mkdir", _raise(errno.EROFS))
    with OutputSet() as out, pytest.raises(UserError, match=f"output directory {tmp_path}/a/b: Read-only"):
        out.path(tmp_path / "a" / "b" / "x.tar")


def test_other_os_errors_are_not_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outputs, "_create", _raise(errno.EIO))
    with OutputSet() as out, pytest.raises(OSError) as info:
        out.path(tmp_path / "x.tar")
    assert not isinstance(info.value, UserError) and info.value.errno == errno.EIO


def test_check_writable_creates_nothing(tmp_path: Path) -> None:
    check_writable(tmp_path)
    check_writable(tmp_path / "not" / "yet")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is not a directory"):
        check_writable(tmp_path / "file" / "below")


@pytest.mark.parametrize(("read_only", "reason"), [(True, "Read-only file system"), (False, "Permission denied")])
def test_check_writable_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_only: bool, reason: str) -> None:
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    monkeypatch.setattr(outputs, "_read_only", lambda d: read_only)
    with pytest.raises(UserError) as info:
        check_writable(tmp_path / "sub")
    assert info.value.message == f"cannot write to output directory {tmp_path}/sub: {reason}"
    assert info.value.exit_code == 2
