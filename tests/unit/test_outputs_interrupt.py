"""A signal raised (as SIGTERM/Ctrl-C are) just after a temporary output was created still has it
removed: temporary names are recorded before the file or directory exists."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from linuxkit import outputs
from linuxkit.outputs import OutputSet, work_dir


def test_interrupt_right_after_creating_a_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = outputs._create

    def create_then_interrupted(path: Path) -> None:
        real(path)
        raise KeyboardInterrupt

    monkeypatch.setattr(outputs, "_create", create_then_interrupted)
    with pytest.raises(KeyboardInterrupt), OutputSet() as out:
        out.path(tmp_path / "sub" / "t.tar")
    assert os.listdir(tmp_path) == []  # the file and the directory made for it


def test_interrupt_right_after_making_a_work_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Path.mkdir

    def mkdir_then_interrupted(self: Path, *args: object, **kw: object) -> None:
        real(self, *args, **kw)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "mkdir", mkdir_then_interrupted)
    with pytest.raises(KeyboardInterrupt), work_dir(tmp_path, ".t-initrd."):
        pass
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def test_a_name_taken_by_someone_else_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    taken = tmp_path / ".t.tar.taken.tmp"
    taken.write_bytes(b"someone else's")
    monkeypatch.setattr(outputs, "_temp_name", lambda final: taken)
    with pytest.raises(FileExistsError), OutputSet() as out:
        out.path(tmp_path / "t.tar")
    assert taken.read_bytes() == b"someone else's"
