"""``--input-tar``: which parts count as unchanged, reading the old config, copying marked entries."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from linuxkit.config import schema
from linuxkit.errors import UserError
from linuxkit.rootfs.assemble import images_read, oci_volumes
from linuxkit.rootfs.inputtar import InputTar, copy_part, metadata_path, read_old_config, reuse_plan, same_image
from linuxkit.tar.header import DIR, LINK, PAX_LOCATION, PAX_SOURCE, REG, Header
from linuxkit.tar.reader import read_entries
from linuxkit.tar.writer import TarWriter

BASE = {
    "kernel": {"image": "linuxkit/kernel:6.6", "cmdline": "console=ttyS0"},
    "init": ["linuxkit/init:1", "linuxkit/runc:1"],
    "volumes": [{"name": "v", "image": "vol:1"}, {"name": "w"}],
    "onboot": [{"name": "a", "image": "svc:1"}, {"name": "b", "image": "svc:1", "command": ["/x"]}],
    "services": [{"name": "s", "image": "docker.io/library/svc:1", "env": ["A=1"]}],
    "files": [{"path": "/etc/cfg", "metadata": "yaml"}],
}


def moby(**changes: object) -> schema.Moby:
    return schema.parse(schema.Moby, {**BASE, **changes})


def test_identical_configs_reuse_every_part() -> None:
    assert reuse_plan(moby(), moby()) == {
        "kernel": "docker.io/linuxkit/kernel:6.6",
        "init[0]": "docker.io/linuxkit/init:1",
        "init[1]": "docker.io/linuxkit/runc:1",
        "volumes[0]": "vol:1",  # the raw string, as upstream looks it up
        "volumes[1]": "",
        "onboot[0]": "docker.io/library/svc:1",
        "onboot[1]": "docker.io/library/svc:1",
        "services[0]": "docker.io/library/svc:1",
    }


def test_kernel_is_compared_by_reference_only() -> None:
    old = moby(kernel={"image": "docker.io/linuxkit/kernel:6.6", "cmdline": "other"})
    assert "kernel" in reuse_plan(moby(), old)  # upstream keeps the old cmdline too
    assert "kernel" not in reuse_plan(moby(), moby(kernel={"image": "linuxkit/kernel:6.7"}))
    assert "kernel" not in reuse_plan(moby(kernel={"cmdline": "x"}), moby())


def test_init_is_positional() -> None:
    plan = reuse_plan(moby(init=["linuxkit/runc:1", "linuxkit/init:1", "linuxkit/extra:1"]), moby())
    assert not any(k.startswith("init") for k in plan)
    plan = reuse_plan(moby(init=["linuxkit/init:1", "linuxkit/runc:1", "linuxkit/extra:1"]), moby())
    assert [k for k in plan if k.startswith("init")] == ["init[0]", "init[1]"]


def test_volumes_compare_raw_image_strings() -> None:
    expanded = moby(volumes=[{"name": "v", "image": "docker.io/library/vol:1"}, {"name": "w", "image": "x:1"}])
    assert not any(k.startswith("volumes") for k in reuse_plan(expanded, moby()))
    renamed = moby(volumes=[{"name": "other", "image": "vol:1"}])
    assert reuse_plan(renamed, moby())["volumes[0]"] == "vol:1"


def test_images_compare_every_field_with_names_expanded() -> None:
    short = schema.parse(schema.Image, {"name": "a", "image": "svc:1", "env": ["A=1"]})
    full = schema.parse(schema.Image, {"name": "a", "image": "docker.io/library/svc:1", "env": ["A=1"]})
    assert same_image(short, full)
    assert not same_image(short, schema.replace(full, env=["A=2"]))
    assert not same_image(short, schema.replace(full, name="b"))
    assert not same_image(short, schema.replace(full, env=None))
    # "not set" and "set to empty" differ, as go-yaml writes [] for an empty pointer
    assert not same_image(schema.replace(short, command=[]), short)


def test_removed_service_shifts_the_rest() -> None:
    services = [{"name": "s", "image": "svc:1"}, {"name": "t", "image": "svc:1"}, {"name": "u", "image": "u:1"}]
    old = moby(services=services)
    new = moby(services=[services[0], services[2]])
    plan = reuse_plan(new, old)
    assert "services[0]" in plan and "services[1]" not in plan


def test_metadata_path_is_the_last_metadata_file_without_leading_slash() -> None:
    files = [{"path": "/a", "metadata": "yaml"}, {"path": "b", "contents": "x"}, {"path": "/c/d", "metadata": "json"}]
    assert metadata_path(moby(files=files)) == "c/d"
    assert metadata_path(moby(files=[{"path": "b", "contents": "x"}])) == ""


def _entry(name: str, source: str | None, location: str | None, data: bytes = b"", **kw: object) -> Header:
    pax = {}
    if source is not None:
        pax[PAX_SOURCE] = source
    if location is not None:
        pax[PAX_LOCATION] = location
    return Header(name=name, size=len(data), mode=0o644, mtime=(1, 5), pax=pax or None, **kw)  # type: ignore[arg-type]


def _tar_to(fh: io.BufferedIOBase | io.BytesIO, entries: list[tuple[Header, bytes]]) -> None:
    writer = TarWriter(fh)
    for hdr, data in entries:
        writer.write_header(hdr)
        if data:
            writer.write(data)
    writer.close()


def _tar(path: Path, entries: list[tuple[Header, bytes]]) -> None:
    with open(path, "wb") as fh:
        _tar_to(fh, entries)


def test_copy_part_streams_matching_entries_unchanged(tmp_path: Path) -> None:
    long = "x/" + "y" * 120
    entries = [
        (_entry("kdir", "k:1", "kernel", typeflag=DIR), b""),
        (_entry("skip", "k:1", "init[0]", b"no"), b"no"),
        (_entry(long, "k:1", "kernel", b"data"), b"data"),
        (_entry("plain", None, None, b"zz", want_pax=False), b"zz"),
        (_entry("link", "k:1", "kernel", typeflag=LINK, linkname=long), b""),
        (_entry("other", "k:2", "kernel", b"q"), b"q"),
    ]
    _tar(tmp_path / "in.tar", entries)
    out = io.BytesIO()
    writer = TarWriter(out)
    copy_part(tmp_path / "in.tar", "k:1", "kernel", writer)
    writer.close()
    expected = io.BytesIO()
    _tar_to(expected, [entries[0], entries[2], entries[4]])
    assert out.getvalue() == expected.getvalue()
    got = [(e.header.name, e.data.read()) for e in read_entries(io.BytesIO(out.getvalue()))]
    assert got == [("kdir", b""), (long, b"data"), ("link", b"")]


def test_missing_records_read_as_empty_strings(tmp_path: Path) -> None:
    _tar(tmp_path / "in.tar", [(_entry("a", None, "volumes[1]", b"1"), b"1"), (_entry("b", "", "init", b"2"), b"2")])
    out = io.BytesIO()
    writer = TarWriter(out)
    copy_part(tmp_path / "in.tar", "", "volumes[1]", writer)
    writer.close()
    assert [e.header.name for e in read_entries(io.BytesIO(out.getvalue()))] == ["a"]


def _config_tar(path: Path, config: bytes, name: str = "etc/cfg") -> None:
    hdr = Header(name=name, typeflag=REG, size=len(config), mode=0o644)
    _tar(path, [(_entry("etc", "linuxkit.files", "files[0]", typeflag=DIR), b""), (hdr, config)])


def test_load_reads_the_old_config_and_plans(tmp_path: Path) -> None:
    old = dict(BASE, onboot=[{"name": "a", "image": "docker.io/library/svc:1"}])
    _config_tar(tmp_path / "in.tar", yaml.safe_dump(old).encode())
    reuse = InputTar.load(tmp_path / "in.tar", moby())
    assert reuse is not None
    assert "onboot[0]" in reuse.reused_places() and "onboot[1]" not in reuse.reused_places()
    sink = TarWriter(io.BytesIO())
    assert reuse("onboot[1]", "docker.io/library/svc:1", sink) is False
    assert reuse("onboot[0]", "docker.io/library/other:1", sink) is False
    assert reuse("onboot[0]", "docker.io/library/svc:1", sink) is True


def test_load_without_metadata_file_or_config_in_tar(tmp_path: Path) -> None:
    assert InputTar.load(tmp_path / "missing.tar", moby(files=[])) is None  # not even opened
    _config_tar(tmp_path / "in.tar", b"init: []\n", name="etc/else")
    assert InputTar.load(tmp_path / "in.tar", moby()) is None
    with pytest.raises(UserError, match="cannot open --input-tar"):
        InputTar.load(tmp_path / "missing.tar", moby())


def test_invalid_old_config_is_a_user_error(tmp_path: Path) -> None:
    _config_tar(tmp_path / "in.tar", b"bogus: 1\n")
    with pytest.raises(UserError, match="invalid config in etc/cfg") as info:
        read_old_config(tmp_path / "in.tar", "etc/cfg")
    assert info.value.hint


def test_images_read_leaves_out_reused_places_and_oci_volumes() -> None:
    m = moby(volumes=[{"name": "v", "image": "vol:1"}, {"name": "o", "image": "oci:1", "format": "oci"}])
    assert images_read(m) == {
        "docker.io/linuxkit/kernel:6.6",
        "docker.io/linuxkit/init:1",
        "docker.io/linuxkit/runc:1",
        "docker.io/library/vol:1",
        "docker.io/library/svc:1",
    }
    reused = {"kernel", "init[1]", "volumes[0]", "onboot[0]", "onboot[1]"}
    assert images_read(m, reused) == {"docker.io/linuxkit/init:1", "docker.io/library/svc:1"}
    assert images_read(m, reused | {"services[0]"}) == {"docker.io/linuxkit/init:1"}
    assert oci_volumes(m) == [("docker.io/library/oci:1", [])]
    assert oci_volumes(m, {"volumes[1]"}) == []
