"""``linuxkit build``: load the config, find every image, assemble the one rootfs stream and hand
it to the requested formats, writing outputs atomically."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from . import log
from .config import schema
from .config.dump import metadata_file
from .config.load import default_package_resolver, load_configs
from .errors import LinuxKitError, Location, UserError
from .formats.registry import Format, FormatContext, validate_formats
from .formats.tarfmt import write_tar
from .images import ImageFinder, PackageBuilder, SignatureCheck, image_refs
from .oci import reference
from .oci.cache import Cache
from .oci.image import Platform
from .outputs import OutputSet, check_writable, full_disk_is_an_error
from .rootfs.assemble import Addition, RootfsSettings, assemble_to_sink, images_read, oci_volumes
from .rootfs.inputtar import InputTar
from .rootfs.ocivolume import ensure_index, layout_entries
from .sbom import SbomCollector, attestation_sboms
from .tar.header import DEFAULT_MTIME, REG, Header
from .tar.reader import Entry
from .tar.writer import TarSink

# ``linuxkit build --dry-run`` does not import this module (see linuxkit.cli.parser): what is here
# is imported for a build, which uses it. The boot loaders (formats.loaders), and with them the
# package builder and the Debian client (~85 ms of imports), are imported at the one step that uses
# them, for the formats that need them: most builds (tar, kernel+initrd, ...) never do.
if TYPE_CHECKING:
    from .formats.signing import SigningKey
    from .oci.registry import RegistryOptions
    from .packages.debian_image import DebianSettings


@dataclass(frozen=True)
class BuildOptions:
    configs: list[str]
    formats: list[str]
    name: str = ""
    out_dir: Path = Path(".")
    output_file: str = ""
    size_mb: int = 1024
    pull: bool = False
    docker: bool = False
    decompress_kernel: bool = False
    arch: str = "amd64"
    cache_dir: Path = Path(".")
    input_tar: Path | None = None
    sbom: str | None = "sbom.spdx.json"
    sbom_current_time: bool = False
    #: signs the EFI binaries of the EFI formats (``--sign-key``/``--sign-cert``); ``None``: unsigned
    signing: SigningKey | None = None
    #: appends a dm-verity hash tree to the root image, its root hash to the cmdline (``--verity``)
    verity: bool = False
    registry: RegistryOptions | None = field(default=None, compare=False)
    #: checks each image's signature in its registry (``--verify-key``, ``--verify-policy``); ``None``: none
    verify: SignatureCheck | None = field(default=None, compare=False)
    stdout: IO[bytes] | None = field(default=None, compare=False)
    #: Builds a ``@pkg:`` package (its directory) for a platform when its image is not in the cache.
    pkg_builder: PackageBuilder | None = field(default=None, compare=False)
    #: Debian settings (mirrors, download cache) for packages built on the way, e.g. the boot loaders;
    #: ``None``: the defaults. May be a function making them, called only when a build needs them
    #: (making them loads the package builder, which most builds never use).
    debian: DebianSettings | Callable[[], DebianSettings] | None = field(default=None, compare=False)


def _sbom_addition(collector: SbomCollector, filename: str) -> Addition:
    def add(sink: TarSink) -> None:
        data = collector.render()
        sink.write_header(Header(name=filename, typeflag=REG, mode=0o644, size=len(data), mtime=DEFAULT_MTIME))
        sink.write(data)

    return add


def _sbom_time(current: bool) -> datetime | None:
    if not current:
        return None
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return datetime.fromtimestamp(int(epoch), UTC) if epoch and epoch.isdigit() else datetime.now(UTC)


def rootfs_settings(opts: BuildOptions, cache: Cache, platform: Platform) -> RootfsSettings:
    additions: list[Addition] = []
    on_image: Callable[[str, str], None] | None = None
    if opts.sbom:
        when = _sbom_time(opts.sbom_current_time)
        collector = SbomCollector() if when is None else SbomCollector(build_time=when)

        def on_image(ref: str, prefix: str) -> None:
            for doc in attestation_sboms(cache, reference.normalize(ref), platform):
                collector.add(prefix, doc, source=ref)

        additions.append(_sbom_addition(collector, opts.sbom))
    return RootfsSettings(
        arch=opts.arch,
        base_dir=Path.cwd(),
        metadata_dump=metadata_file,
        decompress_kernel=opts.decompress_kernel,
        additions=tuple(additions),
        on_image=on_image,
    )


def _write_streamable(opts: BuildOptions, write: Callable[[IO[bytes]], None]) -> list[Path]:
    if opts.output_file == "-":
        out = opts.stdout or sys.stdout.buffer
        write(out)
        out.flush()
        return []
    target = Path(opts.output_file)
    place = (str(target), target.parent, "free some space there, or write elsewhere with --o")
    with full_disk_is_an_error([place]), OutputSet() as outputs:
        with outputs.open(opts.output_file) as fh:
            write(fh)
        return outputs.commit()


_OUT_HINT = "free some space there, or write elsewhere with --dir"
_TMP_HINT = "free some space there, or point TMPDIR at a directory with more room"


def source_date_epoch() -> int:
    """``SOURCE_DATE_EPOCH`` (seconds), else 0: the one time reproducible outputs may carry."""
    text = os.environ.get("SOURCE_DATE_EPOCH", "")
    if not text:
        return 0
    try:
        return int(text)
    except ValueError as exc:
        raise UserError(f"SOURCE_DATE_EPOCH={text!r} is not a number of seconds") from exc


def run_build(opts: BuildOptions) -> list[Path]:
    """Run one build; returns the files written."""
    if opts.docker:
        log.warn("--docker: looking images up in a Docker daemon is not supported; using the linuxkit cache")
    packages: dict[str, str] = {}

    def resolve_package(pkg_dir: str) -> str:
        ref = default_package_resolver(pkg_dir)
        packages[reference.normalize(ref)] = pkg_dir
        return ref

    with log.step("Loading configuration"):
        loaded = load_configs(opts.configs, pkg_resolver=resolve_package)
    formats = validate_formats(opts.formats, opts.arch)
    if opts.verity:
        from .formats.verity import check_formats, root_image_first

        check_formats([f.name for f in formats])
        formats = root_image_first(formats)
    if not formats[0].streamed:
        check_writable(opts.out_dir)
    elif opts.output_file != "-":
        check_writable(Path(opts.output_file).parent)
    platform = Platform("linux", opts.arch)
    cache = Cache(opts.cache_dir)
    finder = ImageFinder(
        cache, platform, registry=opts.registry, always_pull=opts.pull, packages=packages, pkg_builder=opts.pkg_builder
    )
    reuse = None
    if opts.input_tar is not None:
        reuse = InputTar.load(opts.input_tar, loaded.moby)
    reused = reuse.reused_places() if reuse is not None else set()
    # images only read as OCI layouts, or only by parts copied from the input tar, are not checked here
    not_read = {reference.normalize(ref) for ref, _ in image_refs(loaded)} - images_read(loaded.moby, reused)
    with log.step("Checking images"):
        finder.check_all(loaded, volume_oci=not_read)
        for ref, volume_platforms in oci_volumes(loaded.moby, reused):
            ensure_index(cache, ref, volume_platforms, registry=opts.registry, always_pull=opts.pull)
    if opts.verify is not None:
        with log.step("Verifying image signatures"):
            finder.verify_signatures(loaded, opts.verify)

    def oci_layout(ref: str, volume_platforms: Sequence[Platform]) -> Iterable[Entry]:
        return layout_entries(cache, ref, volume_platforms)

    def locate(section: str, index: int | None) -> Location | None:
        return loaded.locate(section, index, "image")

    settings = replace(rootfs_settings(opts, cache, platform), reuse=reuse, oci_layout=oci_layout, locate=locate)
    moby: schema.Moby = loaded.moby
    if formats[0].stream_writer is not None:
        writer = formats[0].stream_writer
        target = "stdout" if opts.output_file == "-" else opts.output_file
        with log.step(f"Writing {formats[0].name} to {target}"):
            return _write_streamable(opts, lambda out: writer(moby, finder, out, settings))
    base = opts.out_dir / opts.name

    def context(outputs: OutputSet, boot_files: Path | None = None, verity_tools: Path | None = None) -> FormatContext:
        return FormatContext(
            base,
            opts.size_mb,
            opts.arch,
            opts.decompress_kernel,
            outputs,
            boot_files=boot_files,
            verity_tools=verity_tools,
            epoch=source_date_epoch(),
            signing=opts.signing,
        )

    entries_writer = formats[0].entries_writer if len(formats) == 1 else None
    if entries_writer is not None:
        # Written straight from the assembler: no rootfs tar to write to disk and read again.
        name = formats[0].name
        with full_disk_is_an_error([(f"{name} to {base}", base.parent, _OUT_HINT)]), OutputSet() as outputs:
            with log.step(f"Assembling the root filesystem and writing {name}"):
                entries_writer(context(outputs), lambda sink: assemble_to_sink(moby, finder, sink, settings))
            written = outputs.commit()
    else:
        written = _write_from_rootfs_tar(opts, formats, moby, finder, settings, cache, context)
    for path in written:
        log.info(f"  {path}")
    return written


def _write_from_rootfs_tar(
    opts: BuildOptions,
    formats: list[Format],
    moby: schema.Moby,
    finder: ImageFinder,
    settings: RootfsSettings,
    cache: Cache,
    context: Callable[[OutputSet, Path | None, Path | None], FormatContext],
) -> list[Path]:
    """Assemble the rootfs tar into a temporary file, then let each format read it."""
    base = opts.out_dir / opts.name
    names = ", ".join(f.name for f in formats)
    temp_place = (f"temporary files to {tempfile.gettempdir()}", Path(tempfile.gettempdir()), _TMP_HINT)
    with (
        full_disk_is_an_error([(f"{names} to {base}", base.parent, _OUT_HINT), temp_place]),
        tempfile.TemporaryDirectory(prefix="linuxkit-build-") as tmp,
        OutputSet() as outputs,
    ):
        rootfs = Path(tmp) / "rootfs.tar"
        rootfs_place = (f"the root file system to {rootfs}", Path(tmp), _TMP_HINT)
        with (
            log.step("Assembling the root filesystem"),
            full_disk_is_an_error([rootfs_place]),
            open(rootfs, "wb") as fh,
        ):
            write_tar(moby, finder, fh, settings)
        boot_files = None
        if any(f.boot_loaders for f in formats):
            from .formats.loaders import boot_files_tree  # see the imports at the top

            with log.step("Preparing boot loaders"):
                boot_files = boot_files_tree(
                    cache, Platform("linux", opts.arch), Path(tmp) / "loaders", debian=opts.debian
                )
        verity_tools = None
        if opts.verity:
            from .formats.loaders import DMSETUP_DIR, boot_files_tree

            with log.step("Preparing dmsetup for the root loader (--verity)"):
                verity_tools = boot_files_tree(
                    cache, Platform("linux", opts.arch), Path(tmp) / "dmsetup", debian=opts.debian, package=DMSETUP_DIR
                )
        ctx = context(outputs, boot_files, verity_tools)
        for fmt in formats:
            assert fmt.writer is not None
            with log.step(f"Writing {fmt.name}"):
                fmt.writer(ctx, rootfs)
        return outputs.commit()


__all__ = ["BuildOptions", "LinuxKitError", "run_build"]
