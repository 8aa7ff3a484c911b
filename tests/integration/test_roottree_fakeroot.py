"""image_from_tree with the real fakeroot: what the tool sees in the session (owners, devices, modes,
xattrs, fixed times), how errors from the extraction and from the tool come back, and a missing
fakeroot."""

from __future__ import annotations

import io
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from linuxkit.errors import BuildError, ToolMissingError
from linuxkit.formats import roottree
from linuxkit.formats.roottree import image_from_tree

pytestmark = pytest.mark.integration

#: a Python the session's user can run (the venv's may live below a root-only home)
_PYTHON = sys.executable if os.geteuid() != 0 else "/usr/bin/python3"

EPOCH = 1600000000

#: run by the session after extraction: prints what the tree looks like to a process in the session
PROBE = """
import os, stat, sys
root = sys.argv[1]
for dirpath, dirs, files in os.walk(root):
    dirs.sort()
    for name in sorted(dirs + files):
        p = os.path.join(dirpath, name)
        st = os.lstat(p)
        dev = stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
        rdev = f"{os.major(st.st_rdev)},{os.minor(st.st_rdev)}" if dev else "-"
        names = os.listxattr(p, follow_symlinks=False)
        xa = ",".join(f"{k}={os.getxattr(p, k, follow_symlinks=False).hex()}" for k in names)
        print(os.path.relpath(p, root), oct(st.st_mode), st.st_uid, st.st_gid, st.st_nlink, rdev, int(st.st_mtime), xa)
"""


def _tar(path: Path, entries: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in entries:
            info.size = len(data) if info.type == tarfile.REGTYPE else 0
            tf.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, **extra: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, 42
    for key, value in extra.items():
        setattr(info, key, value)
    return info


@pytest.fixture(autouse=True)
def _need_fakeroot() -> None:
    if shutil.which("fakeroot") is None:
        pytest.skip("fakeroot is not installed")


def _probe(tmp_path: Path, tar: Path) -> dict[str, list[str]]:
    work = tmp_path / "work"
    work.mkdir()
    out = work / "probe.txt"  # the tool runs in work (unprivileged when the tests run as root)
    kernel, cmdline = image_from_tree(
        tar, work, EPOCH, lambda tree: ["sh", "-c", f'"$0" -c "$1" "$2" > {out.name}', _PYTHON, PROBE, tree]
    )
    assert (kernel.read_bytes(), cmdline.read_bytes()) == (b"KERNEL", b"console=ttyS0")
    return {line.split()[0]: line.split()[1:] for line in out.read_text().splitlines()}


def test_the_tool_sees_owners_devices_modes_xattrs_and_fixed_times(tmp_path: Path) -> None:
    cap = bytes.fromhex("0100000200200000000000000000000000000000")
    tar = _tar(
        tmp_path / "r.tar",
        [
            (_info("boot/kernel"), b"KERNEL"),
            (_info("boot/cmdline"), b"console=ttyS0"),
            (_info("boot/config"), b"left out"),
            (_info("dev/null", tarfile.CHRTYPE, 0o666, devmajor=1, devminor=3), b""),
            (_info("dev/sda", tarfile.BLKTYPE, 0o660, devmajor=8, devminor=0, gid=6), b""),
            (_info("home/u", tarfile.DIRTYPE, 0o700, uid=1000, gid=1000), b""),
            (_info("home/u/f", mode=0o600, uid=1000, gid=1000), b"data"),
            (_info("bin/su", mode=0o4755), b"su"),
            (_info("bin/su2", tarfile.LNKTYPE, linkname="bin/su"), b""),
            (_info("bin/sh", tarfile.SYMTYPE, 0o777, linkname="busybox"), b""),
            (
                _info(
                    "bin/ping",
                    mode=0o755,
                    pax_headers={"SCHILY.xattr.user.b": "2", "SCHILY.xattr.security.capability": cap.decode()},
                ),
                b"ping",
            ),
            (_info("ro", tarfile.DIRTYPE, 0o555), b""),
            (_info("ro/f", mode=0o000), b"locked"),
        ],
    )
    seen = _probe(tmp_path, tar)
    assert "boot" not in seen and not any(k.startswith("boot/") for k in seen)
    assert seen["dev/null"][:5] == [oct(0o20666), "0", "0", "1", "1,3"]
    assert seen["dev/sda"][:5] == [oct(0o60660), "0", "6", "1", "8,0"]
    assert seen["home/u"][:3] == [oct(0o40700), "1000", "1000"]
    assert seen["home/u/f"][:3] == [oct(0o100600), "1000", "1000"]
    assert seen["bin/su"][:4] == [oct(0o104755), "0", "0", "2"]
    assert seen["bin/sh"][0] == oct(0o120777)
    assert seen["ro"][0] == oct(0o40555) and seen["ro/f"][0] == oct(0o100000)
    # "home", "dev" and "bin" have no entry: root-owned 0755 directories
    assert seen["home"][:3] == [oct(0o40755), "0", "0"]
    # every time is the fixed one (directories included, though their children came later)
    assert {fields[5] for fields in seen.values()} == {str(EPOCH)}
    xattrs = dict(item.split("=") for item in seen["bin/ping"][6].split(","))
    assert xattrs == {"security.capability": cap.hex(), "user.b": b"2".hex()}
    assert len(seen["bin/su"]) == 6  # no xattrs


def test_hostile_entries_never_reach_outside_the_tree(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "passwd").write_text("host's own\n")
    work = tmp_path / "work"
    work.mkdir()
    entries = [
        (_info("../escape"), b"x"),
        (_info("etc", tarfile.SYMTYPE, linkname=str(outside)), b""),
        (_info("etc/passwd"), b"pwned\n"),
        (_info("leak", tarfile.LNKTYPE, linkname="etc/passwd"), b""),
        (_info("etc", tarfile.DIRTYPE, 0o755), b""),
        (_info("etc/hostname"), b"lk\n"),
    ]
    tar = _tar(tmp_path / "r.tar", entries)
    listing = work / "listing"
    image_from_tree(tar, work, EPOCH, lambda tree: ["sh", "-c", f"find {tree} | sort > listing"])
    assert (outside / "passwd").read_text() == "host's own\n"
    assert sorted(p.name for p in outside.iterdir()) == ["passwd"]
    assert not (tmp_path / "escape").exists()
    assert listing.read_text().split() == ["root", "root/etc", "root/etc/hostname"]
    err = capfd.readouterr().err
    assert "'../escape': it climbs out of the root" in err
    assert "'etc/passwd': 'etc' above it is a symlink" in err


def test_a_failing_tool_reports_its_stderr(tmp_path: Path) -> None:
    tar = _tar(tmp_path / "r.tar", [(_info("etc/hostname"), b"lk")])
    with pytest.raises(BuildError, match="sh failed with exit code 3: tool says no"):
        image_from_tree(tar, tmp_path, EPOCH, lambda tree: ["sh", "-c", "echo tool says no >&2; exit 3"])


def test_a_missing_tool_in_the_session_is_named(tmp_path: Path) -> None:
    tar = _tar(tmp_path / "r.tar", [(_info("etc/hostname"), b"lk")])
    with pytest.raises(ToolMissingError, match="no-such-mkfs: program not found"):
        image_from_tree(tar, tmp_path, EPOCH, lambda tree: ["no-such-mkfs", tree])


def test_without_fakeroot_the_error_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    tar = _tar(tmp_path / "r.tar", [(_info("etc/hostname"), b"lk")])
    with pytest.raises(ToolMissingError, match="fakeroot: program not found"):
        image_from_tree(tar, tmp_path, EPOCH, lambda tree: ["true", tree])


def test_a_later_entry_of_the_same_name_wins(tmp_path: Path) -> None:
    tar = _tar(
        tmp_path / "r.tar",
        [
            (_info("etc/motd"), b"old"),
            (_info("etc/motd", tarfile.SYMTYPE, 0o777, linkname="issue"), b""),
            (_info("etc/motd", mode=0o600, uid=7), b"new"),
            (_info("etc", tarfile.DIRTYPE, 0o750), b""),
        ],
    )
    work = tmp_path / "work"
    work.mkdir()
    out = work / "motd"
    script = 'cat "$0/etc/motd" > "$1"; stat -c "%a %u %F" "$0/etc" "$0/etc/motd" >> "$1"'
    image_from_tree(tar, work, EPOCH, lambda tree: ["sh", "-c", script, tree, out.name])
    assert out.read_text() == "new750 0 directory\n600 7 regular file\n"


def _can_drop() -> bool:
    """Root, and an unprivileged user can run a Python and read this package (else the session keeps
    root, with a warning: see roottree._plan)."""
    package_root = Path(roottree.__file__).resolve().parents[2]
    return (
        os.geteuid() == 0
        and roottree._interpreter_for_others(package_root) is not None
        and roottree.dir_for_others() is not None
    )


@pytest.mark.skipif(not _can_drop(), reason="the drop happens for root builds whose Python and package others can read")
def test_as_root_the_session_runs_unprivileged_and_cannot_write_the_hosts_files(tmp_path: Path) -> None:
    host = tmp_path / "host-file"
    host.write_text("root's\n")
    host.chmod(0o644)
    tmp_path.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    tar = _tar(tmp_path / "r.tar", [(_info("etc/hostname"), b"lk")])
    script = f"id -u > ids; id -G >> ids; echo pwned > {host} 2>/dev/null; ls -ld . | cut -d' ' -f3 >> ids; true"
    image_from_tree(tar, work, EPOCH, lambda tree: ["sh", "-c", script])
    # inside fakeroot the session looks like root, but the host's file stayed untouched
    assert host.read_text() == "root's\n"
    lines = (work / "ids").read_text().split()
    assert lines[:2] == ["0", "0"]
    # and what the session left in work is the caller's again
    assert (work / "ids").stat().st_uid == 0 and work.stat().st_uid == 0
    assert not (work / "root").exists()  # made in a directory of the session's own, then removed


def test_a_temp_dir_others_cannot_enter_is_passed_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private = tmp_path / "private-tmp"
    private.mkdir(mode=0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    found = roottree.dir_for_others()
    assert found != private
    if found is not None:  # one of the shared temp dirs, enterable by anyone
        assert found.stat().st_mode & 0o001 and str(found) in roottree._SHARED_TEMP_DIRS
    monkeypatch.setattr(roottree, "_SHARED_TEMP_DIRS", ())
    assert roottree.dir_for_others() is None
