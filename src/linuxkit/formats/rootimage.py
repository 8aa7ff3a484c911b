"""``kernel+squashfs``, ``kernel+erofs`` and ``kernel+iso``: ``NAME-kernel``, ``NAME-cmdline`` and the
root file system as an image (``NAME-squashfs.img``, ``NAME-erofs.img``, ``NAME.iso``), as upstream,
plus ``NAME-initrd.img``, the root loader (:mod:`.rootloader`) our modular kernel needs to mount it.

As upstream, ``boot/kernel`` and ``boot/cmdline`` are taken out and the rest of ``boot/`` is left
out of the root image. Every image is reproducible and needs no root: squashfs streams the tar into
``tar2sqfs`` (times from the tar); erofs and ISO 9660 are made from a tree extracted under fakeroot
(:mod:`.roottree`) with fixed times and a content-derived UUID (``mkfs.erofs -T -U``) or
``SOURCE_DATE_EPOCH`` (``xorriso``).

With ``build --verity`` (``ctx.verity_tools``; squashfs and erofs) the root image gets its dm-verity hash tree appended
(:mod:`.verity`), ``NAME-cmdline`` its root hash, and the root loader ``dmsetup`` and the dm-verity
modules to check it (:mod:`.rootloader`).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

from .. import log, runner
from ..safetree import UPDATE, TreePlan, clean_name
from ..tar.header import DIR, REG, Header, Readable
from ..tar.reader import read_entries
from ..tar.writer import TarWriter, copy_data
from .initrd import scratch
from .registry import FormatContext
from .rootloader import make_loader
from .roottree import image_from_tree, is_boot, split_boot

#: squashfs compression, measured on a 26 MB rootfs with tar2sqfs (s / KiB): zstd level 3 0.11 / 16300,
#: level 6 0.24 / 15928, level 15 (its default) 2.51 / 14420; gzip 3.35 / 15048. Debian kernels read zstd.
SQUASHFS_COMPRESSION = ("-c", "zstd", "-X", "level=3")


class _Final:
    """Pass 1 of :func:`filtered_tar`: what extracting the entries in order (with the rules of
    :class:`~..safetree.TreePlan`) leaves at each path, by entry index."""

    def __init__(self) -> None:
        self.plan = TreePlan("rootfs")
        self.index = -1
        self.start: dict[str, int] = {}  # path → index of the entry that made what is there now
        self.header: dict[int, Header] = {}  # start index → the header it is written with
        self.parents: dict[int, tuple[str, ...]] = {}  # index → directories to make before it
        self.implied: dict[str, Header | None] = {}  # such a directory → a later entry's metadata
        self.links: dict[int, tuple[str, int]] = {}  # hard link index → (target, target's start then)

    def __call__(self, hdr: Header, data: Readable) -> None:
        self.index += 1
        placed = self.plan.place(hdr)
        if placed is None or placed.name == "":
            return
        if placed.parents:
            self.parents[self.index] = placed.parents
            self.implied.update(dict.fromkeys(placed.parents))
        if placed.action == UPDATE:
            # a directory's last entry gives its metadata
            if placed.name in self.implied:
                self.implied[placed.name] = hdr
            else:
                self.header[self.start[placed.name]] = hdr
            return
        self.start[placed.name] = self.index
        self.header[self.index] = hdr
        if placed.link_target:
            self.links[self.index] = (placed.link_target, self.start[placed.link_target])

    def keep(self, index: int, hdr: Header) -> Header | None:
        """The header to write for entry ``index`` (``hdr``), or ``None`` when a later entry replaced
        it, or it is a hard link to a file a later entry replaced."""
        final = self.header.get(index)
        if final is None or self.start.get(clean_name(final.name) or "") != index:
            return None
        link = self.links.get(index)
        if link is not None and self.start.get(link[0]) != link[1]:
            log.warn(f"rootfs: dropping hard link {hdr.name!r}: a later entry replaced {link[0]!r}")
            return None
        return final


def filtered_tar(rootfs_tar: Path, work: Path, epoch: int) -> tuple[Path, Path, Path]:
    """``(kernel, cmdline, tar)``: the rootfs tar without ``boot/`` in ``work/root.tar``, with every
    path once, as extracting the rootfs would leave it: ``tar2sqfs`` refuses a path twice (two images
    both carrying ``bin/`` is the normal case), and it must get what the other root images get
    (the same :class:`~..safetree.TreePlan` rules: nothing below a symlink, hard links only to files
    already there). Two passes over the tar: the first finds what is left at each path, the second
    writes it, directories where they first appear with their last entry's metadata."""
    final = _Final()
    kernel, cmdline = split_boot(rootfs_tar, work, final)
    tar = work / "root.tar"
    with open(tar, "wb") as out, open(rootfs_tar, "rb") as src:
        tw = TarWriter(out)
        index = -1
        for item in read_entries(src):
            if is_boot(item.header.name):
                continue
            index += 1
            for parent in final.parents.get(index, ()):
                made = final.implied[parent] or Header(name=parent, typeflag=DIR, mode=0o755, mtime=(epoch, 0))
                tw.write_header(made.copy(name=parent + "/"))
            hdr = final.keep(index, item.header)
            if hdr is None:
                continue
            if hdr.typeflag == DIR and not hdr.name.endswith("/"):
                hdr = hdr.copy(name=hdr.name + "/")
            tw.write_header(hdr)
            if hdr.typeflag == REG and hdr.size:
                copy_data(tw, item.data, hdr.size)
        tw.close()
    return kernel, cmdline, tar


def _file_digest(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").digest()


def _publish(ctx: FormatContext, image: Path, final: str, kernel: Path, cmdline: Path, loader: Path) -> None:
    """Move the root ``image`` to ``final`` and the kernel, cmdline and loader beside it; with
    ``--verity``, the image's hash tree appended and its root hash put on the command line first."""
    if ctx.verity_tools is not None:
        from .verity import append_hash_tree, with_verity

        root = append_hash_tree(image)
        log.debug(f"verity: {final}: {root.data_blocks} data blocks, root hash {root.root_hash}")
        text = cmdline.read_bytes().decode(errors="surrogateescape")
        cmdline.write_bytes(with_verity(text, root).encode(errors="surrogateescape"))
    os.replace(image, ctx.outputs.path(final))
    base = str(ctx.base)
    if kernel.stat().st_size:
        os.replace(kernel, ctx.outputs.path(f"{base}-kernel"))
    if cmdline.stat().st_size:
        os.replace(cmdline, ctx.outputs.path(f"{base}-cmdline"))
    os.replace(loader, ctx.outputs.path(f"{base}-initrd.img"))


def _loader(ctx: FormatContext, rootfs_tar: Path, work: Path) -> Path:
    loader = work / "loader.img"
    modules = make_loader(rootfs_tar, loader, ctx.verity_tools)
    log.debug(f"root loader: busybox + {len(modules)} modules ({' '.join(modules)})")
    return loader


def _say(ctx: FormatContext, image: str) -> None:
    base = str(ctx.base)
    log.info(f"  {base}-kernel {base}-cmdline {image} {base}-initrd.img (root loader)")


def write_kernel_squashfs(ctx: FormatContext, rootfs_tar: Path) -> None:
    """``kernel+squashfs``: ``NAME-squashfs.img`` (``tar2sqfs``, zstd) + kernel, cmdline, root loader.

    The tar without ``boot/`` is staged in a file (tar2sqfs reads its stdin; a file keeps this
    process out of a pipe deadlock and costs ~0.02 s per 26 MB)."""
    final = f"{ctx.base}-squashfs.img"
    _say(ctx, final)
    with scratch(ctx, "squashfs") as work:
        loader = _loader(ctx, rootfs_tar, work)
        kernel, cmdline, tar = filtered_tar(rootfs_tar, work, ctx.epoch)
        image = work / "root.sqfs"
        env = {"SOURCE_DATE_EPOCH": str(ctx.epoch)}
        with open(tar, "rb") as src:
            runner.run(
                ["tar2sqfs", "-q", "-f", "-s", *SQUASHFS_COMPRESSION, "-d", f"mtime={ctx.epoch}", image],
                stdin=src,
                capture=True,
                extra_env=env,
            )
        tar.unlink()
        _publish(ctx, image, final, kernel, cmdline, loader)


def write_kernel_erofs(ctx: FormatContext, rootfs_tar: Path) -> None:
    """``kernel+erofs``: ``NAME-erofs.img`` (``mkfs.erofs``, fixed time and UUID) + kernel, cmdline, loader."""
    final = f"{ctx.base}-erofs.img"
    _say(ctx, final)
    with scratch(ctx, "erofs") as work:
        loader = _loader(ctx, rootfs_tar, work)
        fs_uuid = uuid.UUID(bytes=hashlib.sha256(b"erofs\0" + _file_digest(rootfs_tar)).digest()[:16], version=4)
        image = work / "root.erofs"
        # xattrs are kept (mkfs.erofs reads them), e.g. security.capability of a ping binary
        kernel, cmdline = image_from_tree(
            rootfs_tar,
            work,
            ctx.epoch,
            lambda tree: ["mkfs.erofs", "--quiet", f"-T{ctx.epoch}", f"-U{fs_uuid}", image.name, tree],
            extra_env={"SOURCE_DATE_EPOCH": str(ctx.epoch)},
        )
        _publish(ctx, image, final, kernel, cmdline, loader)


def write_kernel_iso(ctx: FormatContext, rootfs_tar: Path) -> None:
    """``kernel+iso``: ``NAME.iso`` (ISO 9660 + Rock Ridge + Joliet, no boot loader, ``xorriso``) +
    kernel, cmdline, root loader."""
    final = f"{ctx.base}.iso"
    _say(ctx, final)
    with scratch(ctx, "kiso") as work:
        loader = _loader(ctx, rootfs_tar, work)
        image = work / "root.iso"
        # SOURCE_DATE_EPOCH fixes xorriso's volume dates and UUID; the tree's times are already fixed.
        # Rock Ridge carries owners, modes, devices and links, not xattrs (xorriso's AAIP is off: Linux
        # does not read it).
        kernel, cmdline = image_from_tree(
            rootfs_tar,
            work,
            ctx.epoch,
            lambda tree: [
                *("xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-joliet-long", "-V", "LinuxKit"),
                *("-o", image.name, tree),
            ],
            extra_env={"SOURCE_DATE_EPOCH": str(ctx.epoch)},
        )
        _publish(ctx, image, final, kernel, cmdline, loader)
