"""Reading .deb files built in the test with a tiny ar writer (and with dpkg-deb when present)."""

from __future__ import annotations

import gzip
import io
import lzma
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from linuxkit.debian.deb import ar_members, deb_control, iter_deb_data
from linuxkit.errors import BuildError

CONTROL = "Package: hello\nVersion: 1.0-1\nArchitecture: amd64\nDescription: a test\n second line\n"
COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    ".xz": lzma.compress,
    ".zst": lambda b: zstandard.ZstdCompressor().compress(b),
    ".gz": lambda b: gzip.compress(b, mtime=0),
    "": lambda b: b,
}


def ar(members: list[tuple[str, bytes]]) -> bytes:
    """A System V ar archive as dpkg writes it."""
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{0o100644:<8o}{len(data):<10}`\n".encode()
        out += data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


def tar_bytes(files: dict[str, bytes | None], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o755
                tar.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def build_deb(path: Path, files: dict[str, bytes | None], *, ext: str = ".xz", control: str = CONTROL) -> Path:
    control_tar = tar_bytes({"./": None, "./control": control.encode(), "./postinst": b"#!/bin/sh\nexit 1\n"})
    data_tar = tar_bytes(files, {"./bin/sh": "busybox"})
    path.write_bytes(
        ar(
            [
                ("debian-binary", b"2.0\n"),
                ("control.tar" + ext, COMPRESS[ext](control_tar)),
                ("data.tar" + ext, COMPRESS[ext](data_tar)),
            ]
        )
    )
    return path


FILES: dict[str, bytes | None] = {"./": None, "./bin/": None, "./bin/busybox": b"\x7fELF" + b"x" * 5001, "./odd": b"1"}


@pytest.mark.parametrize("ext", [".xz", ".zst", ".gz", ""])
def test_iter_deb_data_all_compressions(tmp_path: Path, ext: str) -> None:
    deb = build_deb(tmp_path / "hello.deb", FILES, ext=ext)
    seen = []
    for info, data in iter_deb_data(deb):
        content = data.read() if data is not None else None
        seen.append((info.name, info.type, content))
    assert seen == [
        (".", tarfile.DIRTYPE, None),
        ("./bin", tarfile.DIRTYPE, None),
        ("./bin/busybox", tarfile.REGTYPE, FILES["./bin/busybox"]),
        ("./odd", tarfile.REGTYPE, b"1"),
        ("./bin/sh", tarfile.SYMTYPE, None),
    ]
    control = deb_control(deb)
    assert control["Package"] == "hello" and control["Description"] == "a test\nsecond line"


def test_ar_members_odd_sizes_are_padded(tmp_path: Path) -> None:
    path = tmp_path / "a.ar"
    path.write_bytes(ar([("a", b"x"), ("bb/", b"yy"), ("c", b"zzz")]))
    with path.open("rb") as f:
        assert [(m.name, m.size) for m in ar_members(f)] == [("a", 1), ("bb", 2), ("c", 3)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not an ar archive", "no ar header"),
        (ar([("debian-binary", b"2.0\n")])[:-2], "truncated"),
        (ar([("debian-binary", b"2.0\n")]).replace(b"`\n", b"xx"), "corrupt ar member header"),
        (ar([("data.tar.xz", b"")]), "debian-binary must come first"),
        (ar([("debian-binary", b"2.0\n"), ("control.tar.xz", b"")]), "no data.tar"),
        (ar([("debian-binary", b"2.0\n"), ("data.tar.bz2", b"")]), "unsupported compression"),
    ],
)
def test_bad_debs(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.deb"
    path.write_bytes(content)
    with pytest.raises(BuildError, match=message):
        list(iter_deb_data(path))


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb not installed")
@pytest.mark.parametrize("compression", ["xz", "zstd", "gzip", "none"])
def test_reads_what_dpkg_deb_builds(tmp_path: Path, compression: str) -> None:
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: t\nVersion: 2\nArchitecture: all\nMaintainer: m <m@t>\nDescription: d\n"
    )
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "tool").write_bytes(b"#!/bin/sh\n" * 100)
    (root / "usr" / "bin" / "link").symlink_to("tool")
    deb = tmp_path / "t.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", f"-Z{compression}", "--build", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    got = {info.name: (data.read() if data else info.linkname) for info, data in iter_deb_data(deb)}
    listed = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(listed)) as tar:
        expected = {m.name: (tar.extractfile(m).read() if m.isreg() else m.linkname) for m in tar}  # type: ignore[union-attr]
    assert got == expected and got["./usr/bin/tool"] == b"#!/bin/sh\n" * 100
    assert deb_control(deb)["Package"] == "t"
