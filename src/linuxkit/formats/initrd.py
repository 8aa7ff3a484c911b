"""``kernel+initrd`` and ``tar-kernel-initrd``: split the rootfs tar into kernel, cmdline, microcode
and a gzip-compressed newc initrd, the way upstream's ``initrd.CopySplitTar`` does.

Upstream's rules, reproduced here: ``boot/kernel``, ``boot/cmdline`` and ``boot/ucode.cpio`` are
taken out (the last one of each name wins); every other ``boot/...`` entry is dropped; every other
entry goes into the cpio under its tar name (a directory keeps its trailing ``/``), with the tar's
mode, ids, mtime (seconds) and device numbers; hard links become symlinks relative to the link's
directory (cpio hard links would duplicate the data anyway); a tar entry of any other type
(contiguous files, ...) fails the build. The microcode archive is prepended, uncompressed, to the
gzip initrd.

The decompressed cpio is upstream's, except that equal regular files of 64 KiB-16 MiB are stored once, as
hard links (:class:`_Dedupe`; docs/compatibility.md). The gzip bytes are not: upstream compresses
with ``pgzip`` (level 6, in 1 MB blocks), we with ISA-L (see :data:`GZIP_LEVEL`) in one stream fed
in 1 MiB blocks; both are plain gzip that every kernel unpacks. Everything streams: memory stays
flat whatever the size of the rootfs or the kernel (a file is held whole only to compare it, up to
16 MiB).

Speed: when the build writes only this format, :func:`write_kernel_initrd_entries` takes the entries from the
assembler as it produces them (no rootfs tar is written and read again), and the gzip runs on a
worker thread (:mod:`.pipe`) while the layers are decompressed on another
(:mod:`linuxkit.oci.layers`). The bytes are the same as splitting the rootfs tar.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from isal import isal_zlib

from .. import log
from ..errors import BuildError
from ..gocompat.path import go_dir, go_rel
from ..outputs import work_dir
from ..rootfs.kernel import decompress_kernel as _decompress
from ..tar.header import (
    BLOCKDEV,
    CHAR,
    DEFAULT_MTIME,
    DIR,
    FIFO,
    LINK,
    REG,
    SYMLINK,
    Header,
    enc,
)
from ..tar.reader import read_back_placement, read_entries
from ..tar.writer import TarSink, TarWriter, copy_data
from .cpio import TYPE_BLK, TYPE_CHAR, TYPE_DIR, TYPE_FIFO, TYPE_REG, TYPE_SYMLINK, CpioWriter
from .pipe import ThreadedWriter
from .registry import FormatContext

#: ISA-L level (0-3), measured on a 54 MB tar of Python modules and qemu firmware (ratio, seconds):
#: 0 → 0.349/0.12, 1 → 0.328/0.12, 2 → 0.323/0.12, 3 → 0.317/0.21; zlib level 6 (≈ pgzip's default)
#: → 0.282/1.56. On examples/minimal.yml's 15.7 MB cpio against upstream's 7.01 MB initrd: level 2 +6.1 %,
#: level 3 +3.7 % (68 ms against 53 ms); the goal is at most 5 % larger than upstream, so level 3.
GZIP_LEVEL = 3

#: Go's zero ``time.Time`` as Unix seconds (an entry without an mtime).
_GO_ZERO_TIME = -62135596800
_CHUNK = 1 << 20

_KINDS = {
    REG: TYPE_REG,
    SYMLINK: TYPE_SYMLINK,
    CHAR: TYPE_CHAR,
    BLOCKDEV: TYPE_BLK,
    DIR: TYPE_DIR,
    FIFO: TYPE_FIFO,
}


class GzipStream:
    """Gzip-compresses what is written to it into ``out`` (``out`` is not closed).

    ISA-L's own gzip wrapper: its header carries no name and mtime 0, so equal input gives equal
    bytes; unlike ``IGzipFile`` it computes the CRC without holding the GIL, so it runs in parallel
    with the build thread. The output depends on how the input is split into ``write`` calls:
    :class:`~.pipe.ThreadedWriter` always hands it the same blocks for the same bytes."""

    def __init__(self, out: IO[bytes], level: int = GZIP_LEVEL) -> None:
        self._out = out
        self._zlib = isal_zlib.compressobj(level, isal_zlib.DEFLATED, 16 + isal_zlib.MAX_WBITS)

    def write(self, data: bytes | memoryview) -> None:
        self._out.write(self._zlib.compress(data))

    def close(self) -> None:
        self._out.write(self._zlib.flush())


@dataclass(frozen=True)
class KernelInitrd:
    """The parts of a rootfs split for booting. ``kernel`` may be empty (no ``boot/kernel``);
    ``initrd`` already starts with the microcode when there is some (``ucode`` is a copy of it)."""

    kernel: Path
    initrd: Path
    cmdline: str
    ucode: Path | None


def hardlink_as_symlink(name: str, linkname: str) -> str:
    """The symlink target upstream writes for a tar hard link ``name`` → ``linkname``: relative to
    the link's directory (an absolute one would point outside a container's root)."""
    rel = go_rel(go_dir(name), linkname)
    return "/" + linkname if rel is None else rel


def _cpio_entry(cpio: CpioWriter, hdr: Header, *, nlink: int = 0, ino: int = 0) -> int:
    """The cpio header (and, for header-only tar types, the data) of tar entry ``hdr``; a regular
    file's data follows through ``cpio.write``. Returns the entry's inode number."""
    if hdr.typeflag == LINK:
        kind, payload = TYPE_SYMLINK, enc(hardlink_as_symlink(hdr.name, hdr.linkname))
    elif hdr.typeflag == SYMLINK:
        kind, payload = TYPE_SYMLINK, enc(hdr.linkname)
    elif hdr.typeflag in _KINDS:
        kind, payload = _KINDS[hdr.typeflag], None
    else:
        raise BuildError(
            f"error converting to initrd: cannot convert tar file: {hdr.name!r} has tar type {hdr.typeflag!r}"
        )
    # Header-only types keep the tar's size field, as upstream passes it on unchanged.
    size = len(payload) if payload is not None else hdr.size
    inode = cpio.write_header(
        enc(hdr.name),
        kind=kind,
        mode=hdr.mode,
        uid=hdr.uid,
        gid=hdr.gid,
        mtime=_mtime(hdr),
        size=0 if ino else size,
        devmajor=hdr.devmajor,
        devminor=hdr.devminor,
        nlink=nlink,
        ino=ino,
    )
    if payload is not None:
        cpio.write(payload)
    elif kind != TYPE_REG and size:
        # gocpio writes no data for these types but still pads their declared size with zeros.
        cpio.write(bytes(size))
    return inode


def _mtime(hdr: Header) -> int:
    return hdr.mtime[0] if hdr.mtime is not None else _GO_ZERO_TIME


_Key = tuple[bytes, int, int, int, int, int]


class _Dedupe:
    """Regular files stored once: a file of ``MIN``-``MAX`` bytes is held until its end and hashed; the
    first of its content, mode, owner and mtime is written with link count 2 (the kernel's unpacker then
    remembers its inode number), a later equal one as a hard link to it with no data. The kernel makes
    real hard links (``/`` is read-only once rc.init runs, and a container's overlay copies a file up
    before changing it, so no file can change through another's name). Every container carrying its own
    static busybox or libc made a third of an initrd's bytes, unpacked at every boot (platform-aws:
    55.7 → 39 MB). Smaller files are not worth a hash; bigger ones are passed through unheld (memory stays
    bounded).

    A later entry may name a path again (two init images with ``usr/bin/runc``: the last one wins). The
    kernel would open a regular file there in place and rewrite the inode that the path shares with its
    links, so :meth:`replacing` first writes a symlink entry at that path (the kernel's unpacker removes
    whatever a symlink replaces), and the group's first name stops being a link target."""

    MIN = 64 << 10
    MAX = 16 << 20

    def __init__(self) -> None:
        self.seen: dict[_Key, tuple[int, str]] = {}  # content → (inode, path of the file that has the data)
        self.linked: dict[str, _Key] = {}  # path of every file of a link group → its content
        self.hdr: Header | None = None
        self.parts: list[bytes] = []
        self.held = 0

    def replacing(self, cpio: CpioWriter, name: str) -> None:
        """Before an entry at ``name``: unlink a file of a link group that is there."""
        path = posixpath.normpath("/" + name)
        key = self.linked.pop(path, None)
        if key is None:
            return
        cpio.write_header(enc(path[1:]), kind=TYPE_SYMLINK, mode=0o777, size=1)
        cpio.write(b".")
        first = self.seen.get(key)
        if first is not None and first[1] == path:
            del self.seen[key]

    def hold(self, hdr: Header) -> bool:
        if hdr.typeflag != REG or not self.MIN <= hdr.size <= self.MAX:
            return False
        self.hdr, self.parts, self.held = hdr, [], 0
        return True

    def add(self, data: bytes) -> None:
        assert self.hdr is not None
        self.held += len(data)
        if self.held > self.hdr.size:
            raise BuildError("rootfs entry data longer than its header says")
        self.parts.append(bytes(data))

    def flush(self, cpio: CpioWriter) -> None:
        hdr, data = self.hdr, b"".join(self.parts)
        assert hdr is not None
        self.hdr, self.parts = None, []
        if len(data) != hdr.size:
            raise BuildError(f"rootfs entry is missing {hdr.size - len(data)} bytes of data")
        key = (hashlib.sha256(data).digest(), hdr.size, hdr.mode, hdr.uid, hdr.gid, _mtime(hdr))
        path = posixpath.normpath("/" + hdr.name)
        self.linked[path] = key
        first = self.seen.get(key)
        if first is not None:
            _cpio_entry(cpio, hdr, nlink=2, ino=first[0])
            return
        self.seen[key] = (_cpio_entry(cpio, hdr, nlink=2), path)
        cpio.write(data)


class InitrdSplitter:
    """A :class:`~linuxkit.tar.writer.TarSink` that splits a rootfs, entry by entry, into
    ``workdir/kernel`` (always created, empty when there is none), the cmdline, ``workdir/ucode.cpio``
    and the gzip cpio written to ``initrd_gz``. The gzip runs on a worker thread (see :mod:`.pipe`).

    ``normalise``: headers come from the assembler rather than from a tar file, so each is first
    turned into what a tar reader would read back (the rootfs tar upstream streams through)."""

    def __init__(self, initrd_gz: IO[bytes], workdir: Path, *, normalise: bool = False) -> None:
        self.kernel = workdir / "kernel"
        self.kernel.write_bytes(b"")
        self.ucode: Path | None = None
        self._workdir = workdir
        self._normalise = normalise
        self._cmdline = b""
        self._cmdline_parts: list[bytes] | None = None
        self._file: IO[bytes] | None = None  # kernel or microcode being written
        self._left = 0  # data bytes the current entry still expects
        self._to_cpio = False
        self._gz = GzipStream(initrd_gz)
        self._pipe = ThreadedWriter(self._gz, name="initrd-gzip")
        self._cpio = CpioWriter(self._pipe)
        self._dedupe = _Dedupe()
        self._closed = False

    def _end_entry(self) -> None:
        if self._dedupe.hdr is not None:
            self._dedupe.flush(self._cpio)
        if self._left:
            raise BuildError(f"rootfs entry is missing {self._left} bytes of data")
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._cmdline_parts is not None:
            self._cmdline = b"".join(self._cmdline_parts)
            self._cmdline_parts = None
        self._to_cpio = False

    def write_header(self, hdr: Header) -> None:
        if self._closed:
            raise BuildError("initrd writer already closed")
        self._end_entry()
        if self._normalise:
            hdr = read_back_placement(hdr)
        size = hdr.size if hdr.has_data else 0
        name = hdr.name
        if name == "boot/kernel":
            self._file = open(self.kernel, "wb")  # noqa: SIM115 - closed by _end_entry / close
        elif name == "boot/ucode.cpio":
            self.ucode = self._workdir / "ucode.cpio"
            self._file = open(self.ucode, "wb")  # noqa: SIM115
        elif name == "boot/cmdline":
            self._cmdline_parts = []
        elif not name.startswith("boot/"):
            self._dedupe.replacing(self._cpio, name)
            if not self._dedupe.hold(hdr):
                _cpio_entry(self._cpio, hdr)
            # a regular file's data goes to the cpio writer (or the dedupe), which counts it; the other
            # types have none
            self._to_cpio = hdr.typeflag == REG
            size = 0
        self._left = size

    def write(self, data: bytes) -> None:
        if self._dedupe.hdr is not None:
            self._dedupe.add(data)
            return
        if self._to_cpio:
            self._cpio.write(data)
            return
        if len(data) > self._left:
            raise BuildError("rootfs entry data longer than its header says")
        self._left -= len(data)
        if self._file is not None:
            self._file.write(data)
        elif self._cmdline_parts is not None:
            self._cmdline_parts.append(bytes(data))

    def close(self) -> str:
        """Finish the cpio and the gzip; returns the cmdline. ``initrd_gz`` stays open."""
        if self._closed:
            return self._cmdline.decode("utf-8", "surrogateescape")
        self._end_entry()
        self._closed = True
        self._cpio.close()
        self._pipe.close()
        self._gz.close()
        return self._cmdline.decode("utf-8", "surrogateescape")

    def abort(self) -> None:
        """Stop the worker and close files after an error (nothing is finished)."""
        self._closed = True
        if self._file is not None:
            self._file.close()
            self._file = None
        self._pipe.abort()

    def __enter__(self) -> InitrdSplitter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        # an error, or a block left without a successful close (e.g. close() itself failed): stop the worker
        if kind is not None or not self._closed:
            self.abort()


def _looks_compressed(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(0x206)
    return head.startswith(b"\x1f\x8b") or (len(head) >= 0x206 and head[0x202:0x206] == b"HdrS")


def _decompress_in_place(path: Path) -> None:
    with open(path, "rb") as src, _decompress(src) as plain:
        tmp = path.with_name(path.name + ".plain")
        with open(tmp, "wb") as out:
            shutil.copyfileobj(plain, out, _CHUNK)
    os.replace(tmp, path)


#: Feeds a rootfs, in tar order, to a sink: the assembler writing the rootfs, or a tar file read back.
RootfsFeed = Callable[[TarSink], None]


def feed_tar(rootfs: IO[bytes]) -> RootfsFeed:
    """A feed reading the rootfs tar ``rootfs``."""

    def feed(sink: TarSink) -> None:
        for entry in read_entries(rootfs):
            sink.write_header(entry.header)
            if entry.header.has_data:
                copy_data(sink, entry.data, entry.header.size)

    return feed


def split_feed(
    feed: RootfsFeed, initrd_gz: IO[bytes], workdir: Path, *, normalise: bool
) -> tuple[Path, str, Path | None]:
    """Split the rootfs that ``feed`` produces: the gzip cpio to ``initrd_gz``, the kernel to
    ``workdir/kernel`` (empty when there is none), the microcode to ``workdir/ucode.cpio``.
    Returns ``(kernel, cmdline, ucode or None)``."""
    with InitrdSplitter(initrd_gz, workdir, normalise=normalise) as splitter:
        feed(splitter)
        cmdline = splitter.close()
    return splitter.kernel, cmdline, splitter.ucode


def split_rootfs(rootfs: IO[bytes], initrd_gz: IO[bytes], workdir: Path) -> tuple[Path, str, Path | None]:
    """:func:`split_feed` of the rootfs tar stream ``rootfs``."""
    return split_feed(feed_tar(rootfs), initrd_gz, workdir, normalise=False)


def _kernel_initrd(feed: RootfsFeed, workdir: Path, *, normalise: bool, decompress_kernel: bool) -> KernelInitrd:
    workdir.mkdir(parents=True, exist_ok=True)
    initrd = workdir / "initrd.img"
    gz_path = workdir / "initrd.gz"
    with open(gz_path, "wb") as gz_out:
        kernel, cmdline, ucode = split_feed(feed, gz_out, workdir, normalise=normalise)
    if ucode is not None:
        with open(initrd, "wb") as out:
            with open(ucode, "rb") as src:
                shutil.copyfileobj(src, out, _CHUNK)
            with open(gz_path, "rb") as src:
                shutil.copyfileobj(src, out, _CHUNK)
        gz_path.unlink()
    else:
        os.replace(gz_path, initrd)
    if decompress_kernel and kernel.stat().st_size and _looks_compressed(kernel):
        log.debug("Decompressing kernel")
        _decompress_in_place(kernel)
    return KernelInitrd(kernel=kernel, initrd=initrd, cmdline=cmdline, ucode=ucode)


def make_kernel_initrd(rootfs_tar: Path, workdir: Path, *, decompress_kernel: bool = False) -> KernelInitrd:
    """Split ``rootfs_tar`` into ``workdir/{kernel,initrd.img}`` (+ ``ucode.cpio``) in one pass.

    ``decompress_kernel`` decompresses a kernel that is still compressed (a gzip or bzImage one);
    the build already does that while assembling the rootfs, so this matters for a rootfs made
    elsewhere (``--input-tar``) and is a no-op for an uncompressed kernel.
    """
    with open(rootfs_tar, "rb") as rootfs:
        return _kernel_initrd(feed_tar(rootfs), workdir, normalise=False, decompress_kernel=decompress_kernel)


def scratch(ctx: FormatContext, tag: str) -> contextlib.AbstractContextManager[Path]:
    """Every format's temporary directory: next to the outputs (same file system, so results move by
    rename), removed even when a signal lands right after it was made (:func:`~..outputs.work_dir`)."""
    ctx.base.parent.mkdir(parents=True, exist_ok=True)
    return work_dir(ctx.base.parent, f".{ctx.base.name}-{tag}.")


def _write_kernel_initrd(ctx: FormatContext, feed: RootfsFeed, *, normalise: bool) -> None:
    base = str(ctx.base)
    with scratch(ctx, "initrd") as tmp:
        parts = _kernel_initrd(feed, Path(tmp), normalise=normalise, decompress_kernel=ctx.decompress_kernel)
        names = [f"{base}-kernel", f"{base}-initrd.img", f"{base}-cmdline"]
        log.info("  " + " ".join(("ucode+" if parts.ucode and "initrd" in n else "") + n for n in names))
        os.replace(parts.initrd, ctx.outputs.path(f"{base}-initrd.img"))
        if parts.kernel.stat().st_size:
            os.replace(parts.kernel, ctx.outputs.path(f"{base}-kernel"))
        if parts.cmdline:
            with ctx.outputs.open(f"{base}-cmdline") as out:
                out.write(enc(parts.cmdline))


def write_kernel_initrd(ctx: FormatContext, rootfs_tar: Path) -> None:
    """``kernel+initrd``: ``NAME-kernel``, ``NAME-initrd.img`` (microcode first), ``NAME-cmdline``.
    As upstream, an empty kernel or cmdline is not written."""
    with open(rootfs_tar, "rb") as rootfs:
        _write_kernel_initrd(ctx, feed_tar(rootfs), normalise=False)


def _tar_member(tw: TarWriter, name: str, src: Path | bytes) -> None:
    size = len(src) if isinstance(src, bytes) else src.stat().st_size
    if not size:
        return
    tw.write_header(Header(name=name, typeflag=REG, mode=0o644, size=size, mtime=DEFAULT_MTIME, want_pax=True))
    if isinstance(src, bytes):
        tw.write(src)
        return
    with open(src, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            tw.write(chunk)


def _write_tar_kernel_initrd(ctx: FormatContext, feed: RootfsFeed, *, normalise: bool) -> None:
    final = f"{ctx.base}-initrd.tar"
    log.info(f"  {final}")
    with scratch(ctx, "initrd") as tmp:
        work = Path(tmp)
        gz_path = work / "initrd.gz"
        with open(gz_path, "wb") as gz_out:
            kernel, cmdline, ucode = split_feed(feed, gz_out, work, normalise=normalise)
        if ctx.decompress_kernel and kernel.stat().st_size and _looks_compressed(kernel):
            _decompress_in_place(kernel)
        with ctx.outputs.open(final) as out:
            tw = TarWriter(out)
            _tar_member(tw, "kernel", kernel)
            _tar_member(tw, "initrd.img", gz_path)
            _tar_member(tw, "cmdline", enc(cmdline))
            if ucode is not None:
                _tar_member(tw, "ucode.cpio", ucode)
            tw.close()


def write_tar_kernel_initrd(ctx: FormatContext, rootfs_tar: Path) -> None:
    """``tar-kernel-initrd``: ``NAME-initrd.tar`` holding ``kernel``, ``initrd.img`` (without the
    microcode), ``cmdline`` and ``ucode.cpio``, each only when not empty, as upstream."""
    with open(rootfs_tar, "rb") as rootfs:
        _write_tar_kernel_initrd(ctx, feed_tar(rootfs), normalise=False)


def write_kernel_initrd_entries(ctx: FormatContext, assemble: RootfsFeed) -> None:
    """``kernel+initrd`` from ``assemble``, which writes the rootfs entries to the sink it is given
    (no rootfs tar on disk). The result is the same as writing the rootfs tar and calling
    :func:`write_kernel_initrd` on it: each header is read back as the tar would have stored it."""
    _write_kernel_initrd(ctx, assemble, normalise=True)


def write_tar_kernel_initrd_entries(ctx: FormatContext, assemble: RootfsFeed) -> None:
    """``tar-kernel-initrd`` from ``assemble``, as :func:`write_kernel_initrd_entries`."""
    _write_tar_kernel_initrd(ctx, assemble, normalise=True)
