"""The pure parts of the fakeroot tree builder: which xattrs an entry carries and in what order, how
a session's error comes back, and what the session entry point refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from linuxkit.errors import BuildError, ToolMissingError, UserError
from linuxkit.formats.roottree import _dump_error, _load_error, session_main, xattrs
from linuxkit.tar.header import Header, dec


def test_xattrs_come_from_schily_records_sorted_by_name_as_bytes() -> None:
    cap = bytes.fromhex("0100000200200000000000000000000000000000") + b"\xff"
    hdr = Header(
        name="bin/ping",
        pax={
            "SCHILY.xattr.user.z": "last",
            "SCHILY.xattr.security.capability": dec(cap),
            "SCHILY.xattr.": "no name: ignored",
            "LIBARCHIVE.creationtime": "1",
            "mtime": "5",
        },
    )
    assert xattrs(hdr) == [("security.capability", cap), ("user.z", b"last")]


def test_no_pax_records_no_xattrs() -> None:
    assert xattrs(Header(name="etc/passwd")) == []


@pytest.mark.parametrize("cls", [UserError, BuildError, ToolMissingError])
def test_session_errors_come_back_with_their_kind_and_hint(cls: type[BuildError], tmp_path: Path) -> None:
    report = tmp_path / "error.json"
    _dump_error(cls("mkfs.erofs: program not found", hint="install it"), report)
    back = _load_error(report)
    assert type(back) is cls
    assert (back.message, back.hint) == ("mkfs.erofs: program not found", "install it")


def test_an_unknown_error_kind_becomes_a_build_error(tmp_path: Path) -> None:
    report = tmp_path / "error.json"
    report.write_text('{"kind": "SystemExit", "message": "m", "hint": null}')
    back = _load_error(report)
    assert type(back) is BuildError and back.message == "m" and back.hint is None


def test_a_garbled_error_report_is_itself_a_build_error(tmp_path: Path) -> None:
    report = tmp_path / "error.json"
    report.write_text("{not json")
    back = _load_error(report)
    assert isinstance(back, BuildError) and "unreadable error report" in back.message


@pytest.mark.parametrize(
    "args", [[], ["a.tar", "work", "0", "1"], ["a.tar", "work", "0", "1", "mkfs.erofs", "img", "dir"]]
)
def test_session_main_refuses_arguments_without_a_tool(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert session_main(args) == 2
    assert "usage:" in capsys.readouterr().err
