"""The format table (formats/registry.py) against reality: the files each writer really writes, the
files two formats may share, the boot loaders a writer really asks for, the writers' lazy references,
the default ``--o`` file of the stream formats, and the checks and ``--help`` text made from it."""

from __future__ import annotations

import argparse
import itertools
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.imagefactory import directory, file, layer_tar

from linuxkit.errors import BuildError, UserError
from linuxkit.formats.registry import (
    FORMATS,
    Format,
    FormatContext,
    Writer,
    clash,
    validate_formats,
)
from linuxkit.formats.rootloader import REQUIRED_MODULES
from linuxkit.outputs import OutputSet

BUSYBOX = Path("/bin/busybox")
#: tools the writers run, and the host's boot loaders (as tests/integration/test_formats_boot.py)
TOOLS = ("mkfs.vfat", "mcopy", "syslinux", "qemu-img", "xorriso", "tar2sqfs", "mkfs.erofs", "fakeroot")
HOST_LOADERS = (
    "usr/lib/ISOLINUX/isolinux.bin",
    "usr/lib/syslinux/modules/bios/ldlinux.c32",
    "usr/lib/syslinux/mbr/mbr.bin",
    "usr/lib/systemd/boot/efi/systemd-bootx64.efi",
    "usr/lib/systemd/boot/efi/linuxx64.efi.stub",
)
#: formats written from a rootfs tar for amd64 (the ones this test writes)
WRITTEN = [f for f in FORMATS if f.writer is not None and (f.arches is None or "amd64" in f.arches)]


def _rootfs(path: Path, *, kernel: bool) -> Path:
    """A tiny rootfs tar as ``build -f tar`` lays it out: a static busybox, ``/init`` and, with
    ``kernel``, a (fake) kernel and a cmdline; the root loader's modules are declared built in."""

    entries = [directory(d) for d in ("bin", "boot", "lib", "lib/modules", "lib/modules/6.1.0")]
    entries += [
        file("bin/busybox", BUSYBOX.read_bytes(), 0o755),
        file("init", b"#!/bin/busybox sh\nexec /bin/busybox sh\n", 0o755),
        file("lib/modules/6.1.0/modules.builtin", "".join(f"kernel/{m}.ko\n" for m in REQUIRED_MODULES)),
    ]
    if kernel:
        entries += [
            file("boot/kernel", b"MZ fake kernel\n" + bytes(range(256)) * 64),
            file("boot/cmdline", b"console=ttyS0 quiet"),
        ]
    with open(path, "wb") as out:
        layer_tar(entries, out)
    return path


@dataclass
class Written:
    """What the writers of every format in :data:`WRITTEN` produced from one rootfs."""

    files: dict[str, dict[str, bytes]]  # format → {suffix after NAME: bytes}
    errors: dict[str, BuildError]  # format → why it wrote nothing


def _write(fmt: Format, rootfs: Path, out: Path, boot_files: Path | None) -> dict[str, bytes]:
    assert fmt.writer is not None
    out.mkdir(parents=True)
    with OutputSet() as outputs:
        ctx = FormatContext(out / "lk", 0, "amd64", False, outputs, boot_files=boot_files, epoch=1700000000)
        fmt.writer(ctx, rootfs)
        done = outputs.commit()
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in done)  # no stray files
    return {p.name.removeprefix("lk"): p.read_bytes() for p in done}


def _write_all(rootfs: Path, work: Path) -> Written:
    written = Written({}, {})
    for fmt in WRITTEN:
        try:
            # only the formats said to need boot loaders get them
            loaders = HOST if fmt.boot_loaders else None
            written.files[fmt.name] = _write(fmt, rootfs, work / fmt.name.replace("+", "_"), loaders)
        except BuildError as exc:
            written.errors[fmt.name] = exc
    return written


HOST = Path("/")


@pytest.fixture(scope="module")
def tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None] + [p for p in HOST_LOADERS if not (HOST / p).is_file()]
    if missing or not BUSYBOX.is_file():
        pytest.skip(f"missing tools, boot loaders or /bin/busybox: {missing}")


@pytest.fixture(scope="module")
def full(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Written:
    work = tmp_path_factory.mktemp("full")
    return _write_all(_rootfs(work / "rootfs.tar", kernel=True), work)


@pytest.fixture(scope="module")
def bare(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Written:
    work = tmp_path_factory.mktemp("bare")
    return _write_all(_rootfs(work / "rootfs.tar", kernel=False), work)


@pytest.mark.parametrize("fmt", WRITTEN, ids=lambda f: f.name)
def test_each_writer_writes_exactly_the_declared_files(full: Written, fmt: Format) -> None:
    assert fmt.name not in full.errors, full.errors.get(fmt.name)
    assert sorted(full.files[fmt.name]) == sorted(out.suffix for out in fmt.outputs)


def test_optional_files_are_those_left_out_without_kernel_and_cmdline(bare: Written) -> None:
    for fmt in WRITTEN:
        if fmt.name in bare.errors:
            # a bootable format needs the kernel: then every file it writes is required
            assert "no kernel" in str(bare.errors[fmt.name]), bare.errors[fmt.name]
            assert not any(out.optional for out in fmt.outputs), fmt.name
        else:
            assert sorted(bare.files[fmt.name]) == sorted(o.suffix for o in fmt.outputs if not o.optional), fmt.name


def _declared_shared(a: Format, b: Format) -> set[str]:
    theirs = {out.suffix: out.shared for out in b.outputs}
    return {out.suffix for out in a.outputs if out.shared is not None and theirs.get(out.suffix) == out.shared}


def test_shared_files_have_the_same_bytes_and_clashes_are_exactly_the_other_common_files(full: Written) -> None:
    """Two formats writing one file: the same bytes iff the table says the file is shared (then they may be
    built together); else :func:`validate_formats` refuses the pair, naming the first such file."""
    for a, b in itertools.combinations(WRITTEN, 2):  # in the table's order
        mine, theirs = full.files[a.name], full.files[b.name]
        same = {s for s in mine.keys() & theirs.keys() if mine[s] == theirs[s]}
        assert same == _declared_shared(a, b), (a.name, b.name)
        differ = [out.suffix for out in a.outputs if out.suffix in theirs and out.suffix not in same]
        if differ:
            assert clash(a, b) == differ[0]
            message = f"formats {a.name} and {b.name} cannot be built together: both write NAME{differ[0]}"
            for pair in ([a.name, b.name], [b.name, a.name]):
                with pytest.raises(UserError, match=re.escape(message)) as err:
                    validate_formats(pair)
                assert err.value.exit_code == 2
        else:
            assert clash(a, b) is None
            assert [f.name for f in validate_formats([b.name, a.name])] == [b.name, a.name]


@pytest.mark.parametrize("fmt", [f for f in WRITTEN if f.boot_loaders], ids=lambda f: f.name)
def test_formats_said_to_need_boot_loaders_ask_for_them(tools: None, tmp_path: Path, fmt: Format) -> None:
    """(The others were written without any in the tests above.)"""
    rootfs = _rootfs(tmp_path / "rootfs.tar", kernel=True)
    with pytest.raises(BuildError, match="needs the boot loader file"):
        _write(fmt, rootfs, tmp_path / "out", None)


@pytest.mark.parametrize("fmt", [f for f in WRITTEN if f.entries_writer is not None], ids=lambda f: f.name)
def test_entries_writers_write_what_the_tar_file_writers_write(full: Written, tmp_path: Path, fmt: Format) -> None:
    from linuxkit.formats.initrd import feed_tar

    assert fmt.entries_writer is not None
    rootfs = _rootfs(tmp_path / "rootfs.tar", kernel=True)
    (tmp_path / "out").mkdir()
    with OutputSet() as outputs, open(rootfs, "rb") as src:
        ctx = FormatContext(tmp_path / "out" / "lk", 0, "amd64", False, outputs, epoch=1700000000)
        fmt.entries_writer(ctx, feed_tar(src))
        done = outputs.commit()
    assert {p.name.removeprefix("lk"): p.read_bytes() for p in done} == full.files[fmt.name]


def test_writers_are_imported_only_when_used() -> None:
    """Importing the table (as ``--help`` does) imports no writer; each reference names a function."""
    modules = {f"linuxkit.formats.{w.module}" for f in FORMATS for w in _writers(f)}
    script = "import json, sys\nimport linuxkit.formats.registry\nprint(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, check=True).stdout))
    assert modules and not modules & loaded
    for fmt in FORMATS:
        for writer in _writers(fmt):
            assert callable(writer.resolve()), (fmt.name, writer)


def _writers(fmt: Format) -> list[Writer[...]]:
    return [w for w in (fmt.writer, fmt.entries_writer, fmt.stream_writer) if w is not None]


def test_stream_formats_are_one_file_built_alone() -> None:
    for fmt in FORMATS:
        if fmt.streamed:
            # the rootfs stream itself: one file (or stdout), built alone, never from a tar file
            assert fmt.writer is None and fmt.alone and len(fmt.outputs) == 1, fmt.name


def _options(*argv: str) -> tuple[str, str]:
    from linuxkit.cli.build_cmd import options_from_args
    from linuxkit.cli.common import CommonOptions
    from linuxkit.cli.main import build_parser

    args: argparse.Namespace = build_parser().parse_args(["build", *argv])
    opts = options_from_args(args, CommonOptions.from_args(args))
    return opts.output_file, opts.name


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f.streamed], ids=lambda f: f.name)
def test_stream_formats_default_to_their_declared_file(fmt: Format) -> None:
    (out,) = fmt.outputs
    assert _options("-f", fmt.name, "--dir", "d", "sys.yml") == (f"d/sys{out.suffix}", "")
    assert _options("-f", fmt.name, "--o", "-", "sys.yml") == ("-", "")


def test_only_stream_formats_go_to_o() -> None:
    for fmt in FORMATS:
        if not fmt.streamed:
            with pytest.raises(UserError, match=f"build type {re.escape(fmt.name)} as it cannot be streamed"):
                _options("-f", fmt.name, "--o", "x", "sys.yml")


def test_formats_built_alone() -> None:
    for fmt, other in itertools.permutations(FORMATS, 2):
        pair = [fmt.name, other.name]
        if fmt.alone or other.alone:
            first = fmt if fmt.alone else other
            with pytest.raises(UserError, match=f"format type {re.escape(first.name)} must be the only format"):
                _options("-f", ",".join(pair), "sys.yml")
            with pytest.raises(UserError, match=f"format type {re.escape(first.name)} must be the only format"):
                validate_formats(pair)


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f.arches is not None], ids=lambda f: f.name)
def test_architectures(fmt: Format) -> None:
    assert fmt.arches is not None
    for arch in ("amd64", "x86_64", "arm64", "aarch64", "riscv64"):
        go = {"x86_64": "amd64", "aarch64": "arm64"}.get(arch, arch)
        if go in fmt.arches:
            if fmt.available:
                assert validate_formats([fmt.name], arch) == [fmt]
        else:
            with pytest.raises(UserError, match=f"{re.escape(fmt.name)} builds only for {fmt.arches[0]}") as err:
                validate_formats([fmt.name], arch)
            assert err.value.exit_code == 2 and f"--arch {fmt.arches[0]}" in (err.value.hint or "")


def test_every_format_is_known_once_in_upstream_order_and_help_lists_them() -> None:
    names = [f.name for f in FORMATS]
    assert len(set(names)) == len(names)
    # upstream v1.8.2's names in its order (its outFuns), then ours
    upstream = "tar docker kernel+initrd tar-kernel-initrd iso-bios iso-efi iso-efi-initrd raw-bios raw-efi"
    upstream += " kernel+squashfs kernel+erofs kernel+iso aws gcp qcow2-efi qcow2-bios vhd dynamic-vhd vmdk rpi3"
    assert names == [*upstream.split(), "uki", "rpi3-img"]
    from linuxkit.cli.main import build_parser

    parser = build_parser(lazy=False)
    help_text = " ".join(parser._subparsers._group_actions[0].choices["build"].format_help().split())  # type: ignore[union-attr]
    assert "formats to create (repeat or comma list): " + " ".join(names) in help_text
    with pytest.raises(UserError, match="unknown format 'nope'") as err:
        validate_formats(["nope"])
    assert err.value.hint == "known formats: " + ", ".join(names)


@pytest.mark.parametrize(
    ("config", "name"),
    [
        ("sys.yml", "sys"),
        ("dir/sys.tar.yml", "sys.tar"),
        ("-", "moby"),
        ("https://example.test/a/sshd.yml", "sshd"),
        ("https://example.test/a/sshd.yml?x=1", "sshd"),  # Go's Ext: from the last dot
        ("dir/", "dir"),
        ("noext", "noext"),
    ],
)
def test_output_name_is_the_last_config_without_its_extension_as_upstream(config: str, name: str) -> None:
    # upstream: strings.TrimSuffix(filepath.Base(conf), filepath.Ext(conf))
    assert _options(config)[1] == name
