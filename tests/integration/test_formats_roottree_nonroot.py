"""kernel+erofs and kernel+iso built by root and by an unprivileged user (``nobody``) from a rootfs
holding what only root can normally create (device nodes, other owners, set-id files, xattrs, a
read-only directory, a mode 0000 file): the outputs must be the same bytes, and the images must carry
those owners, modes, devices, links and (erofs) xattrs."""

from __future__ import annotations

import hashlib
import io
import os
import pwd
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.bootkit import cloud_modules, marker_rootfs_tar, write_format

from linuxkit.formats import roottree

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EPOCH = 1700000000
#: cap_net_raw+ep as setcap writes it (VFS_CAP_REVISION_2)
PING_CAP = bytes.fromhex("0100000200200000000000000000000000000000")
SUFFIX = {"kernel+erofs": "-erofs.img", "kernel+iso": ".iso"}

#: run in the unprivileged user's Python: build FORMAT from TAR into OUT/lk
BUILD_SCRIPT = """
import sys
from pathlib import Path
from linuxkit.formats.registry import FormatContext, all_formats
from linuxkit.outputs import OutputSet
fmt, tar, out, epoch = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
with OutputSet() as outputs:
    ctx = FormatContext(
        base=out / "lk", size_mb=0, arch="x86_64", decompress_kernel=False, outputs=outputs, epoch=epoch
    )
    all_formats()[fmt].writer(ctx, tar)
    outputs.commit()
"""


def _add(tf: tarfile.TarFile, name: str, kind: bytes, mode: int, data: bytes = b"", **extra: object) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, 1234567890
    for key, value in extra.items():
        setattr(info, key, value)
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tf.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def special_entries(tf: tarfile.TarFile) -> None:
    """What a non-root extraction cannot make without fakeroot, and what makes it awkward."""
    reg, dirt = tarfile.REGTYPE, tarfile.DIRTYPE
    _add(tf, "dev", dirt, 0o755)
    _add(tf, "dev/console", tarfile.CHRTYPE, 0o600, devmajor=5, devminor=1)
    _add(tf, "dev/vda", tarfile.BLKTYPE, 0o660, devmajor=254, devminor=0, gid=6)
    _add(tf, "dev/initctl", tarfile.FIFOTYPE, 0o600)
    _add(tf, "home/user", dirt, 0o700, uid=1000, gid=1000)  # parent "home" has no entry
    _add(tf, "home/user/notes", reg, 0o640, b"mine\n", uid=1000, gid=1000)
    _add(tf, "bin/su", reg, 0o4755, b"su binary\n")
    _add(tf, "bin/wall", reg, 0o2755, b"wall binary\n", gid=5)
    _add(tf, "bin/su-again", tarfile.LNKTYPE, 0o4755, linkname="bin/su")
    _add(tf, "bin/ash", tarfile.SYMTYPE, 0o777, linkname="busybox")
    caps = {
        "SCHILY.xattr.user.note": "pinged",
        "SCHILY.xattr.security.capability": PING_CAP.decode("utf-8", "surrogateescape"),
    }
    _add(tf, "bin/ping", reg, 0o755, b"ping binary\n", pax_headers=caps)
    _add(tf, "srv/ro", dirt, 0o555)
    _add(tf, "srv/ro/inside", reg, 0o444, b"read only\n")
    _add(tf, "srv/locked", reg, 0o000, b"nobody reads this\n")


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [t for t in ("fakeroot", "setpriv", "mkfs.erofs", "xorriso", "dump.erofs") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing tools: {missing}")
    if os.geteuid() != 0:
        pytest.skip("compares a root build with an unprivileged one: run as root")
    tar = marker_rootfs_tar(tmp_path_factory.mktemp("rootfs") / "rootfs.tar", "unused", modules=cloud_modules())
    with tarfile.open(tar, "a", format=tarfile.PAX_FORMAT) as tf:
        special_entries(tf)
    return tar


@pytest.fixture(scope="module")
def nobody_dir() -> Iterator[Path]:
    """A directory ``nobody`` owns, outside root's private pytest directory."""
    user = pwd.getpwnam("nobody")
    shared = roottree.dir_for_others()  # /tmp may be mode 0700 (it is on CI's machines)
    if shared is None:
        pytest.skip("no temp directory that user nobody can enter")
    path = Path(tempfile.mkdtemp(prefix="lk-nonroot-", dir=shared))
    os.chown(path, user.pw_uid, user.pw_gid)
    yield path
    shutil.rmtree(path)


def _nobody(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", *argv]
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def nobody_python(nobody_dir: Path) -> tuple[str, dict[str, str]]:
    """A Python ``nobody`` can run (root's own may live under /root), with our package and its
    dependencies on PYTHONPATH: probed through a shell, as fakeroot will start it."""
    import linuxkit

    paths = [str(Path(linuxkit.__file__).parents[1])] + [p for p in sys.path if p.endswith("site-packages")]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(nobody_dir), "PYTHONPATH": ":".join(paths)}
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, shutil.which(version) or "", f"/usr/bin/{version}"):
        if not candidate:
            continue
        probe = _nobody(["sh", "-c", '"$0" -c "import linuxkit.formats.rootimage"', candidate], env, nobody_dir)
        if probe.returncode == 0:
            return candidate, env
    pytest.skip(f"no Python that user nobody can run imports linuxkit ({version})")


def build_as_root(fmt: str, rootfs: Path, out: Path) -> None:
    write_format(fmt, rootfs, out, EPOCH)


def digests(out: Path) -> dict[str, str]:
    result = {}
    for path in sorted(out.iterdir()):
        with open(path, "rb") as fh:
            result[path.name] = hashlib.file_digest(fh, "sha256").hexdigest()
    return result


@pytest.mark.parametrize("fmt", list(SUFFIX))
def test_unprivileged_build_equals_root_build(
    fmt: str, rootfs: Path, tmp_path: Path, nobody_dir: Path, nobody_python: tuple[str, dict[str, str]]
) -> None:
    build_as_root(fmt, rootfs, tmp_path / "root")
    work = nobody_dir / fmt.replace("+", "-")
    work.mkdir()
    shutil.copy(rootfs, work / "rootfs.tar")
    os.chown(work, pwd.getpwnam("nobody").pw_uid, -1)
    python, env = nobody_python
    proc = _nobody(
        [python, "-c", BUILD_SCRIPT, fmt, str(work / "rootfs.tar"), str(work / "out"), str(EPOCH)], env, work
    )
    assert proc.returncode == 0, proc.stderr
    assert os.stat(work / "out" / f"lk{SUFFIX[fmt]}").st_uid == pwd.getpwnam("nobody").pw_uid
    root_digests = digests(tmp_path / "root")
    assert sorted(root_digests) == sorted(["lk-kernel", "lk-cmdline", "lk-initrd.img", f"lk{SUFFIX[fmt]}"])
    assert digests(work / "out") == root_digests, f"{fmt}: the unprivileged build differs from root's"


def _erofs_stat(image: Path, path: str) -> str:
    proc = subprocess.run(["dump.erofs", f"--path={path}", str(image)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _erofs_mode(image: Path, path: str) -> int:
    """The full i_mode (dump.erofs shows no set-id bits): the inode at meta_blkaddr * 4096 + NID * 32,
    meta_blkaddr at byte 40 of the superblock (at 1024), i_mode at byte 4 of the inode."""
    found = re.search(r"NID: (\d+)", _erofs_stat(image, path))
    assert found
    with open(image, "rb") as fh:
        fh.seek(1024 + 40)
        meta_blkaddr = int.from_bytes(fh.read(4), "little")
        fh.seek(meta_blkaddr * 4096 + int(found[1]) * 32 + 4)
        return int.from_bytes(fh.read(2), "little")


def test_erofs_image_keeps_owners_devices_links_and_xattrs(rootfs: Path, tmp_path: Path) -> None:
    build_as_root("kernel+erofs", rootfs, tmp_path)
    image = tmp_path / "lk-erofs.img"
    notes = _erofs_stat(image, "/home/user/notes")
    assert re.search(r"Uid: 1000\s+Gid: 1000", notes), notes
    assert _erofs_mode(image, "/home/user/notes") == 0o100640
    assert _erofs_mode(image, "/bin/su") == 0o104755
    assert _erofs_mode(image, "/bin/wall") == 0o102755
    assert _erofs_mode(image, "/dev/console") == 0o020600
    assert _erofs_mode(image, "/dev/vda") == 0o060660
    assert _erofs_mode(image, "/dev/initctl") == 0o010600
    assert _erofs_mode(image, "/srv/ro") == 0o040555
    assert _erofs_mode(image, "/srv/locked") == 0o100000
    assert "char dev" in _erofs_stat(image, "/dev/console")
    assert "block dev" in _erofs_stat(image, "/dev/vda")
    assert "Links: 2" in _erofs_stat(image, "/bin/su")
    assert "symlink" in _erofs_stat(image, "/bin/ash")
    # only ping has xattrs (dump.erofs 1.5 does not list them; their bytes are in the image)
    assert not re.search(r"Xattr size: 0\b", _erofs_stat(image, "/bin/ping"))
    assert re.search(r"Xattr size: 0\b", _erofs_stat(image, "/bin/su"))
    data = image.read_bytes()
    assert PING_CAP in data and b"pinged" in data
    # the directory "home", made without an entry, is owned by root, 0755, with the fixed time
    home = _erofs_stat(image, "/home")
    assert re.search(r"Uid: 0\s+Gid: 0", home) and _erofs_mode(image, "/home") == 0o040755
    assert "2023-11-14 22:13:20" in home  # EPOCH


def test_iso_rock_ridge_keeps_owners_modes_devices(rootfs: Path, tmp_path: Path) -> None:
    build_as_root("kernel+iso", rootfs, tmp_path)
    image = tmp_path / "lk.iso"
    wanted = {
        "/dev/console": r"crw-------\s+1\s+0\s+0\s+5,1 ",
        "/dev/vda": r"brw-rw----\s+1\s+0\s+6\s+254,0 ",
        "/dev/initctl": r"prw-------\s+1\s+0\s+0 ",
        "/bin/su": r"-rwsr-xr-x\s+1\s+0\s+0 ",  # Rock Ridge as xorriso writes it: no hardlink count
        "/bin/wall": r"-rwxr-sr-x\s+1\s+0\s+5 ",
        "/home/user/notes": r"-rw-r-----\s+1\s+1000\s+1000 ",
        "/srv/ro": r"dr-xr-xr-x\s+1\s+0\s+0 ",
        "/srv/locked": r"----------\s+1\s+0\s+0 ",
    }
    listing = subprocess.run(["xorriso", "-indev", str(image), "-lsdl", *wanted], capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    lines = {line.split("'")[1]: line for line in listing.stdout.splitlines() if "'" in line}
    for path, pattern in wanted.items():
        assert re.match(pattern, lines.get(path, "")), (path, lines.get(path))
        assert "Nov 14  2023" in lines[path]
