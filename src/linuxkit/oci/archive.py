"""``cache import`` and ``cache export``: OCI layout tars in, OCI / docker / filesystem tars out.

Import reads an OCI image layout tar as a stream (plain or compressed), stores every
``blobs/sha256/<hex>`` member (verified against its name), then names each descriptor of its
``index.json``: from ``io.containerd.image.name`` as upstream does, and also from
``org.opencontainers.image.ref.name`` when that holds a full reference with a registry host
(upstream leaves such an image nameless; a bare tag such as ``3.20`` names nothing here either).

Export writes one platform's image: ``oci`` (an OCI layout tar with both name annotations, so
``cache import`` of it names it again), ``docker`` (``docker load`` format as go-containerregistry's
``tarball.Write``: ``sha256:<hex>`` config, ``<hex>.tar.gz`` layers, ``manifest.json``) or
``filesystem`` (the flattened root filesystem). Tars are deterministic: fixed order, mtime 0,
owner 0:0, modes 0644/0755.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from ..errors import BuildError, UserError
from . import digest as _digest
from . import jsonfmt, reference
from .cache import Cache, CachedImage, damaged
from .descriptor import Descriptor
from .image import Platform
from .layout import OCI_LAYOUT_CONTENT, AtomicFile
from .mediatypes import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    OCI_INDEX,
    OCI_MANIFEST,
    is_image_manifest,
    is_index,
)

FORMATS = ("oci", "docker", "filesystem")
MAX_INDEX_SIZE = 16 << 20


@dataclass(frozen=True)
class ImportedImage:
    """One descriptor of an imported tar's ``index.json`` and the name it got (``None``: unnamed)."""

    name: str | None
    descriptor: Descriptor


def _member_path(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


def is_full_reference(text: str) -> bool:
    """Whether ``text`` starts with a registry host (``docker.io/...``, ``localhost:5000/...``)."""
    first, sep, _ = text.partition("/")
    if not sep or not ("." in first or ":" in first or first == "localhost"):
        return False
    try:
        reference.parse(text)
    except UserError:
        return False
    return True


def import_name(desc: Descriptor) -> str | None:
    containerd = desc.annotations.get(ANNOTATION_IMAGE_NAME)
    if containerd:
        return containerd
    ref_name = desc.annotations.get(ANNOTATION_REF_NAME)
    if ref_name and is_full_reference(ref_name):
        return ref_name
    return None


def _true_media_type(cache: Cache, desc: Descriptor) -> Descriptor:
    """Fix the media type of a root descriptor from the blob it points at.

    Upstream's ``cache export --format oci`` labels an image manifest as an image index.
    """
    if not (is_index(desc.media_type) or is_image_manifest(desc.media_type)):
        return desc
    try:
        obj = cache.layout.read_json_blob(desc.digest, desc.size)
    except (OSError, ValueError, _digest.DigestError):
        return desc
    actual = obj.get("mediaType")
    if not isinstance(actual, str) or not (is_index(actual) or is_image_manifest(actual)):
        actual = OCI_INDEX if "manifests" in obj else OCI_MANIFEST if "config" in obj else desc.media_type
    return desc if actual == desc.media_type else replace(desc, media_type=actual)


def import_archive(cache: Cache, stream: IO[bytes], *, source: str = "archive") -> list[ImportedImage]:
    """Load an OCI layout tar into ``cache``; returns the descriptors of its index and their names."""
    layout = cache.layout
    layout.ensure()
    cache.entries()  # a broken index.json is reported before the archive is read
    index_data: bytes | None = None
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                path = _member_path(member.name)
                if member.isdir():
                    continue
                if path == "index.json" and member.isfile():
                    if member.size > MAX_INDEX_SIZE:
                        raise UserError(f"{source}: index.json is too large ({member.size} bytes)")
                    f = tar.extractfile(member)
                    index_data = f.read() if f is not None else b""
                elif path.startswith("blobs/"):
                    parts = path.split("/")
                    if len(parts) != 3 or not member.isfile():
                        continue
                    if parts[1] != _digest.ALGORITHM or not _digest.is_valid(f"{parts[1]}:{parts[2]}"):
                        raise UserError(f"{source}: invalid blob file name {path}")
                    f = tar.extractfile(member)
                    if f is None:
                        continue
                    try:
                        layout.write_blob(f, f"{parts[1]}:{parts[2]}", member.size)
                    except _digest.DigestError as exc:
                        raise UserError(f"{source}: {path}: {exc.message}") from exc
    except tarfile.TarError as exc:
        raise UserError(f"{source}: not a readable tar archive ({exc})") from exc
    if index_data is None:
        raise UserError(f"{source}: not an OCI image layout archive (no index.json)")
    try:
        obj = jsonfmt.loads(index_data, f"{source}: index.json")
        manifests = obj.get("manifests") or [] if isinstance(obj, dict) else None
        if not isinstance(manifests, list):
            raise ValueError(f"{source}: index.json has no manifests list")
        descs = [Descriptor.from_json(m, f"{source}: index.json manifests[{i}]") for i, m in enumerate(manifests)]
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    out = []
    for desc in map(lambda d: _true_media_type(cache, d), descs):
        name = import_name(desc)
        if name is not None:
            name = cache.tag(name, desc)
        out.append(ImportedImage(name, desc))
    return out


# -- export ------------------------------------------------------------------------------------


def _info(name: str, size: int, *, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if directory:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.mode = 0o644
        info.size = size
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


def _add_stream(tar: tarfile.TarFile, name: str, size: int, stream: IO[bytes]) -> None:
    """Copy exactly ``size`` bytes, then make the verifying stream check its end."""
    with stream:
        tar.addfile(_info(name, size), stream)
        if stream.read(1):
            raise _digest.DigestError(f"{name}: longer than {size} bytes")


def write_oci_tar(image: CachedImage, out: IO[bytes], name: str) -> None:
    """The image as an OCI layout tar whose index names it ``name`` (both annotations)."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "oci-layout", OCI_LAYOUT_CONTENT)
        tar.addfile(_info("blobs/", 0, directory=True))
        tar.addfile(_info("blobs/sha256/", 0, directory=True))
        cfg = image.config_descriptor
        _add_bytes(tar, f"blobs/sha256/{_digest.hex_of(cfg.digest)}", image.raw_config())
        seen: set[str] = set()
        for i, layer in enumerate(image.layers):
            if layer.digest in seen:
                continue
            seen.add(layer.digest)
            _add_stream(tar, f"blobs/sha256/{_digest.hex_of(layer.digest)}", layer.size, image.open_compressed_layer(i))
        _add_bytes(tar, f"blobs/sha256/{_digest.hex_of(image.digest)}", image.raw_manifest())
        root = Descriptor(image.descriptor.media_type, image.digest, image.descriptor.size).named(name)
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [root.to_json()]}
        _add_bytes(tar, "index.json", jsonfmt.dumps(index, indent=3))


def docker_manifest(image: CachedImage, name: str) -> bytes:
    """``manifest.json`` of a ``docker save`` tar, as go-containerregistry writes it."""
    has_digest = reference.parse(name).digest is not None
    entry = {
        "Config": image.config_descriptor.digest,
        "RepoTags": None if has_digest else [name],
        "Layers": [f"{_digest.hex_of(layer.digest)}.tar.gz" for layer in image.layers],
    }
    return jsonfmt.dumps([entry])


def write_docker_tar(image: CachedImage, out: IO[bytes], name: str) -> None:
    """The image as a ``docker load`` tar tagged ``name``."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, image.config_descriptor.digest, image.raw_config())
        seen: set[str] = set()
        for i, layer in enumerate(image.layers):
            if layer.digest in seen:
                continue
            seen.add(layer.digest)
            _add_stream(tar, f"{_digest.hex_of(layer.digest)}.tar.gz", layer.size, image.open_compressed_layer(i))
        _add_bytes(tar, "manifest.json", docker_manifest(image, name))


def export_image(
    cache: Cache,
    ref: str,
    out: IO[bytes],
    *,
    fmt: str = "oci",
    platform: Platform,
    name: str | None = None,
) -> CachedImage:
    """Write image ``ref`` for ``platform`` to ``out`` in format ``fmt``; ``name`` overrides the
    name recorded in ``oci``/``docker`` output."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    image = cache.resolve(ref, platform)
    if image is None:
        offered = cache.platforms(ref)
        if offered:
            raise UserError(
                f"image {ref} in the cache has no {platform} image",
                hint="it has: " + ", ".join(str(p) for p in offered),
            )
        raise UserError(f"image {ref} is not in the cache {cache.root}", hint="see `linuxkit cache ls`")
    label = reference.normalize(name) if name else image.name
    try:
        if fmt == "oci":
            write_oci_tar(image, out, label)
        elif fmt == "docker":
            write_docker_tar(image, out, label)
        else:
            from ..rootfs.flatten import write_flattened  # type: ignore[import-not-found,unused-ignore]

            write_flattened(image, out)
    except _digest.DigestError as exc:
        raise damaged(image.name, exc) from exc
    return image


@contextlib.contextmanager
def output_stream(outfile: str, stdout: IO[bytes] | None = None) -> Iterator[IO[bytes]]:
    """``-`` → stdout; a path → a temporary file renamed to it only when the block succeeds."""
    if outfile == "-":
        target = stdout if stdout is not None else sys.stdout.buffer
        yield target
        target.flush()
        return
    if not outfile:
        raise UserError("an output file is needed", hint="pass --outfile FILE, or --outfile - for stdout")
    path = Path(outfile)
    try:
        atomic = AtomicFile(path)
    except OSError as exc:
        raise BuildError(f"cannot write {outfile}: {exc.strerror}") from exc
    try:
        yield atomic.file
        atomic.commit()
    finally:
        atomic.abort()


def export_to(
    cache: Cache,
    ref: str,
    outfile: str,
    *,
    fmt: str = "oci",
    platform: Platform,
    name: str | None = None,
    stdout: IO[bytes] | None = None,
) -> CachedImage:
    """:func:`export_image` into ``outfile`` (``-`` for stdout), written atomically."""
    with output_stream(outfile, stdout) as out:
        return export_image(cache, ref, out, fmt=fmt, platform=platform, name=name)
