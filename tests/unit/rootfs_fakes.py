"""Test helpers for the rootfs tests: layer tars built in memory, fake image sources, OCI layouts."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from typing import IO, Any

MTIME = 1_600_000_000


def _info(name: str, kind: bytes, **kw: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = kw.pop("mtime", MTIME)
    info.mode = kw.pop("mode", 0o644 if kind == tarfile.REGTYPE else 0o755)
    for key, value in kw.items():
        setattr(info, key, value)
    return info


@dataclass
class Item:
    info: tarfile.TarInfo
    data: bytes = b""


def file(name: str, data: bytes | str = b"", **kw: Any) -> Item:
    raw = data.encode() if isinstance(data, str) else data
    info = _info(name, tarfile.REGTYPE, **kw)
    info.size = len(raw)
    return Item(info, raw)


def directory(name: str, **kw: Any) -> Item:
    return Item(_info(name, tarfile.DIRTYPE, **kw))


def symlink(name: str, target: str, **kw: Any) -> Item:
    return Item(_info(name, tarfile.SYMTYPE, linkname=target, mode=0o777, **kw))


def hardlink(name: str, target: str, **kw: Any) -> Item:
    return Item(_info(name, tarfile.LNKTYPE, linkname=target, **kw))


def chardev(name: str, major: int, minor: int, **kw: Any) -> Item:
    return Item(_info(name, tarfile.CHRTYPE, devmajor=major, devminor=minor, **kw))


def fifo(name: str, **kw: Any) -> Item:
    return Item(_info(name, tarfile.FIFOTYPE, **kw))


def whiteout(path: str) -> Item:
    head, _, base = path.rpartition("/")
    return file(f"{head}/.wh.{base}" if head else f".wh.{base}", mode=0o600)


def opaque(directory_name: str) -> Item:
    return file(f"{directory_name}/.wh..wh..opq", mode=0o600)


def layer(*items: Item, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for item in items:
            tar.addfile(item.info, io.BytesIO(item.data) if item.info.isreg() else None)
    return buf.getvalue()


@dataclass
class FakeSource:
    """An in-memory :class:`linuxkit.oci.image.ImageSource`."""

    name: str
    layers: list[bytes]
    image_config: dict[str, Any] = field(default_factory=dict)
    opened: int = 0

    @property
    def ref(self) -> str:
        return self.name

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(b"".join(self.layers)).hexdigest()

    @property
    def config(self) -> dict[str, Any]:
        diff_ids = ["sha256:" + hashlib.sha256(raw).hexdigest() for raw in self.layers]
        out: dict[str, Any] = {"architecture": "amd64", "os": "linux", "config": {}}
        out.update(self.image_config)
        out["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
        return out

    def layer_count(self) -> int:
        return len(self.layers)

    def open_layer(self, index: int) -> IO[bytes]:
        self.opened += 1
        return io.BytesIO(self.layers[index])


def _blob(tar: tarfile.TarFile, raw: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(raw).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = len(raw)
    try:
        tar.getmember(info.name)
    except KeyError:
        tar.addfile(info, io.BytesIO(raw))
    return "sha256:" + digest, len(raw)


def oci_layout_tar(images: dict[str, FakeSource]) -> bytes:
    """An OCI image-layout tar holding ``images`` (full name → source), for ``linuxkit cache import``."""
    buf = io.BytesIO()
    manifests = []
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        layout = json.dumps({"imageLayoutVersion": "1.0.0"}).encode()
        info = tarfile.TarInfo("oci-layout")
        info.size = len(layout)
        tar.addfile(info, io.BytesIO(layout))
        for name, source in images.items():
            layers = []
            for raw in source.layers:
                packed = gzip.compress(raw, mtime=0)
                digest, size = _blob(tar, packed)
                layers.append(
                    {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size}
                )
            cdigest, csize = _blob(tar, json.dumps(source.config).encode())
            manifest = {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": csize},
                "layers": layers,
            }
            mdigest, msize = _blob(tar, json.dumps(manifest).encode())
            manifests.append(
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": mdigest,
                    "size": msize,
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name},
                }
            )
        index = json.dumps({"schemaVersion": 2, "manifests": manifests}).encode()
        info = tarfile.TarInfo("index.json")
        info.size = len(index)
        tar.addfile(info, io.BytesIO(index))
    return buf.getvalue()
