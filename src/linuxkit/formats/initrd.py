"""``kernel+initrd`` and ``tar-kernel-initrd``: split the rootfs tar into kernel, cmdline, microcode
and a gzip-compressed newc initrd, the way upstream's ``initrd.CopySplitTar`` does.

Upstream's rules, reproduced here: ``boot/kernel``, ``boot/cmdline`` and ``boot/ucode.cpio`` are
taken out (the last one of each name wins); every other ``boot/...`` entry is dropped; every other
entry goes into the cpio under its tar name (a directory keeps its trailing ``/``), with the tar's
mode, ids, mtime (seconds) and device numbers; hard links become symlinks relative to the link's
directory (cpio hard links would duplicate the data anyway); a tar entry of any other type
(contiguous files, ...) fails the build. The microcode archive is prepended, uncompressed, to the
gzip initrd.

The decompressed cpio is byte-identical to upstream's. The gzip bytes are not: upstream compresses
with ``pgzip`` (level 6, in 1 MB blocks), we with ISA-L (see :data:`GZIP_LEVEL`); both are plain
gzip that every kernel unpacks. Everything streams through files: memory stays flat whatever the
size of the rootfs or the kernel.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from isal import igzip

from .. import log
from ..errors import BuildError
from ..rootfs.header import (
    BLOCKDEV,
    CHAR,
    DEFAULT_MTIME,
    DIR,
    FIFO,
    LINK,
    REG,
    SYMLINK,
    Header,
    Readable,
    enc,
)
from ..rootfs.kernel import decompress_kernel as _decompress
from ..rootfs.tarreader import read_all, read_entries
from ..rootfs.tarwriter import TarWriter
from .cpio import TYPE_BLK, TYPE_CHAR, TYPE_DIR, TYPE_FIFO, TYPE_REG, TYPE_SYMLINK, CpioWriter
from .registry import FormatContext

#: ISA-L level (0-3), measured on a 54 MB tar of Python modules and qemu firmware (ratio, seconds):
#: 0 → 0.349/0.12, 1 → 0.328/0.12, 2 → 0.323/0.12, 3 → 0.317/0.21; zlib level 6 (≈ pgzip's default)
#: → 0.282/1.56. Level 2 costs nothing over 1 and gets most of what 3 gets at ~60% of its time.
GZIP_LEVEL = 2

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


@dataclass(frozen=True)
class KernelInitrd:
    """The parts of a rootfs split for booting. ``kernel`` may be empty (no ``boot/kernel``);
    ``initrd`` already starts with the microcode when there is some (``ucode`` is a copy of it)."""

    kernel: Path
    initrd: Path
    cmdline: str
    ucode: Path | None


def go_clean(path: str) -> str:
    """Go's ``filepath.Clean`` for slash paths."""
    if not path:
        return "."
    out = posixpath.normpath(path)
    # normpath keeps a leading "//" (POSIX allows it); Go does not.
    return "/" + out.lstrip("/") if out.startswith("//") else out


def go_rel(base: str, target: str) -> str | None:
    """Go's ``filepath.Rel(base, target)``; ``None`` where Go returns an error."""
    base, target = go_clean(base), go_clean(target)
    if base == target:
        return "."
    if base == ".":
        base = ""
    if base.startswith("/") != target.startswith("/"):
        return None
    b_parts = [p for p in base.split("/") if p] if base else []
    t_parts = [p for p in target.split("/") if p]
    common = 0
    while common < len(b_parts) and common < len(t_parts) and b_parts[common] == t_parts[common]:
        common += 1
    rest = b_parts[common:]
    if rest and rest[0] == "..":
        return None
    return "/".join([".."] * len(rest) + t_parts[common:]) or "."


def _go_dir(name: str) -> str:
    """Go's ``filepath.Dir``: everything before the last slash, cleaned (``.`` when there is none)."""
    i = name.rfind("/")
    return go_clean(name[: i + 1]) if i >= 0 else "."


def hardlink_as_symlink(name: str, linkname: str) -> str:
    """The symlink target upstream writes for a tar hard link ``name`` → ``linkname``: relative to
    the link's directory (an absolute one would point outside a container's root)."""
    rel = go_rel(_go_dir(name), linkname)
    return "/" + linkname if rel is None else rel


def _cpio_entry(cpio: CpioWriter, hdr: Header, data: Readable) -> None:
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
    cpio.write_header(
        enc(hdr.name),
        kind=kind,
        mode=hdr.mode,
        uid=hdr.uid,
        gid=hdr.gid,
        mtime=hdr.mtime[0] if hdr.mtime is not None else _GO_ZERO_TIME,
        size=size,
        devmajor=hdr.devmajor,
        devminor=hdr.devminor,
    )
    if payload is not None:
        cpio.write(payload)
    elif kind == TYPE_REG:
        cpio.copy_from(data, hdr.size)
    elif size:
        # gocpio writes no data for these types but still pads their declared size with zeros.
        cpio.write(bytes(size))


def _save(data: Readable, size: int, dest: Path) -> None:
    with open(dest, "wb") as out:
        left = size
        while left:
            chunk = data.read(min(left, _CHUNK))
            if not chunk:
                raise BuildError(f"rootfs tar ended early while reading {dest.name}")
            out.write(chunk)
            left -= len(chunk)


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


def split_rootfs(rootfs: IO[bytes], initrd_gz: IO[bytes], workdir: Path) -> tuple[Path, str, Path | None]:
    """Stream the rootfs tar ``rootfs``: write the gzip cpio to ``initrd_gz``, the kernel to
    ``workdir/kernel`` (empty when there is none) and the microcode to ``workdir/ucode.cpio``.
    Returns ``(kernel, cmdline, ucode or None)``."""
    kernel = workdir / "kernel"
    kernel.write_bytes(b"")
    ucode: Path | None = None
    cmdline = b""
    # filename="" keeps the output file's name out of the gzip header (as Go writes none).
    gz = igzip.IGzipFile(  # type: ignore[no-untyped-call]
        filename="", mode="wb", fileobj=initrd_gz, compresslevel=GZIP_LEVEL, mtime=0
    )
    with gz:
        cpio = CpioWriter(gz)
        for entry in read_entries(rootfs):
            hdr = entry.header
            if hdr.name == "boot/kernel":
                _save(entry.data, hdr.size, kernel)
            elif hdr.name == "boot/cmdline":
                cmdline = read_all(entry.data, hdr.size)
            elif hdr.name == "boot/ucode.cpio":
                ucode = workdir / "ucode.cpio"
                _save(entry.data, hdr.size, ucode)
            elif hdr.name.startswith("boot/"):
                continue
            else:
                _cpio_entry(cpio, hdr, entry.data)
        cpio.close()
    return kernel, cmdline.decode("utf-8", "surrogateescape"), ucode


def make_kernel_initrd(rootfs_tar: Path, workdir: Path, *, decompress_kernel: bool = False) -> KernelInitrd:
    """Split ``rootfs_tar`` into ``workdir/{kernel,initrd.img}`` (+ ``ucode.cpio``) in one pass.

    ``decompress_kernel`` decompresses a kernel that is still compressed (a gzip or bzImage one);
    the build already does that while assembling the rootfs, so this matters for a rootfs made
    elsewhere (``--input-tar``) and is a no-op for an uncompressed kernel.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    initrd = workdir / "initrd.img"
    gz_path = workdir / "initrd.gz"
    with open(rootfs_tar, "rb") as rootfs, open(gz_path, "wb") as gz_out:
        kernel, cmdline, ucode = split_rootfs(rootfs, gz_out, workdir)
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


def _workdir(ctx: FormatContext) -> tempfile.TemporaryDirectory[str]:
    # Next to the outputs, so moving the results into place is a rename, not a copy.
    ctx.base.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=f".{ctx.base.name}-initrd.", dir=ctx.base.parent)


def write_kernel_initrd(ctx: FormatContext, rootfs_tar: Path) -> None:
    """``kernel+initrd``: ``NAME-kernel``, ``NAME-initrd.img`` (microcode first), ``NAME-cmdline``.
    As upstream, an empty kernel or cmdline is not written."""
    base = str(ctx.base)
    with _workdir(ctx) as tmp:
        parts = make_kernel_initrd(rootfs_tar, Path(tmp), decompress_kernel=ctx.decompress_kernel)
        names = [f"{base}-kernel", f"{base}-initrd.img", f"{base}-cmdline"]
        log.info("  " + " ".join(("ucode+" if parts.ucode and "initrd" in n else "") + n for n in names))
        os.replace(parts.initrd, ctx.outputs.path(f"{base}-initrd.img"))
        if parts.kernel.stat().st_size:
            os.replace(parts.kernel, ctx.outputs.path(f"{base}-kernel"))
        if parts.cmdline:
            with ctx.outputs.open(f"{base}-cmdline") as out:
                out.write(enc(parts.cmdline))


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


def write_tar_kernel_initrd(ctx: FormatContext, rootfs_tar: Path) -> None:
    """``tar-kernel-initrd``: ``NAME-initrd.tar`` holding ``kernel``, ``initrd.img`` (without the
    microcode), ``cmdline`` and ``ucode.cpio``, each only when not empty, as upstream."""
    final = f"{ctx.base}-initrd.tar"
    log.info(f"  {final}")
    with _workdir(ctx) as tmp:
        work = Path(tmp)
        gz_path = work / "initrd.gz"
        with open(rootfs_tar, "rb") as rootfs, open(gz_path, "wb") as gz_out:
            kernel, cmdline, ucode = split_rootfs(rootfs, gz_out, work)
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
