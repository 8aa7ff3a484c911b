"""Make OCI images for tests and benchmarks, independently of the code under test.

Images are written as OCI image-layout tar files (what ``linuxkit cache import`` reads and what
upstream's ``cache import`` reads), from a small declarative description of layers.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class Entry:
    """One tar entry of a layer. ``kind``: file, dir, symlink, hardlink, char, block, fifo."""

    name: str
    kind: str = "file"
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    target: str = ""  # link target
    major: int = 0
    minor: int = 0
    size: int | None = None  # for large generated files: size of deterministic pseudo-random data
    uname: str = ""
    gname: str = ""


def file(name: str, data: bytes | str = b"", mode: int = 0o644, **kw: Any) -> Entry:
    return Entry(name, "file", data.encode() if isinstance(data, str) else data, mode, **kw)


def directory(name: str, mode: int = 0o755, **kw: Any) -> Entry:
    return Entry(name, "dir", mode=mode, **kw)


def symlink(name: str, target: str, **kw: Any) -> Entry:
    return Entry(name, "symlink", mode=0o777, target=target, **kw)


def hardlink(name: str, target: str, **kw: Any) -> Entry:
    return Entry(name, "hardlink", target=target, **kw)


def device(name: str, kind: str, major: int, minor: int, mode: int = 0o666) -> Entry:
    return Entry(name, kind, mode=mode, major=major, minor=minor)


def whiteout(path: str) -> Entry:
    head, _, base = path.rstrip("/").rpartition("/")
    return file(f"{head}/.wh.{base}" if head else f".wh.{base}", b"", 0o644)


def opaque(directory_path: str) -> Entry:
    return file(f"{directory_path.rstrip('/')}/.wh..wh..opq", b"", 0o644)


class _PseudoRandom(io.RawIOBase):
    """Deterministic, incompressible bytes (seeded by the file name), produced in chunks."""

    def __init__(self, seed: str, size: int) -> None:
        self._rng = random.Random(seed)
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        want = min(len(b), self._left)
        b[:want] = self._rng.randbytes(want)
        self._left -= want
        return want


def layer_tar(entries: Iterable[Entry], out: io.BufferedIOBase | io.BytesIO) -> None:
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.mode, info.uid, info.gid, info.mtime = e.mode, e.uid, e.gid, 1_600_000_000
            info.uname, info.gname = e.uname, e.gname
            payload: io.RawIOBase | io.BytesIO | None = None
            if e.kind == "file":
                if e.size is not None:
                    info.size = e.size
                    payload = _PseudoRandom(e.name, e.size)
                else:
                    info.size = len(e.data)
                    payload = io.BytesIO(e.data)
            elif e.kind == "dir":
                info.type = tarfile.DIRTYPE
                # a declared size on a directory (which has no data): hostile-input tests
                info.size = e.size or 0
            elif e.kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, e.target
            elif e.kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, e.target
            elif e.kind in ("char", "block"):
                info.type = tarfile.CHRTYPE if e.kind == "char" else tarfile.BLKTYPE
                info.devmajor, info.devminor = e.major, e.minor
            elif e.kind == "fifo":
                info.type = tarfile.FIFOTYPE
            else:
                raise ValueError(e.kind)
            tar.addfile(info, payload)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class ImageSpec:
    """An image to make: layers (bottom first), config bits, the name it is stored under."""

    name: str  # full reference, e.g. docker.io/library/hello:1
    layers: Sequence[Sequence[Entry]]
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: list[str] | None = None
    workdir: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    arch: str = "amd64"


@dataclass
class _Blobs:
    blobs: dict[str, bytes] = field(default_factory=dict)

    def add(self, data: bytes) -> dict[str, Any]:
        digest = _sha(data)
        self.blobs[digest] = data
        return {"digest": digest, "size": len(data)}


def _image_manifest(spec: ImageSpec, blobs: _Blobs) -> dict[str, Any]:
    layer_descs, diff_ids = [], []
    for entries in spec.layers:
        raw = io.BytesIO()
        layer_tar(entries, raw)
        diff_ids.append(_sha(raw.getvalue()))
        compressed = gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)
        layer_descs.append({"mediaType": OCI_LAYER_GZIP, **blobs.add(compressed)})
    inner: dict[str, Any] = {}
    if spec.env is not None:
        inner["Env"] = spec.env
    if spec.entrypoint is not None:
        inner["Entrypoint"] = spec.entrypoint
    if spec.cmd is not None:
        inner["Cmd"] = spec.cmd
    if spec.workdir is not None:
        inner["WorkingDir"] = spec.workdir
    if spec.labels:
        inner["Labels"] = spec.labels
    config = {
        "architecture": spec.arch,
        "os": "linux",
        "config": inner,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    config_desc = {"mediaType": OCI_CONFIG, **blobs.add(json.dumps(config, sort_keys=True).encode())}
    return {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc, "layers": layer_descs}


def write_layout_tar(path: Path, specs: Sequence[ImageSpec], *, multiarch: bool = False) -> None:
    """Write ``specs`` as one OCI layout tar. With ``multiarch``, specs sharing a name become one
    index (one manifest per arch) stored under that name."""
    blobs = _Blobs()
    index_manifests: list[dict[str, Any]] = []
    by_name: dict[str, list[ImageSpec]] = {}
    for spec in specs:
        by_name.setdefault(spec.name, []).append(spec)
    for name, group in by_name.items():
        annotations = {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name}
        if multiarch:
            children = []
            for spec in group:
                manifest = json.dumps(_image_manifest(spec, blobs)).encode()
                children.append(
                    {
                        "mediaType": OCI_MANIFEST,
                        **blobs.add(manifest),
                        "platform": {"architecture": spec.arch, "os": "linux"},
                    }
                )
            child_index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}).encode()
            index_manifests.append({"mediaType": OCI_INDEX, **blobs.add(child_index), "annotations": annotations})
        else:
            (spec,) = group
            manifest = json.dumps(_image_manifest(spec, blobs)).encode()
            index_manifests.append(
                {
                    "mediaType": OCI_MANIFEST,
                    **blobs.add(manifest),
                    "platform": {"architecture": spec.arch, "os": "linux"},
                    "annotations": annotations,
                }
            )
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index_manifests}).encode()
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:

        def add(name: str, data: bytes | None) -> None:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))

        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", index)
        add("blobs", None)
        add("blobs/sha256", None)
        for digest, data in sorted(blobs.blobs.items()):
            add("blobs/sha256/" + digest.split(":", 1)[1], data)
