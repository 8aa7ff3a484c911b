"""kernel+initrd written straight from the assembler (no rootfs tar), its gzip worker and the
cheap read-back of headers it relies on."""

from __future__ import annotations

import gzip
import io
import random
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from rootfs_scenario import IMAGES, YAML

from linuxkit.config import schema
from linuxkit.errors import BuildError
from linuxkit.formats.initrd import GzipStream, InitrdSplitter, make_kernel_initrd
from linuxkit.formats.pipe import ThreadedWriter
from linuxkit.formats.registry import FormatContext, find
from linuxkit.formats.tarfmt import write_tar
from linuxkit.oci.image import ImageSource, Platform
from linuxkit.outputs import OutputSet
from linuxkit.rootfs.assemble import RootfsSettings, assemble_to_sink
from linuxkit.tar.header import BLOCKDEV, CHAR, DIR, FIFO, LINK, REG, REGA, SYMLINK, Header
from linuxkit.tar.reader import read_back, read_back_placement
from linuxkit.tar.writer import TarSink

DATA = Path(__file__).parent.parent / "data"
GOLDEN = DATA / "initrd"


def _metadata() -> bytes:
    """The ``etc/linuxkit-config`` upstream wrote for the scenario (as the rootfs golden test uses)."""
    with tarfile.open(
        fileobj=io.BytesIO(gzip.decompress((DATA / "rootfs" / "upstream-tar.tar.gz").read_bytes()))
    ) as tar:
        member = tar.extractfile("etc/linuxkit-config")
        assert member is not None
        return member.read()


def _images(ref: str, platform: Platform) -> ImageSource:
    return IMAGES[ref]


def _settings(tmp_path: Path, decompress: bool = False) -> tuple[schema.Moby, RootfsSettings]:
    (tmp_path / "src.txt").write_text("source file\n")
    moby = schema.parse(schema.Moby, yaml.safe_load(YAML))
    metadata = _metadata()
    settings = RootfsSettings(
        arch="amd64", base_dir=tmp_path, metadata_dump=lambda m, k: metadata, decompress_kernel=decompress
    )
    return moby, settings


def write_entries(fmt: str) -> Callable[[FormatContext, Callable[[TarSink], None]], None]:
    """The table's writer of ``fmt`` from the rootfs entries as they are assembled."""
    found = find(fmt)
    assert found is not None and found.entries_writer is not None
    return found.entries_writer.resolve()


def _streamed(tmp_path: Path, name: str, fmt: str, decompress: bool = False) -> Path:
    moby, settings = _settings(tmp_path, decompress)
    with OutputSet() as outputs:
        ctx = FormatContext(tmp_path / name / "t", 1024, "amd64", decompress, outputs)
        write_entries(fmt)(ctx, lambda sink: assemble_to_sink(moby, _images, sink, settings))
        outputs.commit()
    return tmp_path / name


@pytest.mark.parametrize("decompress", [False, True])
def test_streamed_equals_split_of_the_rootfs_tar(tmp_path: Path, decompress: bool) -> None:
    """Same kernel, cmdline and initrd bytes (gzip included) as splitting the tar we would write."""
    moby, settings = _settings(tmp_path, decompress)
    rootfs = tmp_path / "rootfs.tar"
    with open(rootfs, "wb") as fh:
        write_tar(moby, _images, fh, settings)
    parts = make_kernel_initrd(rootfs, tmp_path / "split", decompress_kernel=decompress)
    out = _streamed(tmp_path, "streamed", "kernel+initrd", decompress)
    assert (out / "t-initrd.img").read_bytes() == parts.initrd.read_bytes()
    assert (out / "t-kernel").read_bytes() == parts.kernel.read_bytes()
    assert (out / "t-cmdline").read_text() == parts.cmdline
    assert sorted(p.name for p in out.iterdir()) == ["t-cmdline", "t-initrd.img", "t-kernel"]


def test_streamed_matches_upstream_cpio(tmp_path: Path) -> None:
    out = _streamed(tmp_path, "o", "kernel+initrd")
    ucode = (GOLDEN / "upstream-ucode.bin").read_bytes()
    initrd = (out / "t-initrd.img").read_bytes()
    assert initrd[: len(ucode)] == ucode
    assert gzip.decompress(initrd[len(ucode) :]) == gzip.decompress((GOLDEN / "upstream-initrd.cpio.gz").read_bytes())
    assert (out / "t-kernel").read_bytes() == (GOLDEN / "upstream-kernel").read_bytes()


def test_streamed_tar_kernel_initrd_is_deterministic(tmp_path: Path) -> None:
    a = (_streamed(tmp_path, "a", "tar-kernel-initrd") / "t-initrd.tar").read_bytes()
    b = (_streamed(tmp_path, "b", "tar-kernel-initrd") / "t-initrd.tar").read_bytes()
    assert a == b


def test_error_in_assembler_stops_the_worker_and_writes_nothing(tmp_path: Path) -> None:
    before = threading.active_count()

    def fail(sink: object) -> None:
        assert isinstance(sink, InitrdSplitter)
        sink.write_header(Header(name="a", typeflag=REG, size=3, mode=0o644))
        sink.write(b"abc")
        raise BuildError("boom")

    with pytest.raises(BuildError, match="boom"), OutputSet() as outputs:
        write_entries("kernel+initrd")(FormatContext(tmp_path / "o" / "t", 1024, "amd64", False, outputs), fail)
    assert threading.active_count() == before
    assert not list((tmp_path / "o").iterdir())


def test_splitter_checks_data_lengths(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="missing 2 bytes"), InitrdSplitter(io.BytesIO(), tmp_path) as s:
        s.write_header(Header(name="boot/kernel", typeflag=REG, size=3))
        s.write(b"k")
        s.write_header(Header(name="x", typeflag=DIR))
    with pytest.raises(BuildError, match="longer than"), InitrdSplitter(io.BytesIO(), tmp_path) as s:
        s.write_header(Header(name="boot/cmdline", typeflag=REG, size=1))
        s.write(b"ab")
    with pytest.raises(BuildError, match="cannot convert"), InitrdSplitter(io.BytesIO(), tmp_path) as s:
        s.write_header(Header(name="weird", typeflag="7"))


# -- the gzip worker ------------------------------------------------------------------------------


def test_threaded_gzip_does_not_depend_on_write_sizes() -> None:
    rng = random.Random(7)
    data = b"".join(rng.randbytes(rng.randint(0, 3000)) + b"text " * rng.randint(0, 3000) for _ in range(400))

    def compress(sizes: list[int]) -> bytes:
        out = io.BytesIO()
        gz = GzipStream(out)
        with ThreadedWriter(gz, block=64 << 10) as pipe:
            pos = 0
            for n in sizes:
                pipe.write(data[pos : pos + n])
                pos += n
            pipe.write(bytearray(data[pos:]))
        gz.close()
        return out.getvalue()

    one = compress([len(data)])
    assert gzip.decompress(one) == data
    assert compress([rng.randint(1, 200_000) for _ in range(20)]) == one
    assert compress([512] * 500 + [64 << 10] * 3) == one


def test_threaded_writer_raises_the_workers_error() -> None:
    class Broken:
        def write(self, data: bytes) -> None:
            raise OSError("disk full")

    pipe = ThreadedWriter(Broken(), block=4)
    pipe.write(b"12345678")
    with pytest.raises(OSError, match="disk full"):
        for _ in range(1000):  # a later write raises it once the worker failed
            pipe.write(b"1234")
    with pytest.raises(OSError, match="disk full"):
        pipe.close()  # the worker stopped; close says why
    pipe.close()  # already closed: no second error, no hang


# -- reading headers back without a tar -----------------------------------------------------------


def _random_header(rng: random.Random) -> Header:
    typeflag = rng.choice([REG, REGA, LINK, SYMLINK, CHAR, BLOCKDEV, DIR, FIFO])
    parts = [
        rng.choice(["a", "bin", "x" * rng.randint(1, 90), "é", "\udcff", "dir.d"]) for _ in range(rng.randint(1, 4))
    ]
    # a trailing slash is refused on regular files and devices (and makes a REGA a directory)
    name = "/".join(parts) + ("/" if rng.random() < (0.5 if typeflag in (DIR, REGA) else 0.02) else "")
    when = rng.choice([None, (1_600_000_000, 0), (1_600_000_000, 700_000_000), (-5, 250_000_000), (1 << 40, 0)])
    return Header(
        name=name,
        typeflag=typeflag,
        linkname=rng.choice(["", "busybox", "../" * 40 + "target", "ü"]),
        size=rng.choice([0, 7, 1 << 34]),
        mode=rng.choice([0o644, 0o4755, 0o777, 0o644, 0o4755, 0o777, 1 << 22]),  # the last needs GNU: refused
        uid=rng.choice([0, 1000, 1 << 22]),
        gid=rng.choice([0, 1 << 30]),
        uname=rng.choice(["", "root", "ü"]),
        mtime=when,
        atime=rng.choice([None, (5, 5)]),
        devmajor=rng.choice([0, 8, 0, 8, 0, 8, 1 << 22]),
        devminor=rng.choice([0, 1]),
        pax=rng.choice([None, {"LINUXKIT.source": "docker.io/x:1", "LINUXKIT.location": "init[0]"}]),
        want_pax=rng.random() < 0.7,
    )


def _placement(h: Header) -> tuple[object, ...]:
    return (h.name, h.typeflag, h.linkname, h.size, h.mode, h.uid, h.gid, h.mtime, h.devmajor, h.devminor)


def test_read_back_placement_agrees_with_writing_and_reading_the_tar() -> None:
    rng = random.Random(11)
    checked = refused = 0
    for _ in range(3000):
        hdr = _random_header(rng)
        try:
            want = read_back(hdr)
        except BuildError as exc:
            with pytest.raises(BuildError) as ours:
                read_back_placement(hdr)
            assert ours.value.message == exc.message
            refused += 1
            continue
        assert _placement(read_back_placement(hdr)) == _placement(want), hdr
        checked += 1
    assert checked > 1000 and refused > 10  # both outcomes really exercised
