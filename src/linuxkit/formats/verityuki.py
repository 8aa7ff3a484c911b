"""``uki`` with ``build --verity``: ``NAME.efi`` holds the boot chain of the root image the build's
root-image format has just written (its kernel, its root loader as the initrd, and its command line
with the dm-verity root hash), signed when the build signs. Under Secure Boot the EFI stub then uses
that command line as it is, so the signature covers everything from the firmware to the last block of
the root image: the loader checks the image against the root hash the signed file carries.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import log
from ..errors import BuildError
from .initrd import scratch
from .registry import FormatContext
from .uki import write_uki_file


def write_verity_uki(ctx: FormatContext) -> None:
    """Write ``NAME.efi`` from ``NAME-kernel``, ``NAME-initrd.img`` and ``NAME-cmdline`` as the root-image
    format wrote them into this build's outputs (it runs first: ``verity.root_image_first``)."""
    base = str(ctx.base)
    kernel, loader, cmdline = (Path(ctx.outputs.path(base + s)) for s in ("-kernel", "-initrd.img", "-cmdline"))
    if not kernel.stat().st_size or not loader.stat().st_size:
        raise BuildError("the uki of --verity found no kernel or root loader: the image needs a kernel")
    final = f"{base}.efi"
    log.info(f"  {final} (kernel, root loader and cmdline with the root hash)")
    with scratch(ctx, "verity-uki") as tmp:
        dest = tmp / "uki.efi"
        write_uki_file(ctx, kernel, loader, cmdline.read_bytes().decode().strip(), dest)
        os.replace(dest, ctx.outputs.path(final))
