"""Assembling the rootfs: section order, bundle layouts, dedup, files, kernel, determinism."""

from __future__ import annotations

import gzip
import io
import json
import struct
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rootfs_fakes import FakeSource, directory, file, layer

from linuxkit.config import schema
from linuxkit.containerspec.ids import allocate_ids, resolve_id
from linuxkit.containerspec.oci import runtime_mount
from linuxkit.errors import BuildError, Location, UserError
from linuxkit.formats.tarfmt import DOCKERFILE, write_docker
from linuxkit.oci.image import ImageSource, Platform
from linuxkit.rootfs.assemble import RootfsSettings, SpecApi, assemble, assemble_with, with_mounts
from linuxkit.rootfs.files import dir_mode, parse_mode
from linuxkit.rootfs.kernel import decompress_kernel


@dataclass(frozen=True)
class _Spec:
    config_json: bytes
    runtime: dict[str, Any]
    readonly: bool


def _container_spec(
    image: schema.Image, config: dict[str, Any], ids: dict[str, int], volumes: Mapping[str, schema.Volume]
) -> _Spec:
    return _Spec(
        json.dumps({"name": image.name}).encode(), {"mounts": [{"destination": "/user"}]}, bool(image.readonly)
    )


FAKE_SPEC = SpecApi(allocate_ids, resolve_id, _container_spec, lambda r: json.dumps(r).encode(), runtime_mount)

KERNEL = gzip.compress(b"\x00" * 4096, mtime=0)
KTAR = layer(directory("lib/"), file("lib/mod.ko", "m"))
IMAGES = {
    "docker.io/library/kernel:1": FakeSource(
        "k", [layer(file("kernel", KERNEL), file("kernel.tar", KTAR), file("System.map", "junk"))]
    ),
    "docker.io/library/kernel-nozip:1": FakeSource("k", [layer(file("kernel", b"plain"), file("kernel.tar", KTAR))]),
    "docker.io/library/init:1": FakeSource("i", [layer(directory("bin"), file("bin/init", "i"))]),
    "docker.io/library/svc:1": FakeSource("s", [layer(directory("bin"), file("bin/svc", "s"))]),
    "docker.io/library/other": FakeSource("o", [layer(file("o", "o"))]),
}


def _images(ref: str, platform: Platform) -> ImageSource:
    return IMAGES[ref]


def _build(config: dict[str, Any], tmp: Path, *, decompress: bool = False) -> bytes:
    out = io.BytesIO()
    assemble(
        schema.parse(schema.Moby, config),
        _images,
        out,
        arch="amd64",
        decompress_kernel=decompress,
        base_dir=tmp,
        metadata_dump=lambda m, kind: f"dump:{kind}".encode(),
        spec=FAKE_SPEC,
    )
    return out.getvalue()


def _members(raw: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return tar.getmembers()


def _read(raw: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        handle = tar.extractfile(name)
        assert handle is not None
        return handle.read()


def test_sections_in_upstream_order_with_records(tmp_path: Path) -> None:
    raw = _build(
        {
            "kernel": {"image": "kernel:1", "cmdline": "console=ttyS0"},
            "init": ["init:1"],
            "onboot": [{"name": "a", "image": "svc:1"}],
            "services": [{"name": "s", "image": "other"}],
            "files": [{"path": "etc/x", "contents": "x"}],
        },
        tmp_path,
    )
    names = [m.name for m in _members(raw)]
    assert names[:5] == ["boot", "boot/cmdline", "boot/kernel", "lib", "lib/mod.ko"]
    assert "System.map" not in names
    order = [
        names.index(n) for n in ("bin/init", "containers/onboot/000-a/lower/bin/svc", "containers/services/s/lower/o")
    ]
    assert order == sorted(order) and names.index("etc/x") > order[-1]
    members = {m.name: m for m in _members(raw)}
    assert members["bin/init"].pax_headers["LINUXKIT.source"] == "docker.io/library/init:1"
    assert members["bin/init"].pax_headers["LINUXKIT.location"] == "init[0]"
    assert members["containers/services/s/lower/o"].pax_headers["LINUXKIT.source"] == "docker.io/library/other"
    assert members["etc/x"].pax_headers == {"LINUXKIT.source": "linuxkit.files", "LINUXKIT.location": "files[0]"}
    assert members["etc/resolv.conf"].issym()
    assert _read(raw, "boot/cmdline") == b"console=ttyS0"
    assert _read(raw, "boot/kernel") == KERNEL


def test_errors_found_once_an_image_is_read_are_located_at_its_yaml_line(tmp_path: Path) -> None:
    label = {"config": {"Labels": {"org.mobyproject.config": '{"bogus": 1}'}}}
    images = {**IMAGES, "docker.io/library/labelled:1": FakeSource("l", [layer(file("x", "x"))], label)}
    where = {("kernel", None): Location("s.yml", 2, 10), ("services", 1): Location("s.yml", 9, 12)}

    def build(config: dict[str, Any]) -> None:
        settings = RootfsSettings(
            arch="amd64", base_dir=tmp_path, metadata_dump=lambda m, k: b"", locate=lambda s, i: where.get((s, i))
        )
        assemble_with(schema.parse(schema.Moby, config), lambda ref, p: images[ref], io.BytesIO(), settings)

    with pytest.raises(BuildError) as kernel:
        build({"kernel": {"image": "kernel:1", "binary": "vmlinuz"}})
    assert str(kernel.value).startswith("s.yml:2:10: kernel.image: did not find kernel in kernel image")
    services = [{"name": "a", "image": "svc:1"}, {"name": "b", "image": "labelled:1"}]
    with pytest.raises(BuildError) as bad_label:
        build({"services": services})
    assert str(bad_label.value).startswith("s.yml:9:12: services[1].image: b (labelled:1): image labelled:1: invalid")
    assert "bogus: unknown key" in str(bad_label.value)
    # (config loading reports these first; specs made from other models still get them, located)
    services[1] = {"name": "b", "image": "svc:1", "binds": ["nope:/data"]}
    with pytest.raises(UserError) as volume:
        build({"services": services})
    assert str(volume.value).startswith("s.yml:9:12: services[1].image: b (svc:1): bind 'nope:/data' uses volume")


def test_kernel_decompression_and_errors(tmp_path: Path) -> None:
    raw = _build({"kernel": {"image": "kernel:1"}}, tmp_path, decompress=True)
    assert _read(raw, "boot/kernel") == b"\x00" * 4096
    with pytest.raises(BuildError, match="no compressed kernel"):
        _build({"kernel": {"image": "kernel-nozip:1"}}, tmp_path, decompress=True)
    with pytest.raises(BuildError, match="did not find kernel tar"):
        _build({"kernel": {"image": "kernel:1", "tar": "modules.tar"}}, tmp_path)
    with pytest.raises(BuildError, match="did not find kernel in"):
        _build({"kernel": {"image": "kernel:1", "binary": "vmlinuz"}}, tmp_path)
    raw = _build({"kernel": {"image": "kernel:1", "tar": "none"}}, tmp_path)
    assert "lib/mod.ko" not in [m.name for m in _members(raw)]


def test_bzimage_payload_is_found() -> None:
    payload = gzip.compress(b"vmlinux", mtime=0)
    image = bytearray(0x410 + len(payload))
    image[0x1F1] = 1
    struct.pack_into("<H", image, 0x1FE, 0xAA55)
    image[0x202:0x206] = b"HdrS"
    image[0x206:0x208] = bytes([2, 12])
    struct.pack_into("<II", image, 0x248, 0x10, len(payload))
    image[0x410 : 0x410 + len(payload)] = payload
    assert decompress_kernel(io.BytesIO(bytes(image))).read() == b"vmlinux"


def test_a_gzip_bomb_of_a_kernel_is_refused_in_bounded_space() -> None:
    """--decompress-kernel on an image from a registry: 300 MiB of zeros in 0.3 MB of gzip end in an error at the
    256 MiB limit, not in a temporary file the size of the disk."""
    bomb = io.BytesIO()
    with gzip.GzipFile(fileobj=bomb, mode="wb", mtime=0) as packed:
        for _ in range(300):
            packed.write(bytes(1 << 20))
    bomb.seek(0)
    with pytest.raises(BuildError, match="more than 256 MiB"):
        decompress_kernel(bomb)


def test_bundle_layouts_and_single_extraction(tmp_path: Path) -> None:
    raw = _build(
        {
            "onboot": [{"name": "rw", "image": "svc:1"}, {"name": "ro", "image": "svc:1", "readonly": True}],
            "services": [{"name": "ro2", "image": "other", "readonly": True}],
        },
        tmp_path,
    )
    names = [m.name for m in _members(raw)]
    assert names.count("containers/onboot/000-rw/lower/bin/svc") == 1
    assert not any(n.startswith("containers/onboot/001-ro/rootfs/") for n in names)
    for n in ("containers/onboot/000-rw/tmp", "containers/onboot/000-rw/rootfs", "containers/onboot/001-ro/rootfs"):
        assert n in names
    assert "containers/services/ro2/rootfs/o" in names
    rw = json.loads(_read(raw, "containers/onboot/000-rw/runtime.json"))
    assert [m["destination"] for m in rw["mounts"]] == [
        "/containers/onboot/000-rw/tmp",
        "/containers/onboot/000-rw/tmp",
        "/containers/onboot/000-rw/rootfs",
        "/user",
    ]
    assert rw["mounts"][2]["options"][0] == "lowerdir=/containers/onboot/000-rw/lower"
    ro = json.loads(_read(raw, "containers/onboot/001-ro/runtime.json"))
    assert ro["mounts"][0] == {
        "destination": "/containers/onboot/001-ro/rootfs",
        "source": "/containers/onboot/000-rw/lower",
        "options": ["bind"],
    }
    ro2 = json.loads(_read(raw, "containers/services/ro2/runtime.json"))
    assert ro2["mounts"][0]["source"] == "/containers/services/ro2/rootfs"


def test_volumes_layout(tmp_path: Path) -> None:
    raw = _build({"volumes": [{"name": "v", "image": "other"}, {"name": "empty"}]}, tmp_path)
    names = [m.name for m in _members(raw)]
    for n in ("containers/volumes/v/lower/o", "containers/volumes/v/tmp/", "containers/volumes/v/merged/"):
        assert n in names or n.rstrip("/") in names
    members = {m.name: m for m in _members(raw)}
    assert members["containers/volumes/empty/lower"].pax_headers["LINUXKIT.source"] == "empty"
    assert members["containers/volumes/v/lower/o"].pax_headers["LINUXKIT.location"] == "volume[0]"


def test_files_variants(tmp_path: Path) -> None:
    (tmp_path / "host.txt").write_text("from host")
    raw = _build(
        {
            "onboot": [{"name": "owner", "image": "svc:1"}],
            "files": [
                {"path": "/etc/a/b/c", "contents": "c", "mode": "0640", "uid": "owner", "gid": 7},
                {"path": "etc/a/d", "directory": True},
                {"path": "etc/link", "symlink": "/etc/a/b/c"},
                {"path": "etc/host", "source": "host.txt"},
                {"path": "etc/opt", "source": "nope", "optional": True},
                {"path": "etc/cfg", "metadata": "json"},
            ],
        },
        tmp_path,
    )
    members = {m.name: m for m in _members(raw) if not m.name.startswith("containers/")}
    assert members["etc/a/b"].mode == 0o750 and members["etc/a/b"].uid == 100 and members["etc/a/b"].isdir()
    assert members["etc/a/b/c"].mode == 0o640 and members["etc/a/b/c"].gid == 7
    assert members["etc/a/d"].isdir() and members["etc/a/d"].mode == 0o700
    assert members["etc/link"].issym() and members["etc/link"].linkname == "/etc/a/b/c"
    assert _read(raw, "etc/host") == b"from host" and members["etc/host"].mode == 0o600
    assert "etc/opt" not in members
    assert _read(raw, "etc/cfg") == b"dump:json"
    names = [m.name for m in _members(raw)]
    assert names.count("etc") == 1 and names.count("etc/a") == 1


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"path": "x"}, "contents of file"),
        ({"path": "x", "contents": "a", "source": "b"}, "Contents and Source"),
        ({"path": "x", "source": "a", "metadata": "yaml"}, "Source and Metadata"),
        ({"path": "x", "directory": True, "contents": "a"}, "directory with contents"),
        ({"path": "x", "contents": "a", "mode": "0o644"}, "octal"),
        ({"path": "x", "metadata": "toml"}, "unsupported metadata"),
        ({"path": "../x", "contents": "a"}, "contains a '..' component"),
        ({"path": "a/../x", "contents": "a"}, "contains a '..' component"),
        ({"path": "//", "contents": "a"}, "names the root of the image"),
        ({"path": "a\0b", "contents": "a"}, "NUL"),
        ({"path": "x", "contents": "a", "uid": "nobody"}, "cannot find id"),
        ({"path": "x", "source": "missing"}, "cannot read"),
        ({"path": "x", "source": "."}, "directory"),
    ],
)
def test_files_errors(tmp_path: Path, entry: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message):
        _build({"files": [entry]}, tmp_path)


def test_modes() -> None:
    assert dir_mode(0o600) == 0o700 and dir_mode(0o640) == 0o750 and dir_mode(0o604) == 0o705
    assert parse_mode("+644", "f") == 0o644


def test_docker_format_and_determinism(tmp_path: Path) -> None:
    config = {"init": ["init:1"], "services": [{"name": "s", "image": "svc:1"}]}
    outs = []
    for _ in range(2):
        out = io.BytesIO()
        settings = RootfsSettings(arch="amd64", base_dir=tmp_path, metadata_dump=lambda m, k: b"", spec=FAKE_SPEC)
        write_docker(schema.parse(schema.Moby, config), _images, out, settings)
        outs.append(out.getvalue())
    assert outs[0] == outs[1]
    last = _members(outs[0])[-1]
    assert last.name == "Dockerfile" and last.pax_headers == {}
    assert _read(outs[0], "Dockerfile") == DOCKERFILE


def test_apk_databases_of_init_images_are_merged(tmp_path: Path) -> None:
    def apk(pkg: str) -> FakeSource:
        return FakeSource(pkg, [layer(file("lib/apk/db/installed", f"P:{pkg}\n"))])

    IMAGES["docker.io/library/apk1:1"] = apk("one")
    IMAGES["docker.io/library/apk2:1"] = apk("two")
    raw = _build({"init": ["apk1:1", "apk2:1"]}, tmp_path)
    dbs = [m for m in _members(raw) if m.name == "lib/apk/db/installed"]
    assert len(dbs) == 3 and dbs[-1].pax_headers["LINUXKIT.source"] == "LINUXKIT.apkinit"
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        handle = tar.extractfile(dbs[-1])
        assert handle is not None
        assert handle.read() == b"P:one\n\n\nP:two\n\n\n"


def test_with_mounts_keeps_go_key_order() -> None:
    assert list(with_mounts({"cgroups": [], "mkdir": []}, [{"destination": "/"}])) == ["cgroups", "mounts", "mkdir"]
    assert with_mounts({"mounts": [{"destination": "/b"}]}, [{"destination": "/a"}])["mounts"][0]["destination"] == "/a"
