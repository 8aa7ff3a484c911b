"""The kernel section: ``boot/kernel``, ``boot/cmdline``, ``kernel.tar`` contents, ``boot/ucode.cpio``.

Reproduces upstream's ``kernelFilter``: every file of the (sanitised) kernel image is discarded
except the kernel binary, the kernel tar and the microcode archive. The kernel binary becomes
``boot/kernel`` (after ``boot`` and ``boot/cmdline``), optionally decompressed; the kernel tar's
entries are copied at ``/`` with the kernel image's PAX records; the microcode is copied to
``boot/ucode.cpio``. Nothing is held in memory: the kernel tar is read as a nested stream, and the
kernel is spooled to a temporary file only when it must be decompressed.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterable
from typing import IO

from .. import log
from ..config import schema
from ..errors import BuildError
from ..formats.efikernel import gunzip_bounded
from ..safetree import TreePlan
from ..tar.header import DEFAULT_MTIME, DIR, LINK, PAX_LOCATION, PAX_SOURCE, Header, Readable
from ..tar.reader import Entry, read_entries
from ..tar.writer import TarSink, copy_data


class KernelImageError(BuildError):
    """The kernel image does not hold what the kernel section asks for (or holds a kernel that cannot
    be read): a problem of that image, located at the YAML's ``kernel.image`` by the assembler."""


_GZIP_MAGIC = b"\x1f\x8b"
_SPOOL = 16 << 20


def kernel_names(kernel: schema.Kernel) -> tuple[str, str, str]:
    """``(binary, tar, ucode)`` names inside the kernel image ("" = not wanted), as upstream."""
    tar = "kernel.tar"
    if kernel.tar is not None:
        tar = "" if kernel.tar == "none" else kernel.tar
    return kernel.binary or "kernel", tar, kernel.ucode or ""


def _spool(src: Readable, size: int) -> IO[bytes]:
    out: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL)  # noqa: SIM115
    left = size
    while left:
        chunk = src.read(min(left, 1 << 20))
        if not chunk:
            raise KernelImageError("kernel image ended early")
        out.write(chunk)
        left -= len(chunk)
    out.seek(0)
    return out


def _gunzip(src: IO[bytes]) -> IO[bytes]:
    """Bounded: the kernel image comes from a registry (a gzip bomb ends in an error, not a full disk)."""
    out: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL)  # noqa: SIM115
    try:
        gunzip_bounded(src, out)
    except BuildError as exc:
        out.close()
        raise KernelImageError(f"cannot decompress the kernel: {exc.message}", hint=exc.hint) from exc
    out.seek(0)
    return out


def decompress_kernel(src: IO[bytes]) -> IO[bytes]:
    """A gzip kernel, or a bzImage with a gzip payload, decompressed (upstream's rules)."""
    head = src.read(0x250 + 1)
    src.seek(0)
    if head.startswith(_GZIP_MAGIC):
        return _gunzip(src)
    if len(head) > 0x250 and struct.unpack_from("<H", head, 0x1FE)[0] == 0xAA55 and head[0x202:0x206] == b"HdrS":
        major, minor = head[0x206], head[0x207]
        if major < 2 and minor < 8:
            raise KernelImageError(f"unsupported bzImage version: {major}.{minor}")
        setup_sectors = head[0x1F1]
        offset = struct.unpack_from("<I", head, 0x248)[0] + (setup_sectors + 1) * 512
        length = struct.unpack_from("<I", head, 0x24C)[0]
        total = src.seek(0, 2)
        if total < offset + length:
            raise KernelImageError("compressed bzImage payload exceeds size of image")
        src.seek(offset)
        payload = src.read(length)
        if not payload.startswith(_GZIP_MAGIC):
            raise KernelImageError(f"unsupported bzImage payload format at offset {offset}")
        spooled: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL)  # noqa: SIM115
        spooled.write(payload)
        spooled.seek(0)
        return _gunzip(spooled)
    raise KernelImageError("no compressed kernel or no supported format found")


def _boot_dir(sink: TarSink, pax: dict[str, str] | None) -> None:
    sink.write_header(Header(name="boot", typeflag=DIR, mode=0o755, mtime=DEFAULT_MTIME, pax=pax))


def _copy_kernel_tar(sink: TarSink, data: Readable, source: str) -> None:
    """The kernel tar's entries at ``/``, with the checks every tree gets (:class:`~..safetree.TreePlan`):
    names inside the root, nothing below a symlink or file, hard links only to files the tar
    placed before them. Names are otherwise kept byte for byte, as upstream copies them."""
    plan = TreePlan(f"{source} (kernel tar)")
    for inner in read_entries(data):
        hdr = inner.header.copy(want_pax=True)
        hdr.pax = {**(hdr.pax or {}), PAX_SOURCE: source, PAX_LOCATION: "kernel"}
        if plan.place(hdr) is None:
            continue
        if hdr.name.startswith("/"):
            hdr.name = hdr.name.lstrip("/")
        if hdr.typeflag == LINK and hdr.linkname.startswith("/"):
            hdr.linkname = hdr.linkname.lstrip("/")
        sink.write_header(hdr)
        if hdr.has_data:
            copy_data(sink, inner.data, hdr.size)


def write_kernel(
    entries: Iterable[Entry], sink: TarSink, kernel: schema.Kernel, *, source: str, decompress: bool
) -> None:
    """Copy the kernel parts of the sanitised kernel image ``entries`` into ``sink``."""
    binary, tar, ucode = kernel_names(kernel)
    cmdline = (kernel.cmdline or "").encode()
    found_kernel = found_tar = found_ucode = False
    for entry in entries:
        hdr = entry.header
        if hdr.name == binary:
            if found_kernel:
                raise KernelImageError("found more than one possible kernel image")
            found_kernel = True
            if not found_ucode:
                _boot_dir(sink, hdr.pax)
            line = Header(name="boot/cmdline", mode=0o644, size=len(cmdline), mtime=DEFAULT_MTIME, pax=hdr.pax)
            sink.write_header(line)
            sink.write(cmdline)
            out = Header(name="boot/kernel", mode=hdr.mode, size=hdr.size, mtime=DEFAULT_MTIME, pax=hdr.pax)
            size = hdr.size if hdr.has_data else 0
            if decompress:
                log.debug("Decompressing kernel")
                with _spool(entry.data, size) as raw, decompress_kernel(raw) as plain:
                    out.size = plain.seek(0, 2)
                    plain.seek(0)
                    sink.write_header(out)
                    copy_data(sink, plain, out.size)
            else:
                sink.write_header(out)
                copy_data(sink, entry.data, size)
        elif tar and hdr.name == tar:
            found_tar = True
            _copy_kernel_tar(sink, entry.data, source)
        elif ucode and hdr.name == ucode:
            found_ucode = True
            if not found_kernel:
                _boot_dir(sink, hdr.pax)
            out = Header(name="boot/ucode.cpio", mode=hdr.mode, size=hdr.size, mtime=DEFAULT_MTIME, pax=hdr.pax)
            sink.write_header(out)
            copy_data(sink, entry.data, hdr.size if hdr.has_data else 0)
    if not found_kernel:
        raise KernelImageError(
            f"did not find kernel in kernel image {source}", hint=f"expected a file named {binary!r}"
        )
    if tar and not found_tar:
        raise KernelImageError(
            f"did not find kernel tar in kernel image {source}",
            hint=f"expected a file named {tar!r}; set 'kernel.tar: none' if the image has none",
        )
