"""The newc writer and the kernel+initrd split, against upstream's bytes (``tests/data/initrd``)."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from linuxkit.errors import BuildError
from linuxkit.formats.cpio import TYPE_DIR, TYPE_REG, CpioWriter, go_hex8
from linuxkit.formats.initrd import hardlink_as_symlink, make_kernel_initrd, write_tar_kernel_initrd
from linuxkit.formats.registry import FormatContext, all_formats
from linuxkit.gocompat.path import go_rel
from linuxkit.outputs import OutputSet
from linuxkit.tar.reader import read_entries

DATA = Path(__file__).parent.parent / "data"
GOLDEN = DATA / "initrd"
ROOTFS = DATA / "rootfs"


def _rootfs(tmp_path: Path, name: str = "upstream-tar.tar.gz") -> Path:
    """Upstream's own rootfs tar for the golden scenario: the input upstream made its initrd from."""
    path = tmp_path / "rootfs.tar"
    path.write_bytes(gzip.decompress((ROOTFS / name).read_bytes()))
    return path


def _split_initrd(initrd: bytes, ucode_len: int) -> tuple[bytes, bytes]:
    return initrd[:ucode_len], gzip.decompress(initrd[ucode_len:])


# -- cpio writer ---------------------------------------------------------------------------------


def test_go_hex8_matches_go_formatting() -> None:
    assert go_hex8(0) == "00000000"
    assert go_hex8(721) == "000002d1"
    assert go_hex8(1 << 32) == "100000000"  # wider than 8: Go does not truncate
    assert go_hex8(-1) == "-0000001"
    assert go_hex8(-62135596800) == "-e7791f700"


def test_cpio_layout_is_gocpio_newc() -> None:
    out = io.BytesIO()
    cpio = CpioWriter(out)
    cpio.add_dir(b"etc/", mode=0o755, mtime=5)
    cpio.add_file(b"etc/x", b"abc", mode=0o640, uid=1, gid=2)
    cpio.close()
    raw = out.getvalue()
    first = raw[:110]
    assert first[:6] == b"070701"
    fields = [int(first[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
    # inode 721, dir type, nlink 2, mtime 5, archive device 3:1, namesize with the NUL
    assert fields == [721, (TYPE_DIR << 12) | 0o755, 0, 0, 2, 5, 0, 3, 1, 0, 0, 5, 0]
    assert raw[110:116] == b"etc/\x00\x00"  # 110 + 5 → padded to 116
    second = raw[116 : 116 + 110]
    assert int(second[6:14], 16) == 722 and int(second[14:22], 16) == (TYPE_REG << 12) | 0o640
    data_at = 116 + 110 + len(b"etc/x\x00")  # 232: already a multiple of 4
    assert raw[data_at : data_at + 3] == b"abc"
    trailer = raw[data_at + 4 :]  # data padded to 4
    assert trailer.startswith(b"070701") and int(trailer[6:14], 16) == 723
    assert b"TRAILER!!!\x00" in trailer
    assert len(raw) % 512 == 0 and raw.rstrip(b"\x00").endswith(b"TRAILER!!!")


def test_cpio_refuses_short_and_long_data() -> None:
    cpio = CpioWriter(io.BytesIO())
    cpio.write_header(b"f", kind=TYPE_REG, size=2)
    with pytest.raises(BuildError):
        cpio.write(b"abc")
    cpio.write(b"a")
    with pytest.raises(BuildError, match="missing 1 bytes"):
        cpio.add_dir(b"d")


# -- Go path rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "target", "want"),
    [
        ("bin", "bin/busybox", "busybox"),
        ("bin", "./bin/busybox", "busybox"),
        (".", "bin/busybox", "bin/busybox"),
        ("usr/bin", "bin/busybox", "../../bin/busybox"),
        ("a/b", "a/b", "."),
        ("a", "a/../c", "../c"),
        ("..", "x", None),  # Go: cannot make x relative to ..
        ("/a", "b", None),  # one absolute, one relative
    ],
)
def test_go_rel(base: str, target: str, want: str | None) -> None:
    assert go_rel(base, target) == want


def test_hardlink_becomes_relative_symlink() -> None:
    assert hardlink_as_symlink("bin/sh", "bin/busybox") == "busybox"
    assert hardlink_as_symlink("sh", "bin/busybox") == "bin/busybox"
    assert hardlink_as_symlink("usr/sbin/x", "bin/y") == "../../bin/y"


# -- kernel+initrd against upstream -------------------------------------------------------------


def test_initrd_matches_upstream(tmp_path: Path) -> None:
    parts = make_kernel_initrd(_rootfs(tmp_path), tmp_path / "work")
    ucode = (GOLDEN / "upstream-ucode.bin").read_bytes()
    got_ucode, cpio = _split_initrd(parts.initrd.read_bytes(), len(ucode))
    assert got_ucode == ucode
    assert parts.ucode is not None and parts.ucode.read_bytes() == ucode
    assert cpio == gzip.decompress((GOLDEN / "upstream-initrd.cpio.gz").read_bytes())
    assert parts.kernel.read_bytes() == (GOLDEN / "upstream-kernel").read_bytes()
    assert parts.cmdline == (GOLDEN / "upstream-cmdline").read_text()


def test_initrd_gzip_header_is_deterministic(tmp_path: Path) -> None:
    a = make_kernel_initrd(_rootfs(tmp_path), tmp_path / "a").initrd.read_bytes()
    b = make_kernel_initrd(_rootfs(tmp_path), tmp_path / "b").initrd.read_bytes()
    assert a == b
    gz = a[50:]
    assert gz[:4] == b"\x1f\x8b\x08\x00"  # no FNAME flag: no file name stored
    assert gz[4:8] == b"\x00\x00\x00\x00"  # mtime 0


@pytest.mark.parametrize("rootfs", ["upstream-tar.tar.gz", "upstream-tar-decompress-kernel.tar.gz"])
def test_decompress_kernel(tmp_path: Path, rootfs: str) -> None:
    """``--decompress-kernel`` gives upstream's decompressed kernel whether the rootfs has it
    compressed (a rootfs made elsewhere) or already decompressed (our build decompresses early)."""
    parts = make_kernel_initrd(_rootfs(tmp_path, rootfs), tmp_path / "w", decompress_kernel=True)
    assert parts.kernel.read_bytes() == gzip.decompress((GOLDEN / "upstream-kernel-decompressed.gz").read_bytes())


def test_tar_kernel_initrd_matches_upstream(tmp_path: Path) -> None:
    with OutputSet() as outputs:
        ctx = FormatContext(tmp_path / "out" / "test", 1024, "amd64", False, outputs)
        write_tar_kernel_initrd(ctx, _rootfs(tmp_path))
        outputs.commit()
    ours = (tmp_path / "out" / "test-initrd.tar").read_bytes()
    theirs = gzip.decompress((GOLDEN / "upstream-initrd.tar.gz").read_bytes())

    def members(raw: bytes) -> list[tuple[str, int, int, bytes]]:
        out = []
        for entry in read_entries(io.BytesIO(raw)):
            h = entry.header
            data = entry.data.read()
            if h.name == "initrd.img":
                data = gzip.decompress(data)  # upstream's is pgzip output
            out.append((h.name, h.mode, h.mtime[0] if h.mtime else 0, data))
        return out

    assert members(ours) == members(theirs)
    # Every header other than initrd.img's (whose size differs) is byte-identical.
    assert ours[:512] == theirs[:512]
    assert ours[-2048:] == theirs[-2048:]


def test_unconvertible_entry_fails(tmp_path: Path) -> None:
    rootfs = tmp_path / "r.tar"
    with tarfile.open(rootfs, "w", format=tarfile.USTAR_FORMAT) as tf:
        info = tarfile.TarInfo("weird")
        info.type = tarfile.CONTTYPE
        tf.addfile(info, io.BytesIO(b""))
    with pytest.raises(BuildError, match="cannot convert tar file"):
        make_kernel_initrd(rootfs, tmp_path / "w")


def test_registered() -> None:
    formats = all_formats()
    assert formats["kernel+initrd"].writer is not None
    assert formats["tar-kernel-initrd"].writer is not None
