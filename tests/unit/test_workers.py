"""Worker threads stop on errors: a failing sink closes the image being flattened (and its layer's
read-ahead thread) at once, :func:`linuxkit.workers.stop_all` stops whatever was left running, and a
full file system is a plain :class:`BuildError`."""

from __future__ import annotations

import errno
import gc
import gzip
import io
import random
import threading
from pathlib import Path
from typing import IO

import pytest
import rootfs_fakes

from linuxkit import workers
from linuxkit.config import schema
from linuxkit.errors import BuildError
from linuxkit.formats.pipe import ThreadedWriter
from linuxkit.oci.digest import VerifyingReader, of_bytes
from linuxkit.oci.image import ImageSource, Platform
from linuxkit.oci.layers import READ_CHUNK, UncompressedLayer, open_uncompressed
from linuxkit.outputs import OutputSet, full_disk_is_an_error
from linuxkit.rootfs.assemble import RootfsSettings, assemble_to_sink
from linuxkit.tar.header import Header


def _worker_threads() -> list[threading.Thread]:
    return [
        t
        for t in threading.enumerate()
        if t.name in ("layer-read-ahead", "initrd-gzip", "test-writer") and t.is_alive()
    ]


def _big_layer() -> bytes:
    rng = random.Random(7)
    raw = rootfs_fakes.layer(rootfs_fakes.file("big", rng.randbytes(4 * READ_CHUNK)), rootfs_fakes.file("z", b"z"))
    return gzip.compress(raw, compresslevel=1, mtime=0)


class _GzipSource(rootfs_fakes.FakeSource):
    """Layers stored gzip-compressed and read as the cache reads them: with a read-ahead thread."""

    def open_layer(self, index: int) -> IO[bytes]:
        blob = self.layers[index]
        return open_uncompressed(VerifyingReader(io.BytesIO(blob), of_bytes(blob), len(blob), "layer"))


class _FullDisk:
    """A tar sink on a file system that fills up after ``room`` bytes."""

    def __init__(self, room: int) -> None:
        self.room = room

    def write_header(self, hdr: Header) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.room -= len(data)
        if self.room < 0:
            raise OSError(errno.ENOSPC, "No space left on device")


def test_failing_sink_stops_the_read_ahead_before_the_error_leaves(tmp_path: Path) -> None:
    """The traceback keeps the assembler's frames (and a suspended generator) alive: the layer must
    be closed by the ``with`` in the assembler, not by the garbage collector at interpreter exit."""
    source = _GzipSource("docker.io/library/big:1", [_big_layer()])

    def images(ref: str, platform: Platform) -> ImageSource:
        return source

    moby = schema.parse(schema.Moby, {"init": ["big:1"]})
    settings = RootfsSettings(arch="amd64", base_dir=tmp_path, metadata_dump=lambda m, k: b"{}")
    gc.disable()  # the leak this guards against is collected only by a cycle collection
    try:
        with pytest.raises(OSError) as err:
            assemble_to_sink(moby, images, _FullDisk(READ_CHUNK), settings)
        assert err.value.errno == errno.ENOSPC
        assert _worker_threads() == []
        assert workers.running() == 0
    finally:
        gc.enable()


def test_stop_all_stops_workers_their_owners_forgot() -> None:
    blob = gzip.compress(bytes(12 * READ_CHUNK), mtime=0)
    layer = UncompressedLayer(VerifyingReader(io.BytesIO(blob), of_bytes(blob), len(blob), "layer"))
    assert layer.read(10) == bytes(10)  # the worker runs ahead, then waits on its full queue
    pipe = ThreadedWriter(io.BytesIO(), block=4, name="test-writer")
    pipe.write(b"abcdef")
    assert workers.running() == 2 and len(_worker_threads()) == 2
    assert workers.stop_all() == 2
    assert _worker_threads() == [] and workers.running() == 0
    layer.close()  # closing afterwards is still fine
    pipe.close()


def test_full_disk_is_a_build_error_naming_the_place(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    place = ("kernel+initrd to out/t", out, "free some space")
    with pytest.raises(BuildError) as err, full_disk_is_an_error([place]), OutputSet() as outputs:
        outputs.path(out / "t-initrd.img").write_bytes(b"x")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert err.value.exit_code == 1
    assert err.value.message.startswith("no space left on device writing kernel+initrd to out/t (needed more than")
    assert f"free in {out})" in err.value.message and err.value.hint == "free some space"
    assert list(out.iterdir()) == []  # the temporary output is gone
    with pytest.raises(PermissionError), full_disk_is_an_error([("x", out, "")]):
        raise PermissionError(errno.EACCES, "Permission denied")  # other errors are left alone


@pytest.mark.parametrize("started", [False, True])
def test_stop_all_copes_with_a_start_cut_short_by_a_signal(monkeypatch: pytest.MonkeyPatch, started: bool) -> None:
    """SIGTERM raised inside ``Thread.start()``: the owner never got returned, but it is registered;
    stopping it must work whether its thread runs or not (found by a real SIGTERM mid-build)."""
    real_start = threading.Thread.start

    def interrupted(self: threading.Thread) -> None:
        if started:
            real_start(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(threading.Thread, "start", interrupted)
    blob = gzip.compress(bytes(12 * READ_CHUNK), mtime=0)
    # the tracebacks are kept, as an error on its way out keeps them: they hold the half-made owners,
    # which the registry only references weakly (dropped, a garbage collection could take them first)
    with pytest.raises(KeyboardInterrupt) as writer_error:
        ThreadedWriter(io.BytesIO(), name="test-writer")
    with pytest.raises(KeyboardInterrupt) as layer_error:
        UncompressedLayer(VerifyingReader(io.BytesIO(blob), of_bytes(blob), len(blob), "layer"))
    monkeypatch.undo()
    assert workers.running() == 2
    assert workers.stop_all() == 2
    del writer_error, layer_error
    assert workers.running() == 0
    for t in threading.enumerate():
        if t.name in ("layer-read-ahead", "test-writer"):
            t.join(5)
    assert _worker_threads() == []
