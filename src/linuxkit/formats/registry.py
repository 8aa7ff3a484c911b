"""The one table of output formats: every fact about a format is in its :class:`Format` record.

Each record says what the format reads (its writers: the stream itself, the assembled entries or the
rootfs tar file), the files it writes (suffixes after ``NAME``), whether it needs the boot loaders,
the architectures it builds for, whether it must be built alone, and who writes it. The writers are
referenced by module and function and imported only when a build writes that format: importing
every writer (pycdlib, pyelftools, ...) cost 50-100 ms of each build, and ``linuxkit --help`` lists
the formats from this table.

The build loops over the records it is given (:func:`validate_formats`); the checks of a list of
formats (unknown, not yet written, must be alone, architecture, two formats writing one file) and
the names ``--help`` shows all come from here.

The records are NamedTuples: ``build --dry-run`` checks ``--format`` against this table, and
making them dataclasses cost 4 ms of its start (dataclasses compile their methods at import).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Generic, NamedTuple, ParamSpec, cast

from ..arch import normalize_arch
from ..errors import UserError

if TYPE_CHECKING:
    from pathlib import Path

    from ..config.schema import Moby
    from ..outputs import OutputSet
    from ..rootfs.assemble import ImageLookup, RootfsSettings
    from .initrd import RootfsFeed
    from .signing import SigningKey


class FormatContext(NamedTuple):
    """What a format writer gets besides the rootfs tar."""

    base: Path  # output path without suffix: DIR/NAME
    size_mb: int
    arch: str
    decompress_kernel: bool
    outputs: OutputSet
    #: Root of a Debian-layout tree holding boot loaders (isolinux, syslinux, systemd-boot, EFI stub), taken
    #: from a package image; ``None`` when the build has not provided one (formats that need it say so).
    boot_files: Path | None = None
    #: Fixed time for every timestamp a format writes (``SOURCE_DATE_EPOCH``, else 0).
    epoch: int = 0
    #: Signs the EFI binaries the format writes (``build --sign-key/--sign-cert``); ``None``: unsigned.
    signing: SigningKey | None = None
    #: ``build --verity``: the ``formats/dmsetup`` tree for the root loader; the root-image formats then
    #: append a dm-verity hash tree to their image (``formats/verity.py``). ``None``: no verity.
    verity_tools: Path | None = None


_P = ParamSpec("_P")


class Writer(NamedTuple, Generic[_P]):
    """A writer function named by its module (in this package) and name, imported on first call."""

    module: str
    function: str

    def resolve(self) -> Callable[_P, None]:
        found = getattr(importlib.import_module(f"{__package__}.{self.module}"), self.function)
        return cast("Callable[_P, None]", found)

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> None:
        self.resolve()(*args, **kwargs)


#: ``shared`` parts: files that several formats write with the same bytes, so they may be built together
KERNEL = "the kernel (boot/kernel)"
CMDLINE = "the kernel command line (boot/cmdline)"
ROOT_LOADER = "the root loader (an initrd mounting the root image)"


class Output(NamedTuple):
    """One file a format writes: ``NAME`` + ``suffix``."""

    suffix: str
    #: what the file holds when other formats write the same file with the same bytes (one of the
    #: constants above); ``None``: only this format writes this content
    shared: str | None = None
    #: written only when the image has that part (an empty kernel or cmdline is not written)
    optional: bool = False


class Format(NamedTuple):
    name: str
    #: the files written, as suffixes after ``NAME`` (tar and docker: the default ``--o`` file)
    outputs: tuple[Output, ...]
    #: needs the boot-loader files (isolinux, syslinux, systemd-boot, the EFI stub) of a package image
    boot_loaders: bool = False
    #: architectures (Go spelling) the format builds for; ``None``: any
    arches: tuple[str, ...] | None = None
    #: cannot be built together with any other format
    alone: bool = False
    #: writes the format from the rootfs tar file (``None``: stream formats and those not written yet)
    writer: Writer[[FormatContext, Path]] | None = None
    #: writes the format from the rootfs entries as they are assembled (a feed writing into a sink)
    entries_writer: Writer[[FormatContext, RootfsFeed]] | None = None
    #: writes the rootfs stream itself to ``out``
    stream_writer: Writer[[Moby, ImageLookup, IO[bytes], RootfsSettings]] | None = None

    @property
    def streamed(self) -> bool:
        """The format is the rootfs stream itself, to a file or stdout (``--o``); the others read the
        rootfs entries as they are assembled (``entries_writer``) or the rootfs tar file (``writer``)."""
        return self.stream_writer is not None

    @property
    def available(self) -> bool:
        """This version can write the format."""
        return self.writer is not None or self.stream_writer is not None


#: architectures of the BIOS formats (syslinux, isolinux: x86 code) and of the EFI ones (a UKI made with
#: systemd's EFI stub, booted as ``EFI/BOOT/BOOTX64.EFI`` or ``BOOTAA64.EFI``: formats/bootfiles.py)
BIOS_ARCHES = ("amd64",)
EFI_ARCHES = ("amd64", "arm64")


def _disk(name: str, suffix: str, module: str, function: str, arches: tuple[str, ...] = BIOS_ARCHES) -> Format:
    """A bootable image: one file, made with the boot loaders (x86_64 BIOS ones unless ``arches`` says)."""
    return Format(name, (Output(suffix),), boot_loaders=True, arches=arches, writer=Writer(module, function))


def _root_image(name: str, suffix: str, function: str) -> Format:
    """A root image + kernel, cmdline and the root loader (shared by all root-image formats)."""
    outputs = (
        Output("-kernel", KERNEL, optional=True),
        Output("-cmdline", CMDLINE, optional=True),
        Output(suffix),
        Output("-initrd.img", ROOT_LOADER),
    )
    return Format(name, outputs, writer=Writer("rootimage", function))


# Upstream's format names in its own order, then ours.
FORMATS: tuple[Format, ...] = (
    Format("tar", (Output(".tar"),), alone=True, stream_writer=Writer("tarfmt", "write_tar")),
    Format("docker", (Output(".docker"),), alone=True, stream_writer=Writer("tarfmt", "write_docker")),
    Format(
        "kernel+initrd",
        (Output("-kernel", KERNEL, optional=True), Output("-initrd.img"), Output("-cmdline", CMDLINE, optional=True)),
        writer=Writer("initrd", "write_kernel_initrd"),
        entries_writer=Writer("initrd", "write_kernel_initrd_entries"),
    ),
    Format(
        "tar-kernel-initrd",
        (Output("-initrd.tar"),),
        writer=Writer("initrd", "write_tar_kernel_initrd"),
        entries_writer=Writer("initrd", "write_tar_kernel_initrd_entries"),
    ),
    _disk("iso-bios", ".iso", "iso", "write_iso_bios"),
    _disk("iso-efi", "-efi.iso", "iso", "write_iso_efi", EFI_ARCHES),
    _disk("iso-efi-initrd", "-efi-initrd.iso", "iso", "write_iso_efi_initrd", EFI_ARCHES),
    _disk("raw-bios", "-bios.img", "disk", "write_raw_bios"),
    _disk("raw-efi", "-efi.img", "disk", "write_raw_efi", EFI_ARCHES),
    _root_image("kernel+squashfs", "-squashfs.img", "write_kernel_squashfs"),
    _root_image("kernel+erofs", "-erofs.img", "write_kernel_erofs"),
    _root_image("kernel+iso", ".iso", "write_kernel_iso"),
    _disk("aws", ".raw", "disk", "write_aws"),
    _disk("gcp", ".img.tar.gz", "disk", "write_gcp"),
    _disk("qcow2-efi", "-efi.qcow2", "disk", "write_qcow2_efi", EFI_ARCHES),
    _disk("qcow2-bios", ".qcow2", "disk", "write_qcow2_bios"),
    _disk("vhd", ".vhd", "disk", "write_vhd"),
    _disk("dynamic-vhd", ".vhd", "disk", "write_dynamic_vhd"),
    _disk("vmdk", ".vmdk", "disk", "write_vmdk"),
    # the Raspberry Pi boot partition's files (firmware, config.txt, cmdline.txt, device trees, kernel8.img,
    # initrd.img) as NAME.tar, as upstream (which chain-loads u-boot instead): docs/platform-rpi3.md
    Format("rpi3", (Output(".tar"),), arches=("arm64",), writer=Writer("rpi", "write_rpi3")),
    _disk("uki", ".efi", "uki", "write_uki", EFI_ARCHES),
    # ours: the same files in an SD-card image to dd (MBR + one FAT32 partition)
    Format("rpi3-img", (Output("-rpi3.img"),), arches=("arm64",), writer=Writer("rpi", "write_rpi3_img")),
)

_BY_NAME: Mapping[str, Format] = {fmt.name: fmt for fmt in FORMATS}


def all_formats() -> dict[str, Format]:
    """Every known format by name, in the table's order."""
    return dict(_BY_NAME)


def find(name: str) -> Format | None:
    return _BY_NAME.get(name)


def names() -> list[str]:
    """The format names in upstream's order (for ``--help`` and hints)."""
    return [fmt.name for fmt in FORMATS]


def split_formats(values: Sequence[str]) -> list[str]:
    """``-f a,b -f c`` → ``[a, b, c]`` (upstream splits each value on commas)."""
    out: list[str] = []
    for value in values:
        out.extend(value.split(","))
    return out


def check_alone(requested: Sequence[str]) -> None:
    """A format that must be built alone may not come with others."""
    if len(requested) > 1:
        for name in requested:
            fmt = _BY_NAME.get(name)
            if fmt is not None and fmt.alone:
                raise UserError(f"format type {name} must be the only format specified")


def clash(a: Format, b: Format) -> str | None:
    """The first file (``NAME`` + suffix, in ``a``'s order) that formats ``a`` and ``b`` would both
    write with different bytes; ``None`` when they can be built together."""
    theirs = {out.suffix: out.shared for out in b.outputs}
    for out in a.outputs:
        if out.suffix in theirs and (out.shared is None or theirs[out.suffix] != out.shared):
            return out.suffix
    return None


def _check_clashes(requested: Sequence[str]) -> None:
    chosen = [fmt for fmt in FORMATS if fmt.name in requested]  # in the table's order
    for i, a in enumerate(chosen):
        for b in chosen[i + 1 :]:
            suffix = clash(a, b)
            if suffix is not None:
                raise UserError(
                    f"formats {a.name} and {b.name} cannot be built together: both write NAME{suffix}",
                    hint="build them in two runs (or with different --name / --dir)",
                )


def check_arch(fmt: Format, arch: str) -> None:
    """A :class:`UserError` when ``fmt`` does not build for ``arch`` (either spelling)."""
    if fmt.arches is not None and normalize_arch(arch) not in fmt.arches:
        want = fmt.arches[0]
        raise UserError(
            f"{fmt.name} builds only for {' '.join(fmt.arches)} (this build is for {arch})",
            hint=f"use --arch {want} with an {want} kernel and images",
        )


def validate_formats(requested: Sequence[str], arch: str = "amd64") -> list[Format]:
    """Check a list of requested formats for a build for ``arch``; raise :class:`UserError` for
    unknown, unusable or clashing ones (in the order ``linuxkit build`` checks them)."""
    check_alone(requested)
    _check_clashes(requested)
    chosen: list[Format] = []
    for name in requested:
        fmt = _BY_NAME.get(name)
        if fmt is None:
            raise UserError(f"unknown format {name!r}", hint="known formats: " + ", ".join(names()))
        check_arch(fmt, arch)
        if not fmt.available:
            raise UserError(
                f"format {name!r} is not available in this version yet",
                hint="available now: " + ", ".join(f.name for f in FORMATS if f.available),
            )
        chosen.append(fmt)
    return chosen
