"""Hostile inputs through the real CLI: names and paths that climb out (from the YAML: located; from
an image label: naming the image and the field), odd encodings, deep nesting, an output directory
that cannot be written. Each is exit 2, no traceback, nothing written."""

from __future__ import annotations

import codecs
import json
import re
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import RunLinuxkit
from tests.imagefactory import Entry, ImageSpec, write_layout_tar
from tests.mounts import tmpfs

IMAGE = "docker.io/test/hostile:1"

YAML_CASES: dict[str, tuple[bytes, str]] = {
    "onboot-name": (
        b"onboot:\n  - name: ../../../../tmp/x\n    image: x:1\n",
        r"bad\.yml:2:11: onboot\[0\]\.name: invalid container name '\.\./\.\./\.\./\.\./tmp/x': it contains '/'",
    ),
    "service-name-dotdot": (b"services:\n  - name: ..\n    image: x:1\n", r"bad\.yml:2:11: services\[0\]\.name: "),
    "onshutdown-name-empty": (
        b'onshutdown:\n  - name: ""\n    image: x:1\n',
        r"bad\.yml:2:11: onshutdown\[0\]\.name: invalid container name '': it is empty",
    ),
    "volume-name-empty": (b'volumes:\n  - name: ""\n', r"bad\.yml:2:11: volumes\[0\]\.name: invalid volume name"),
    "bind-dotdot": (
        b"services:\n  - name: a\n    image: x:1\n    binds: [/h:/../../etc]\n",
        r"bad\.yml:4:13: services\[0\]\.binds\[0\]: bind destination '/\.\./\.\./etc' contains a '\.\.' component",
    ),
    "binds-add-dotdot": (
        b"services:\n  - name: a\n    image: x:1\n    binds.add: [/h:etc/../..]\n",
        r"bad\.yml:4:17: services\[0\]\.binds\.add\[0\]: bind destination 'etc/\.\./\.\.' contains a '\.\.' component",
    ),
    "mount-destination": (
        b"onboot:\n  - name: a\n    image: x:1\n    mounts:\n      - type: tmpfs\n        destination: ../x\n",
        r"bad\.yml:6:22: onboot\[0\]\.mounts\[0\]\.destination: mount destination '\.\./x' contains a '\.\.'",
    ),
    "runtime-mkdir": (
        b"onboot:\n  - name: a\n    image: x:1\n    runtime:\n      mkdir: [../../../tmp/x]\n",
        r"bad\.yml:5:15: onboot\[0\]\.runtime\.mkdir\[0\]: mkdir path '\.\./\.\./\.\./tmp/x' contains a '\.\.'",
    ),
    "runtime-mount": (
        b"onboot:\n  - name: a\n    image: x:1\n    runtime:\n      mounts:\n        - type: bind\n"
        b"          source: /\n          destination: a/../../../b\n",
        r"bad\.yml:8:24: onboot\[0\]\.runtime\.mounts\[0\]\.destination: runtime mount destination",
    ),
    "file-path": (
        b"files:\n  - path: ../x\n    contents: x\n",
        r"bad\.yml:2:11: files\[0\]\.path: file path '\.\./x' contains a '\.\.' component",
    ),
    "utf16-truncated": (
        codecs.BOM_UTF16_LE + "files: x\n".encode("utf-16-le") + b"z",
        r"bad\.yml:2:1: truncated UTF-16",
    ),
    "utf16-surrogate": (
        codecs.BOM_UTF16_BE + "a: ".encode("utf-16-be") + b"\xd8\x00\x00a",
        r"bad\.yml:1:4: invalid UTF-16",
    ),
    "utf32": (codecs.BOM_UTF32_LE + "files: []\n".encode("utf-32-le"), r"bad\.yml:1:1: YAML file is UTF-32 encoded"),
    "bad-utf8": (b"files:\n  - path: \xff\n", r"bad\.yml:2:11: invalid UTF-8"),
    "deep": (b"files: " + b"[" * 900 + b"]" * 900 + b"\n", r"bad\.yml:1:\d+: document is nested more than 100"),
    "deep-key": (b"{" * 400 + b"}" * 400 + b"\n", r"bad\.yml:1:2: mapping key of kind mapping is not a string"),
}


def _check_refused(proc: subprocess.CompletedProcess[bytes], pattern: str, out: Path) -> None:
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 2, err
    assert re.search(pattern, err), err
    assert "Traceback" not in err and "internal error" not in err, err
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("case", sorted(YAML_CASES))
def test_hostile_yaml_is_located_exit_2_nothing_written(case: str, linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    data, pattern = YAML_CASES[case]
    (tmp_path / "bad.yml").write_bytes(data)
    (tmp_path / "out").mkdir()
    proc = linuxkit("build", "--format", "tar", "--dir", "out", "bad.yml", check=False)
    _check_refused(proc, pattern, tmp_path / "out")


def test_utf16_config_with_bom_builds(linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    text = "files:\n  - path: etc/motd\n    contents: héllo\n"
    (tmp_path / "u16.yml").write_bytes(codecs.BOM_UTF16_BE + text.encode("utf-16-be"))
    linuxkit("build", "--format", "tar", "--no-sbom", "--dir", "out", "u16.yml")
    with tarfile.open(tmp_path / "out" / "u16.tar") as tf:
        member = tf.extractfile("etc/motd")
        assert member is not None and member.read() == "héllo".encode()


@pytest.mark.parametrize(
    ("label", "field"),
    [
        ({"binds": ["/host:/../../etc"]}, r"binds\[0\]: bind destination '/\.\./\.\./etc' contains a '\.\.' component"),
        ({"runtime": {"mkdir": ["../../../../tmp/x"]}}, r"runtime\.mkdir\[0\]: mkdir path '\.\./\.\./\.\./\.\./tmp/x'"),
        ({"mounts": [{"type": "tmpfs", "destination": "a/../.."}]}, r"mounts\[0\]\.destination: .* contains a '\.\.'"),
    ],
)
def test_hostile_image_label_names_image_and_field(
    label: dict[str, object], field: str, linuxkit: RunLinuxkit, tmp_path: Path
) -> None:
    layers = [[Entry("bin/true", data=b"#!/bin/sh\n", mode=0o755)]]
    spec = ImageSpec(IMAGE, layers, labels={"org.mobyproject.config": json.dumps(label)})
    write_layout_tar(tmp_path / "img.tar", [spec])
    linuxkit("cache", "import", "img.tar")
    (tmp_path / "bad.yml").write_text(f"services:\n  - name: svc\n    image: {IMAGE}\n")
    (tmp_path / "out").mkdir()
    proc = linuxkit("build", "--format", "tar", "--dir", "out", "bad.yml", check=False)
    _check_refused(proc, rf"svc \({IMAGE}\): image {IMAGE}: org\.mobyproject\.config label: {field}", tmp_path / "out")


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on a read-only file system (a tmpfs mounted ro; needs root)."""
    with tmpfs(tmp_path / "ro", "ro,size=64k") as path:
        yield path


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["--format", "tar", "--dir", "ro"], "ro"),
        (["--format", "tar", "--dir", "ro/new/sub"], "ro/new/sub"),
        (["--format", "tar", "--o", "ro/x.tar"], "ro"),
        (["--format", "kernel+initrd", "--dir", "ro"], "ro"),
    ],
)
def test_read_only_output_directory_is_a_user_error(
    args: list[str], shown: str, read_only_dir: Path, linuxkit: RunLinuxkit, tmp_path: Path
) -> None:
    (tmp_path / "ok.yml").write_text("files:\n  - path: etc/x\n    contents: x\n")
    proc = linuxkit("build", *args, "ok.yml", check=False)
    pattern = rf"error: cannot write to output directory {re.escape(shown)}: Read-only file system\n  hint: "
    _check_refused(proc, pattern, read_only_dir)
