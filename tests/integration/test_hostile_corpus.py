"""The hostile-input corpus (tests/hostile.py) against every format writer, the real CLI and
``cache export``: nothing outside the build's own directories changes, no host file is read into an
output, no output entry escapes the root, and malformed inputs end in plain errors within bounded
memory."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.bootkit import write_format
from tests.hostile import DEDUPED, REPLACED, SECRET, YAML, images, sandbox_host, snapshot, unsafe_names
from tests.imagefactory import ImageSpec, directory, file, write_layout_tar

from linuxkit.formats.registry import FORMATS as TABLE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EPOCH = 1700000000
#: every format written from the rootfs tar for amd64; bootable ones take the host's loaders, as test_formats_boot
FORMATS = [f.name for f in TABLE if f.writer is not None and (f.arches is None or "amd64" in f.arches)]
#: formats that are the rootfs stream itself (no writer from a tar file): built by the CLI
STREAMED = [f.name for f in TABLE if f.streamed]
#: outputs whose bytes are not compressed: a host secret copied in would show as it is
PLAIN = (".tar", ".iso", "-erofs.img", "-bios.img", "-efi.img", ".raw", "-kernel", ".vhd", ".efi")


def lk(cache: Path, *args: str | os.PathLike[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LINUXKIT_CACHE": str(cache), "COLUMNS": "200"}
    argv = [sys.executable, "-m", "linuxkit.cli.main", *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, check=False, timeout=600)


class Corpus:
    def __init__(self, work: Path, host: Path) -> None:
        self.work, self.host = work, host
        self.cache = work / "cache"
        self.yml = work / "hostile.yml"
        self.before = snapshot(host)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    work = tmp_path_factory.mktemp("hostile")
    with sandbox_host() as host:
        found = Corpus(work, host)
        write_layout_tar(work / "images.tar", images(host))
        assert lk(found.cache, "cache", "import", work / "images.tar").returncode == 0
        found.yml.write_text(YAML)
        yield found


def assert_host_untouched(corpus: Corpus) -> None:
    assert snapshot(corpus.host) == corpus.before
    leaked = [p for p in ("kernel-escape", "pwned") if (corpus.host.parent / p).exists()]
    assert not leaked


def assert_no_secret(path: Path) -> None:
    with open(path, "rb") as fh:
        tail = b""
        while chunk := fh.read(1 << 20):
            assert SECRET not in tail + chunk, f"{path.name} carries the host's secret"
            tail = chunk[-len(SECRET) :]


@pytest.fixture(scope="module")
def rootfs(corpus: Corpus) -> Path:
    proc = lk(corpus.cache, "build", "-f", "tar", "--name", "hostile", "--dir", corpus.work, corpus.yml)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return corpus.work / "hostile.tar"


def test_the_rootfs_tar_keeps_every_entry_inside(corpus: Corpus, rootfs: Path) -> None:
    assert_host_untouched(corpus)
    assert_no_secret(rootfs)
    with tarfile.open(rootfs) as tf:
        members = tf.getmembers()
    names = [m.name for m in members]
    assert not unsafe_names(names)
    assert not unsafe_names([m.linkname for m in members if m.islnk()])
    # the kernel tar got the layers' checks: nothing below its symlink, no links to host files
    assert "leak" not in names and "shadow" not in names and "kdir/pwned-by-kernel-tar" not in names
    assert "lib/modules/ok.ko" in names
    # Across images the tar keeps upstream's entries (image 2's evil/pwned below image 1's symlink):
    # a tar names what the guest's own unpacker makes inside the guest. Writers of trees on the host
    # must not follow them: the tests below.


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_writer_keeps_to_its_directories(fmt: str, corpus: Corpus, rootfs: Path, tmp_path: Path) -> None:
    done = write_format(fmt, rootfs, tmp_path, EPOCH, boot_files=Path("/"))
    assert done
    assert_host_untouched(corpus)
    # nothing but the outputs is left next to them (no scratch directories, no temporary files)
    assert sorted(tmp_path.iterdir()) == sorted(done)
    for out in done:
        if out.name.endswith(PLAIN):
            assert_no_secret(out)


#: formats only arm64 has (the Raspberry Pi's boot partition): written for aarch64
ARM64_ONLY = [f.name for f in TABLE if f.writer is not None and f.arches == ("arm64",)]


@pytest.mark.parametrize("fmt", ARM64_ONLY)
def test_arm64_format_writers_keep_to_their_directories(fmt: str, corpus: Corpus, rootfs: Path, tmp_path: Path) -> None:
    done = write_format(fmt, rootfs, tmp_path, EPOCH, arch="aarch64")
    assert done
    assert_host_untouched(corpus)
    assert sorted(tmp_path.iterdir()) == sorted(done)
    for out in done:
        assert_no_secret(out)  # the tar and the FAT image store file bytes as they are
    if fmt == "rpi3":
        with tarfile.open(done[0]) as tf:
            names = tf.getnames()
        # the firmware's symlinks (to a host file, climbing out) are not boot files; the device tree below the
        # image's symlink to the host is the image's own file
        assert "evil.dat" not in names and "up" not in names
        assert {"bootcode.bin", "start.elf", "fixup.dat", "bcm2837-rpi-3-b.dtb", "kernel8.img"} <= set(names)
        assert not unsafe_names(names)


def test_the_initrd_keeps_a_stored_once_file_when_its_path_is_named_again(
    corpus: Corpus, rootfs: Path, tmp_path: Path
) -> None:
    """init1 has two equal files (stored once, the second a hard link), init2 names the first path again:
    unpacked in order as the kernel does (libarchive's bsdcpio does the same), init1's other copy stays as it was.
    (GNU cpio defers the links of data-less entries to the end of the archive, so it would link bin/dup-same to
    the replacing file: docs/compatibility.md.)"""
    written = write_format("kernel+initrd", rootfs, tmp_path / "out", EPOCH)
    initrd = next(p for p in written if p.name.endswith("initrd.img"))
    tree = tmp_path / "tree"
    tree.mkdir()
    cpio = subprocess.run(f"gzip -dc {initrd} | bsdcpio -idu --quiet", shell=True, cwd=tree, capture_output=True)
    assert cpio.returncode == 0, cpio.stderr
    assert (tree / "bin/dup").read_bytes() == REPLACED
    assert (tree / "bin/dup-same").read_bytes() == DEDUPED
    assert_host_untouched(corpus)


def test_the_cli_builds_the_root_images_without_touching_the_host(corpus: Corpus, tmp_path: Path) -> None:
    """The real command line, as root here: the tree is unpacked by an unprivileged user, and the
    tree writer itself keeps to the tree (the sandbox host is writable by that user)."""
    formats = ("kernel+erofs", "kernel+iso", "kernel+squashfs")
    args = [arg for fmt in formats for arg in ("-f", fmt)]
    proc = lk(corpus.cache, "build", *args, "--name", "h", "--dir", tmp_path, corpus.yml)
    assert proc.returncode == 0, proc.stderr
    assert_host_untouched(corpus)
    assert "dropping 'evil/pwned'" in proc.stderr
    for name in ("h.iso", "h-erofs.img"):
        assert_no_secret(tmp_path / name)
    # what the ISO holds (Rock Ridge names): the tree as extraction leaves it, nothing through links
    listing = subprocess.run(
        ["xorriso", "-indev", tmp_path / "h.iso", "-find", "/", "-type", "f"], capture_output=True, text=True
    ).stdout
    files = {line.strip("'") for line in listing.splitlines()}
    assert "/evil/inside" in files and "/evil/from-yaml" in files
    # files: writes the parent directories first (as upstream), and a directory replaces a symlink:
    # what files: names lands in a real directory of the image
    assert "/evil2/pwned-from-yaml" in files and "/up/tmp/pwned-from-yaml" in files
    assert "/evil/pwned" not in files and "/up/tmp/pwned" not in files and "/kdir/pwned-by-kernel-tar" not in files
    # the container whose etc is a symlink to the host: the sanitiser's etc/ directory entry replaced
    # the symlink in the tree, so its etc/hosts is a file of the image (and the host's stayed as it was)
    assert "/containers/onboot/000-evil/lower/bin/true" in files
    assert "/containers/onboot/000-evil/lower/etc/hosts" in files


@pytest.mark.parametrize("fmt", STREAMED)
def test_streamed_formats_keep_to_their_directories(fmt: str, corpus: Corpus, tmp_path: Path) -> None:
    proc = lk(corpus.cache, "build", "-f", fmt, "--name", "s", "--dir", tmp_path, corpus.yml)
    assert proc.returncode == 0, proc.stderr
    assert_host_untouched(corpus)
    outputs = sorted(tmp_path.iterdir())
    assert outputs and all(p.name.startswith("s") for p in outputs)
    for out in outputs:
        if out.name.endswith(PLAIN):
            assert_no_secret(out)


def test_cache_export_filesystem_keeps_entries_inside(corpus: Corpus, tmp_path: Path) -> None:
    out = tmp_path / "fs.tar"
    proc = lk(corpus.cache, "cache", "export", "docker.io/hostile/init2:1", "--format", "filesystem", "--outfile", out)
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(out) as tf:
        members = tf.getmembers()
    assert not unsafe_names([m.name for m in members])
    assert_host_untouched(corpus)


# ---------------------------------------------------------------------------- malformed inputs


def _one_image_build(
    tmp_path: Path, spec: ImageSpec, fmt: str, *, with_kernel: bool = False
) -> tuple[subprocess.CompletedProcess[str], int]:
    """Build a system whose only init image is ``spec`` (and the corpus's kernel, busybox and root
    loader modules); returns the process and its peak memory (KB)."""
    cache = tmp_path / "cache"
    specs = [spec]
    yml = f"init:\n  - {spec.name}\n"
    if with_kernel:
        kernel, init1 = images(tmp_path / "no-host")[:2]
        specs += [kernel, init1]
        yml = f"kernel:\n  image: {kernel.name}\ninit:\n  - {init1.name}\n  - {spec.name}\n"
    write_layout_tar(tmp_path / "img.tar", specs)
    assert lk(cache, "cache", "import", tmp_path / "img.tar").returncode == 0
    (tmp_path / "s.yml").write_text(yml)
    probe = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stdout.write(p.stderr)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(p.returncode)\n"
    )
    argv = [
        sys.executable,
        "-m",
        "linuxkit.cli.main",
        "build",
        "-f",
        fmt,
        "--dir",
        tmp_path / "out",
        tmp_path / "s.yml",
    ]
    env = {**os.environ, "LINUXKIT_CACHE": str(cache), "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-c", probe, *map(str, argv)], capture_output=True, text=True, env=env, timeout=600
    )
    *lines, peak = proc.stdout.rstrip("\n").split("\n")
    return subprocess.CompletedProcess(proc.args, proc.returncode, "", "\n".join(lines)), int(peak)


def _plain_error(proc: subprocess.CompletedProcess[str], text: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert text in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


def test_a_long_pax_name_is_refused_quickly_in_little_memory(tmp_path: Path) -> None:
    spec = ImageSpec("docker.io/hostile/longname:1", [[file("a/" * 64000 + "x", "x")]])
    proc, peak_kb = _one_image_build(tmp_path, spec, "tar")
    _plain_error(proc, "the limit is 4096 bytes")
    assert peak_kb < 300 * 1024


def test_many_deep_names_are_refused_in_bounded_memory(tmp_path: Path) -> None:
    deep = "a/" * 2040
    spec = ImageSpec("docker.io/hostile/deep:1", [[file(f"x{i}/{deep}f") for i in range(300)]])
    proc, peak_kb = _one_image_build(tmp_path, spec, "tar")
    _plain_error(proc, "bookkeeping")
    assert peak_kb < 300 * 1024


def test_an_owner_id_no_file_system_holds_is_a_plain_error(tmp_path: Path) -> None:
    spec = ImageSpec("docker.io/hostile/uid:1", [[file("etc/x", "x", uid=1 << 40)]])
    proc, _ = _one_image_build(tmp_path, spec, "kernel+iso", with_kernel=True)
    _plain_error(proc, "has owner 1099511627776:0")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_directory_declaring_a_huge_size_adds_nothing(tmp_path: Path) -> None:
    spec = ImageSpec("docker.io/hostile/dirsize:1", [[directory("big", size=1 << 62), file("big/x", "x")]])
    proc, peak_kb = _one_image_build(tmp_path, spec, "kernel+initrd", with_kernel=True)
    assert proc.returncode == 0, proc.stderr
    initrd = next((tmp_path / "out").glob("*-initrd.img"))
    assert initrd.stat().st_size < 4 << 20
    assert peak_kb < 300 * 1024
