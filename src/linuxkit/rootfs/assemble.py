"""Assemble the one rootfs tar from a config, in upstream's order (``moby/build/build.go Build``).

kernel → init images (at ``/``, apk databases merged) → volumes → onboot → onshutdown →
services (OCI bundles) → files → format additions (e.g. ``docker``'s ``Dockerfile``) → end.
Everything is streamed: entries go from the image layers to ``out`` one at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, cast

from .. import log
from ..config import schema
from ..containerspec.ids import allocate_ids, resolve_id
from ..containerspec.oci import container_spec, runtime_json, runtime_mount
from ..errors import BuildError, LinuxKitError, Location
from ..gocompat.path import go_join
from ..oci import reference
from ..oci.image import ImageSource, Platform
from ..tar.header import DEFAULT_MTIME, DIR, LINK, REG, Header
from ..tar.reader import Entry
from ..tar.writer import TarSink, TarWriter, copy_data
from .files import MetadataDump, write_files
from .flatten import flatten
from .kernel import KernelImageError, write_kernel
from .sanitise import RESOLVCONF_SYMLINK, image_entries, prefix_dirs, records

APK_DB = "lib/apk/db/installed"
VOLUMES_DIR = "containers/volumes"

ImageLookup = Callable[[str, Platform], ImageSource]
#: ``(reference, platforms)`` → the OCI image layout of that image as tar entries, names relative
#: to the layout (volumes with ``format: oci``; see :mod:`.ocivolume`).
OciLayoutLookup = Callable[[str, Sequence[Platform]], Iterable[Entry]]
#: A format's extra entries, written after ``files`` (``docker``: the ``Dockerfile``).
Addition = Callable[[TarSink], None]
#: ``--input-tar`` seam: ``(place, source, sink)`` → True when the part was copied from an old tar
#: (place: ``kernel``, ``init[i]``, ``volumes[i]``, ``onboot[i]``...; see :mod:`.inputtar`).
ReuseHook = Callable[[str, str, TarSink], bool]
#: Called with (ref, prefix) after an image's files were written below ``prefix`` (SBOM collection).
ImageHook = Callable[[str, str], None]
#: ``(section, index)`` → where the YAML names the image of ``section[index]`` (``("kernel", None)``:
#: the kernel's); errors found in an image once it is read are reported there.
ImageLocator = Callable[[str, int | None], Location | None]


class ContainerSpecLike(Protocol):
    @property
    def config_json(self) -> bytes: ...

    @property
    def runtime(self) -> dict[str, Any]: ...

    @property
    def readonly(self) -> bool: ...


@dataclass(frozen=True)
class SpecApi:
    """The spec functions the assembler uses (injectable for tests)."""

    allocate_ids: Callable[[schema.Moby], dict[str, int]]
    resolve_id: Callable[[int | str | None, dict[str, int]], int]
    container_spec: Callable[[schema.Image, dict[str, Any], dict[str, int], Mapping[str, schema.Volume]], Any]
    runtime_json: Callable[[dict[str, Any]], bytes]
    runtime_mount: Callable[[str, str, str, Sequence[str]], dict[str, Any]]

    @classmethod
    def default(cls) -> SpecApi:
        return cls(allocate_ids, resolve_id, container_spec, runtime_json, runtime_mount)


_LABELS = {"onboot": "onboot", "onshutdown": "onshutdown", "services": "service"}
_RUNTIME_KEYS = ("cgroups", "mounts", "mkdir", "interfaces", "bindNS", "namespace")


def source_name(image: str) -> str:
    """The reference string upstream records (``ref.String()``): expanded, no ``:latest`` added."""
    return str(reference.parse(image))


def write_entries(sink: TarSink, entries: Iterable[Entry | Header]) -> None:
    for item in entries:
        hdr, data = (item, None) if isinstance(item, Header) else (item.header, item.data)
        sink.write_header(hdr)
        if data is not None and hdr.has_data:
            copy_data(sink, data, hdr.size)


class ApkDbSink:
    """Upstream's ``apkTarWriter``: remembers each ``lib/apk/db/installed`` written at ``/`` and,
    when there were several, appends one more entry with all of them (each followed by ``\\n\\n``).

    The databases are small text files and are kept in memory, as upstream does.
    """

    def __init__(self, inner: TarSink, location: str) -> None:
        self._inner = inner
        self._location = location
        self._dbs: list[bytes] = []
        self._current: bytearray | None = None

    def write_header(self, hdr: Header) -> None:
        if self._current is not None:
            self._dbs.append(bytes(self._current))
            self._current = None
        if hdr.name == APK_DB:
            self._current = bytearray()
        self._inner.write_header(hdr)

    def write(self, data: bytes) -> None:
        if self._current is not None:
            self._current += data
        self._inner.write(data)

    def write_db(self) -> None:
        if len(self._dbs) > 1:
            size = sum(len(db) + 2 for db in self._dbs)
            pax = {"LINUXKIT.source": "LINUXKIT.apkinit", "LINUXKIT.location": self._location}
            self._inner.write_header(Header(name=APK_DB, typeflag=REG, mode=0o644, size=size, pax=pax, want_pax=False))
            for db in self._dbs:
                self._inner.write(db)
                self._inner.write(b"\n\n")
        self._dbs = []


@dataclass
class _Build:
    moby: schema.Moby
    images: ImageLookup
    sink: TarSink
    platform: Platform
    spec: SpecApi
    ids: dict[str, int]
    oci_layout: OciLayoutLookup | None
    reuse: ReuseHook | None
    decompress: bool
    on_image: ImageHook | None = None
    locate: ImageLocator | None = None

    @contextmanager
    def located(
        self, section: str, index: int | None, kinds: tuple[type[LinuxKitError], ...] = (LinuxKitError,)
    ) -> Iterator[None]:
        """Errors of ``kinds`` raised inside say where the YAML names the image of ``section[index]``."""
        try:
            yield
        except kinds as exc:
            if self.locate is not None:
                exc.locate(self.locate(section, index), f"{section}{'' if index is None else f'[{index}]'}.image")
            raise

    def reused(self, location: str, source: str, sink: TarSink) -> bool:
        return self.reuse is not None and self.reuse(location, source, sink)

    def image_tar(self, sink: TarSink, location: str, ref: str | None, prefix: str, resolv: str) -> None:
        """Upstream's ``ImageTar``: prefix directories, then the sanitised image below ``prefix``."""
        write_entries(sink, prefix_dirs(prefix, location, ref or "empty"))
        if ref is None:
            return
        source = self.images(ref, self.platform)
        with closing(flatten(source)) as flat:  # closed on errors too: stops the layer's read-ahead
            write_entries(sink, image_entries(flat, prefix=prefix, location=location, source=ref, resolv=resolv))
        if self.on_image is not None:
            self.on_image(ref, prefix)

    def kernel(self) -> None:
        kernel = self.moby.kernel
        if kernel is None or not kernel.image:
            return
        ref = source_name(kernel.image)
        if self.reused("kernel", ref, self.sink):
            return
        log.info(f"Extract kernel image: {ref}")
        source = self.images(ref, self.platform)
        with closing(flatten(source)) as flat:
            entries = image_entries(flat, prefix="", location="kernel", source=ref)
            with self.located("kernel", None, (KernelImageError,)):
                write_kernel(entries, self.sink, kernel, source=ref, decompress=self.decompress)
        if self.on_image is not None:  # as upstream's ImageTar("kernel", ...): the kernel's SBOM too
            self.on_image(ref, "")

    def init(self, apk: ApkDbSink) -> None:
        if self.moby.init:
            log.info("Add init containers:")
        for i, image in enumerate(self.moby.init or []):
            ref, location = source_name(image), f"init[{i}]"
            if self.reused(location, ref, apk):
                continue
            log.info(f"Process init image: {ref}")
            self.image_tar(apk, location, ref, "", RESOLVCONF_SYMLINK)
        apk.write_db()

    def volumes(self, apk: ApkDbSink) -> None:
        if self.moby.volumes:
            log.info("Add volumes:")
        for i, vol in enumerate(self.moby.volumes or []):
            log.info(f"Process volume image: {vol.name}")
            # Upstream compares and copies with the raw image string, and not through the apk sink.
            if self.reused(f"volumes[{i}]", vol.image or "", self.sink):
                continue
            ref = source_name(vol.image) if vol.image else None
            location = f"volume[{i}]"
            base = go_join(VOLUMES_DIR, vol.name or "")
            lower = base + "/lower/"
            if ref is None or vol.format in (None, "", "filesystem"):
                self.image_tar(apk, location, ref, lower, RESOLVCONF_SYMLINK)
            else:
                self.oci_volume(apk, location, ref, lower, [Platform.parse(p) for p in vol.platforms or []])
            for sub in ("tmp", "merged"):
                hdr = Header(
                    name=base + f"/{sub}/",
                    typeflag=DIR,
                    mode=0o755,
                    mtime=DEFAULT_MTIME,
                    pax=records("linuxkit.volumes", location),
                )
                apk.write_header(hdr)

    def oci_volume(self, sink: TarSink, location: str, ref: str, prefix: str, platforms: list[Platform]) -> None:
        """Upstream's ``ImageOCITar``: the image as an OCI layout below ``prefix``."""
        write_entries(sink, prefix_dirs(prefix, location, ref))
        if self.oci_layout is None:
            raise BuildError(f"volume image {ref}: the OCI layout format is not available in this build")
        for entry in self.oci_layout(ref, platforms):
            hdr = entry.header.copy(want_pax=True)
            hdr.pax = {**(hdr.pax or {}), **records(ref, location)}
            hdr.name = prefix + hdr.name
            if hdr.typeflag == LINK:
                hdr.linkname = prefix + hdr.linkname
            write_entries(sink, [Entry(hdr, entry.data)])

    def bundles(self, section: str, images: Sequence[schema.Image], dup: dict[str, str]) -> None:
        if images:
            log.info(f"Add {_LABELS[section]} containers:")
        volumes = {v.name or "": v for v in self.moby.volumes or []}
        for index, image in enumerate(images):
            ref, location = source_name(image.image), f"{section}[{index}]"
            if self.reused(location, ref, self.sink):
                continue
            prefix = "" if section == "services" else f"{index:03d}-"
            log.info(f"  Create OCI config for {image.image}")
            source = self.images(ref, self.platform)
            with self.located(section, index):  # the label, the settings, the volumes it binds
                spec = cast(ContainerSpecLike, self.spec.container_spec(image, source.config, self.ids, volumes))
            self.bundle(go_join("containers", section, prefix + image.name), location, ref, spec, dup)

    def bundle(self, path: str, location: str, ref: str, spec: ContainerSpecLike, dup: dict[str, str]) -> None:
        """Upstream's ``ImageBundle``: rootfs (or lower/tmp/rootfs), config.json, runtime.json."""
        readonly = spec.readonly
        root = go_join(path, "rootfs" if readonly else "lower")
        elsewhere = dup.get(ref)
        if elsewhere is None:
            self.image_tar(self.sink, location, ref, root + "/", "")
            dup[ref] = root
        else:
            write_entries(self.sink, prefix_dirs(path + "/", location, ref))
            root = elsewhere

        def entry(name: str, typeflag: str = DIR, mode: int = 0o755, size: int = 0) -> Header:
            return Header(
                name=name, typeflag=typeflag, mode=mode, size=size, mtime=DEFAULT_MTIME, pax=records(ref, location)
            )

        self.sink.write_header(entry(go_join(path, "config.json"), REG, 0o644, len(spec.config_json)))
        self.sink.write(spec.config_json)
        rootfs = go_join(path, "rootfs")
        mount = self.spec.runtime_mount
        if not readonly:
            tmp = go_join(path, "tmp")
            write_entries(self.sink, [entry(tmp), entry(rootfs)])
            overlay = [f"lowerdir=/{root}", f"upperdir=/{tmp}/upper", f"workdir=/{tmp}/work"]
            mounts = [
                mount(f"/{tmp}", "tmpfs", "tmpfs", []),
                mount(f"/{tmp}", "", "", ["remount", "private"]),
                mount(f"/{rootfs}", "overlay", "overlay", overlay),
            ]
        else:
            if elsewhere is not None:
                self.sink.write_header(entry(rootfs))
            mounts = [mount(f"/{rootfs}", "", f"/{root}", ["bind"])]
        runtime = with_mounts(spec.runtime, mounts)
        raw = self.spec.runtime_json(runtime)
        self.sink.write_header(entry(go_join(path, "runtime.json"), REG, 0o644, len(raw)))
        self.sink.write(raw)


def with_mounts(runtime: Mapping[str, Any], first: list[dict[str, Any]]) -> dict[str, Any]:
    """``runtime`` with ``first`` prepended to its mounts, keeping Go's key order."""
    mounts = first + list(runtime.get("mounts") or [])
    if "mounts" in runtime:
        return {k: (mounts if k == "mounts" else v) for k, v in runtime.items()}
    known = {k: runtime[k] for k in _RUNTIME_KEYS if k in runtime}
    known["mounts"] = mounts
    ordered = {k: known[k] for k in _RUNTIME_KEYS if k in known}
    return {**ordered, **{k: v for k, v in runtime.items() if k not in ordered}}


def oci_volumes(moby: schema.Moby, reused: Collection[str] = ()) -> list[tuple[str, list[Platform]]]:
    """``(reference, platforms)`` of each ``format: oci`` volume that will be written (not reused)."""
    return [
        (source_name(vol.image), [Platform.parse(p) for p in vol.platforms or []])
        for i, vol in enumerate(moby.volumes or [])
        if vol.image and vol.format == "oci" and f"volumes[{i}]" not in reused
    ]


def images_read(moby: schema.Moby, reused: Collection[str] = ()) -> set[str]:
    """The normalised references looked up through :data:`ImageLookup` by :func:`assemble`, given
    the places copied from an input tar (``format: oci`` volumes are read as indexes instead)."""
    refs: list[str] = []
    if moby.kernel and moby.kernel.image and "kernel" not in reused:
        refs.append(moby.kernel.image)
    refs += [ref for i, ref in enumerate(moby.init or []) if f"init[{i}]" not in reused]
    for i, vol in enumerate(moby.volumes or []):
        if vol.image and vol.format in (None, "", "filesystem") and f"volumes[{i}]" not in reused:
            refs.append(vol.image)
    for section in _LABELS:
        images: Sequence[schema.Image] = getattr(moby, section) or []
        refs += [img.image for i, img in enumerate(images) if f"{section}[{i}]" not in reused]
    return {reference.normalize(ref) for ref in refs}


@dataclass(frozen=True)
class RootfsSettings:
    """Everything :func:`assemble` needs besides the config, the images and the output."""

    arch: str
    base_dir: Path
    metadata_dump: MetadataDump
    decompress_kernel: bool = False
    additions: Sequence[Addition] = ()
    oci_layout: OciLayoutLookup | None = None
    reuse: ReuseHook | None = None
    spec: SpecApi | None = None
    on_image: ImageHook | None = None
    #: where the YAML names each image (errors found once an image is read are located there)
    locate: ImageLocator | None = None


def assemble_with(moby: schema.Moby, images: ImageLookup, out: IO[bytes], settings: RootfsSettings) -> None:
    """:func:`assemble` with its keyword arguments gathered in ``settings``."""
    writer = TarWriter(out)
    assemble_to_sink(moby, images, writer, settings)
    writer.close()


def assemble(
    moby: schema.Moby,
    images: ImageLookup,
    out: IO[bytes],
    *,
    arch: str,
    decompress_kernel: bool,
    base_dir: Path,
    metadata_dump: MetadataDump,
    additions: Sequence[Addition] = (),
    oci_layout: OciLayoutLookup | None = None,
    reuse: ReuseHook | None = None,
    spec: SpecApi | None = None,
    on_image: ImageHook | None = None,
) -> None:
    """Stream the rootfs tar of ``moby`` to ``out``.

    ``images(ref, platform)`` resolves an image; ``ref`` is the expanded reference upstream
    records in ``LINUXKIT.source`` (``docker.io/library/alpine:3.20``; no ``:latest`` is added).
    """
    settings = RootfsSettings(
        arch=arch,
        base_dir=base_dir,
        metadata_dump=metadata_dump,
        decompress_kernel=decompress_kernel,
        additions=additions,
        oci_layout=oci_layout,
        reuse=reuse,
        spec=spec,
        on_image=on_image,
    )
    assemble_with(moby, images, out, settings)


def assemble_to_sink(moby: schema.Moby, images: ImageLookup, sink: TarSink, settings: RootfsSettings) -> None:
    """The rootfs entries of ``moby``, in the order :func:`assemble` writes them, to ``sink``
    (e.g. a format that consumes them directly instead of a tar file). ``sink`` is not closed."""
    api = settings.spec or SpecApi.default()
    build = _Build(
        moby=moby,
        images=images,
        sink=sink,
        platform=Platform("linux", settings.arch),
        spec=api,
        ids=api.allocate_ids(moby),
        oci_layout=settings.oci_layout,
        reuse=settings.reuse,
        decompress=settings.decompress_kernel,
        on_image=settings.on_image,
        locate=settings.locate,
    )
    build.kernel()
    apk = ApkDbSink(sink, "init")
    build.init(apk)
    build.volumes(apk)
    dup: dict[str, str] = {}
    build.bundles("onboot", moby.onboot or [], dup)
    build.bundles("onshutdown", moby.onshutdown or [], dup)
    build.bundles("services", moby.services or [], dup)
    write_files(
        moby,
        sink,
        build.ids,
        base_dir=settings.base_dir,
        metadata_dump=settings.metadata_dump,
        resolve_id=api.resolve_id,
    )
    for addition in settings.additions:
        addition(sink)
