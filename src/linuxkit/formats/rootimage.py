"""``kernel+squashfs``, ``kernel+erofs`` and ``kernel+iso``: ``NAME-kernel``, ``NAME-cmdline`` and the
root file system as an image (``NAME-squashfs.img``, ``NAME-erofs.img``, ``NAME.iso``), as upstream,
plus ``NAME-initrd.img``, the root loader (:mod:`.rootloader`) our modular kernel needs to mount it.

As upstream, ``boot/kernel`` and ``boot/cmdline`` are taken out and the rest of ``boot/`` is left
out of the root image. Every image is reproducible: squashfs streams the tar into ``tar2sqfs``
(times from the tar); erofs and ISO 9660 are made from an extracted tree with fixed times and a
content-derived UUID (``mkfs.erofs -T -U``) or ``SOURCE_DATE_EPOCH`` (``xorriso``).
"""

from __future__ import annotations

import hashlib
import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path

from .. import log, runner
from ..errors import BuildError
from ..rootfs.header import BLOCKDEV, CHAR, DIR, FIFO, LINK, REG, SYMLINK, Header, Readable
from ..rootfs.tarreader import read_entries
from ..rootfs.tarwriter import TarWriter, copy_data
from .bootable import scratch
from .registry import FormatContext
from .rootloader import make_loader

_CHUNK = 1 << 20
#: squashfs compression, measured on a 26 MB rootfs with tar2sqfs (s / KiB): zstd level 3 0.11 / 16300,
#: level 6 0.24 / 15928, level 15 (its default) 2.51 / 14420; gzip 3.35 / 15048. Debian kernels read zstd.
SQUASHFS_COMPRESSION = ("-c", "zstd", "-X", "level=3")


def split_boot(rootfs_tar: Path, work: Path, entry: Callable[[Header, Readable], None]) -> tuple[Path, Path]:
    """Stream ``rootfs_tar``: ``boot/kernel`` and ``boot/cmdline`` to ``work`` (the last one of each
    wins), other ``boot/`` entries dropped, every other entry handed to ``entry``."""
    kernel, cmdline = work / "kernel", work / "cmdline"
    kernel.write_bytes(b"")
    cmdline.write_bytes(b"")
    with open(rootfs_tar, "rb") as src:
        for item in read_entries(src):
            hdr = item.header
            if hdr.name in ("boot/kernel", "boot/cmdline"):
                with open(kernel if hdr.name == "boot/kernel" else cmdline, "wb") as out:
                    copy_data(out, item.data, hdr.size)
            elif hdr.name == "boot" or hdr.name.startswith("boot/"):
                continue
            else:
                entry(hdr, item.data)
    return kernel, cmdline


def filtered_tar(rootfs_tar: Path, work: Path) -> tuple[Path, Path, Path]:
    """``(kernel, cmdline, tar)``: the rootfs tar without ``boot/`` in ``work/root.tar``."""
    tar = work / "root.tar"
    with open(tar, "wb") as out:
        tw = TarWriter(out)

        def add(hdr: Header, data: Readable) -> None:
            tw.write_header(hdr)
            if hdr.typeflag == REG and hdr.size:
                left = hdr.size
                while left:
                    chunk = data.read(min(left, _CHUNK))
                    if not chunk:
                        raise BuildError("rootfs tar ended early")
                    tw.write(chunk)
                    left -= len(chunk)

        kernel, cmdline = split_boot(rootfs_tar, work, add)
        tw.close()
    return kernel, cmdline, tar


def _safe_path(root: Path, name: str) -> Path:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise BuildError(f"rootfs tar entry {name!r} climbs out of the root")
    return root.joinpath(*parts) if parts else root


class Extractor:
    """Writes tar entries into a directory with their modes, owners and a fixed time (we run as root
    for device nodes and owners; other users get a clear error)."""

    def __init__(self, root: Path, epoch: int) -> None:
        self.root = root
        self.epoch = epoch
        self.dirs: list[tuple[Path, int]] = []
        root.mkdir(parents=True, exist_ok=True)

    def __call__(self, hdr: Header, data: Readable) -> None:
        path = _safe_path(self.root, hdr.name)
        if path == self.root:
            self.dirs.append((path, hdr.mode))
            os.chown(path, hdr.uid, hdr.gid)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if hdr.typeflag != DIR and (path.exists() or path.is_symlink()):
            path.unlink()  # a later entry of the same name wins, as when a tar is extracted
        try:
            self._make(path, hdr, data)
            os.lchown(path, hdr.uid, hdr.gid)
        except PermissionError as exc:
            raise BuildError(
                f"cannot create {hdr.name!r} with its owner or type: {exc.strerror}",
                hint="this format extracts the root file system: run the build as root",
            ) from exc
        if hdr.typeflag not in (SYMLINK, LINK):
            os.chmod(path, stat.S_IMODE(hdr.mode))
            os.utime(path, (self.epoch, self.epoch))

    def _make(self, path: Path, hdr: Header, data: Readable) -> None:
        kind = hdr.typeflag
        if kind == DIR:
            path.mkdir(exist_ok=True)
            self.dirs.append((path, hdr.mode))
        elif kind == REG:
            with open(path, "wb") as out:
                copy_data(out, data, hdr.size)
        elif kind == SYMLINK:
            os.symlink(hdr.linkname, path)
            os.utime(path, (self.epoch, self.epoch), follow_symlinks=False)
        elif kind == LINK:
            os.link(_safe_path(self.root, hdr.linkname), path)
        elif kind in (CHAR, BLOCKDEV):
            dev_type = stat.S_IFCHR if kind == CHAR else stat.S_IFBLK
            os.mknod(path, dev_type | 0o600, os.makedev(hdr.devmajor, hdr.devminor))
        elif kind == FIFO:
            os.mkfifo(path)
        else:
            raise BuildError(f"rootfs tar entry {hdr.name!r} has tar type {kind!r}, which a root image cannot hold")

    def finish(self) -> None:
        """Fix directory times last (creating their children changed them), deepest first."""
        for path, mode in sorted(self.dirs, key=lambda d: len(d[0].parts), reverse=True):
            os.chmod(path, stat.S_IMODE(mode))
            os.utime(path, (self.epoch, self.epoch))
        # the root itself has no entry in most rootfs tars: its time must be fixed too
        os.utime(self.root, (self.epoch, self.epoch))


def extract_root(rootfs_tar: Path, work: Path, epoch: int) -> tuple[Path, Path, Path]:
    """``(kernel, cmdline, tree)``: the rootfs without ``boot/`` extracted to ``work/root``."""
    tree = work / "root"
    extractor = Extractor(tree, epoch)
    kernel, cmdline = split_boot(rootfs_tar, work, extractor)
    extractor.finish()
    return kernel, cmdline, tree


def _file_digest(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").digest()


def _publish(ctx: FormatContext, kernel: Path, cmdline: Path, loader: Path) -> None:
    base = str(ctx.base)
    if kernel.stat().st_size:
        os.replace(kernel, ctx.outputs.path(f"{base}-kernel"))
    if cmdline.stat().st_size:
        os.replace(cmdline, ctx.outputs.path(f"{base}-cmdline"))
    os.replace(loader, ctx.outputs.path(f"{base}-initrd.img"))


def _loader(ctx: FormatContext, rootfs_tar: Path, work: Path) -> Path:
    loader = work / "loader.img"
    modules = make_loader(rootfs_tar, loader)
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
        kernel, cmdline, tar = filtered_tar(rootfs_tar, work)
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
        os.replace(image, ctx.outputs.path(final))
        _publish(ctx, kernel, cmdline, loader)


def write_kernel_erofs(ctx: FormatContext, rootfs_tar: Path) -> None:
    """``kernel+erofs``: ``NAME-erofs.img`` (``mkfs.erofs``, fixed time and UUID) + kernel, cmdline, loader."""
    final = f"{ctx.base}-erofs.img"
    _say(ctx, final)
    with scratch(ctx, "erofs") as work:
        loader = _loader(ctx, rootfs_tar, work)
        kernel, cmdline, tree = extract_root(rootfs_tar, work, ctx.epoch)
        fs_uuid = uuid.UUID(bytes=hashlib.sha256(b"erofs\0" + _file_digest(rootfs_tar)).digest()[:16], version=4)
        image = work / "root.erofs"
        runner.run(
            ["mkfs.erofs", "--quiet", f"-T{ctx.epoch}", f"-U{fs_uuid}", image, tree],
            capture=True,
            extra_env={"SOURCE_DATE_EPOCH": str(ctx.epoch)},
        )
        os.replace(image, ctx.outputs.path(final))
        _publish(ctx, kernel, cmdline, loader)


def write_kernel_iso(ctx: FormatContext, rootfs_tar: Path) -> None:
    """``kernel+iso``: ``NAME.iso`` (ISO 9660 + Rock Ridge + Joliet, no boot loader, ``xorriso``) +
    kernel, cmdline, root loader."""
    final = f"{ctx.base}.iso"
    _say(ctx, final)
    with scratch(ctx, "kiso") as work:
        loader = _loader(ctx, rootfs_tar, work)
        kernel, cmdline, tree = extract_root(rootfs_tar, work, ctx.epoch)
        image = work / "root.iso"
        # SOURCE_DATE_EPOCH fixes xorriso's volume dates and UUID; the tree's times are already fixed.
        runner.run(
            ["xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-joliet-long", "-V", "LinuxKit", "-o", image, tree],
            capture=True,
            extra_env={"SOURCE_DATE_EPOCH": str(ctx.epoch)},
        )
        os.replace(image, ctx.outputs.path(final))
        _publish(ctx, kernel, cmdline, loader)
