"""The kernel as systemd's EFI stub starts it: a PE image, never a gzip file.

An arm64 kernel package ships ``Image.gz`` (upstream's, and ours): ``qemu -kernel`` and U-Boot unpack
it, but the EFI stub of a UKI (and UEFI firmware) can only start the uncompressed ``Image``, which is
a PE file with the kernel's own EFI stub. Wherever a format puts the kernel into an EFI path it calls
:func:`efi_kernel`: a kernel that starts with the gzip magic is decompressed (streamed, the output
bounded by :data:`MAX_KERNEL`: the kernel comes from an image, which may be hostile); any other
kernel, such as x86's bzImage (a PE file already), is used byte for byte.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import IO

from .. import log
from ..errors import BuildError

GZIP_MAGIC = b"\x1f\x8b"
#: The largest decompressed kernel accepted. Debian's arm64 ``Image`` is 27 MiB, a kernel with
#: everything built in and debug information stays well below this; a gzip bomb stops here.
MAX_KERNEL = 256 << 20
_CHUNK = 1 << 20
_PE_MAGIC = b"MZ"


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(GZIP_MAGIC)) == GZIP_MAGIC


def _only_zeros(rest: bytes, src: IO[bytes]) -> bool:
    """What follows the last gzip member is zero padding only (as GNU gzip accepts)."""
    while rest:
        if rest.strip(b"\0"):
            return False
        rest = src.read(_CHUNK)
    return True


def gunzip_bounded(src: IO[bytes], dst: IO[bytes], limit: int = MAX_KERNEL) -> int:
    """Decompress the gzip stream ``src`` (one or more members) into ``dst``, in chunks of at most
    1 MiB; a :class:`BuildError` when it would exceed ``limit`` bytes, is truncated or corrupt, or is
    followed by anything but zero padding. Returns the decompressed size."""
    total = 0
    inflater = zlib.decompressobj(wbits=31)
    pending = b""
    try:
        while True:
            ended = False
            if not pending:
                pending = src.read(_CHUNK)
                ended = not pending
            # at the end of the input, zlib may still hold output that the last call's bound kept back
            out = inflater.decompress(pending, _CHUNK)
            if ended and not out and not inflater.eof:
                break
            total += len(out)
            if total > limit:
                raise BuildError(
                    f"the gzip kernel decompresses to more than {limit >> 20} MiB",
                    hint="the kernel image's kernel file is not a plausible kernel (a gzip bomb?)",
                )
            dst.write(out)
            pending = inflater.unconsumed_tail
            if inflater.eof:
                rest = inflater.unused_data
                if len(rest) < len(GZIP_MAGIC):
                    rest += src.read(_CHUNK)
                if not rest.startswith(GZIP_MAGIC):
                    if not _only_zeros(rest, src):
                        raise BuildError("the gzip kernel is followed by data that is not gzip")
                    return total
                inflater = zlib.decompressobj(wbits=31)
                pending = rest
    except zlib.error as exc:
        raise BuildError(f"cannot decompress the gzip kernel: {exc}") from exc
    raise BuildError("the gzip kernel is truncated", hint="rebuild or pull the kernel image again")


def efi_kernel(kernel: Path, work: Path) -> Path:
    """The kernel an EFI stub can start: ``kernel`` itself, or, when it is gzip-compressed, the
    decompressed kernel written to ``work/kernel.efi-image`` (which must be a PE image)."""
    if not is_gzip(kernel):
        return kernel
    plain = work / "kernel.efi-image"
    log.debug(f"decompressing the gzip kernel {kernel} for the EFI stub")
    with open(kernel, "rb") as src, open(plain, "wb") as dst:
        gunzip_bounded(src, dst)
    with open(plain, "rb") as fh:
        head = fh.read(len(_PE_MAGIC))
    if head != _PE_MAGIC:
        raise BuildError(
            "the decompressed kernel is not an EFI (PE) image, so an EFI stub cannot start it",
            hint="use a kernel built with its EFI stub (CONFIG_EFI_STUB), as Debian's are",
        )
    return plain
