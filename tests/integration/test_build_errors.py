"""Every malformed YAML is rejected with FILE:LINE:COL, exit code 2, no traceback and nothing
written to ``--dir``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.conftest import RunLinuxkit

CASES = {
    "syntax": ("onboot:\n  - name: a\n    image: [unclosed\n", r"bad\.yml:\d+:\d+: "),
    "tab-indent": ("onboot:\n\t- name: a\n", r"bad\.yml:2:1: "),
    "unknown-key": (
        "onboot:\n  - name: a\n    image: x:1\n    capabilites: [all]\n",
        r"bad\.yml:4:5: onboot\[0\]\.capabilites: .*did you mean 'capabilities'",
    ),
    "unknown-top": ("servces: []\n", r"bad\.yml:1:1: servces: .*did you mean 'services'"),
    "wrong-type": (
        "onboot:\n  - name: a\n    image: x:1\n    readonly: 1\n",
        r"bad\.yml:4:15: onboot\[0\]\.readonly: ",
    ),
    "missing-image": ("onboot:\n  - name: a\n", r"bad\.yml:2:5: onboot\[0\]\.image: required key is missing"),
    "missing-name": ("services:\n  - image: x:1\n", r"bad\.yml:2:5: services\[0\]\.name: required key is missing"),
    "dup-service": (
        "services:\n  - name: a\n    image: x:1\n  - name: a\n    image: x:1\n",
        r"bad\.yml:4:11: services\[1\]\.name: duplicate service name",
    ),
    "bad-cap": (
        "onboot:\n  - name: a\n    image: x:1\n    capabilities: [CAP_NOPE]\n",
        r"bad\.yml:4:20: onboot\[0\]\.capabilities\[0\]: unknown capability",
    ),
    "bad-bind": (
        "onboot:\n  - name: a\n    image: x:1\n    binds: [/only]\n",
        r"bad\.yml:4:13: onboot\[0\]\.binds\[0\]: ",
    ),
    "bad-mode": ('files:\n  - path: a\n    contents: x\n    mode: "0999"\n', r"bad\.yml:4:11: files\[0\]\.mode: "),
    "int-mode": (
        "files:\n  - path: a\n    contents: x\n    mode: 0644\n",
        r"bad\.yml:4:11: files\[0\]\.mode: must be a string.*\n  hint: .*octal string",
    ),
    "bad-volume-name": ("volumes:\n  - name: Bad/Name\n", r"bad\.yml:2:11: volumes\[0\]\.name: "),
    "missing-source": ("files:\n  - path: a\n    source: /nonexistent/file\n", r"bad\.yml:3:13: files\[0\]\.source: "),
    "two-sources": (
        "files:\n  - path: a\n    contents: x\n    source: /etc/hostname\n",
        r"bad\.yml:\d+:\d+: files\[0\]",
    ),
    "bad-ref": ("onboot:\n  - name: a\n    image: UPPER/Case:1\n", r"bad\.yml:3:12: onboot\[0\]\.image: "),
    "alias-bomb": (
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)),
        r"bad\.yml:\d+:\d+: ",
    ),
    "not-a-mapping": ("- just\n- a list\n", r"bad\.yml:1:1: "),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_yaml_is_located_exit_2_nothing_written(case: str, linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    text, pattern = CASES[case]
    (tmp_path / "bad.yml").write_text(text)
    (tmp_path / "out").mkdir()
    proc = linuxkit("build", "--format", "tar", "--dir", "out", "bad.yml", check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert re.search(pattern, err, re.S), err
    assert "Traceback" not in err
    assert list((tmp_path / "out").iterdir()) == []


def test_all_errors_reported_at_once(linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text(
        "onboot:\n  - name: a\n    image: x:1\n    capabilities: [CAP_NOPE]\n    readonly: yes\nfooo: 1\n"
    )
    err = linuxkit("build", "bad.yml", check=False).stderr.decode()
    assert len(re.findall(r"^bad\.yml:\d+:\d+: ", err, re.M)) == 3, err


def test_huge_garbage_file_is_refused(linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    (tmp_path / "big.yml").write_bytes(b"x" * (17 * 1024 * 1024))
    proc = linuxkit("build", "big.yml", check=False)
    assert proc.returncode == 2
    assert "big.yml" in proc.stderr.decode()
    assert "Traceback" not in proc.stderr.decode()


def test_debug_shows_traceback(linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text("servces: []\n")
    proc = linuxkit("--debug", "build", "bad.yml", check=False)
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr.decode()


def test_unknown_flag_and_missing_file(linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    proc = linuxkit("build", "--nope", "x.yml", check=False)
    assert proc.returncode == 2
    proc = linuxkit("build", "missing.yml", check=False)
    assert proc.returncode == 2
    assert "missing.yml" in proc.stderr.decode()
    assert "Traceback" not in proc.stderr.decode()
