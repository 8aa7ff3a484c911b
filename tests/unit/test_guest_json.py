"""The runner's JSON reader (pkg/runc/files/usr/libexec/linuxkit/json.awk) under busybox awk, checked against jq."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.guest_harness import BUSYBOX, RUNC_FILES

pytestmark = pytest.mark.skipif(not BUSYBOX.exists(), reason="needs /bin/busybox (Debian package busybox-static)")

JSON_AWK = RUNC_FILES / "usr" / "libexec" / "linuxkit" / "json.awk"
SPEC_DATA = Path(__file__).resolve().parent.parent / "data" / "containerspec"
SPEC_FILES = sorted(p for p in SPEC_DATA.rglob("*.json") if p.name in ("runtime.json", "config.json"))
JQ = shutil.which("jq")
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# every leaf (scalar or empty container) as [path, value], in document order, from jq itself
JQ_LEAVES = (
    '[if (type == "object" or type == "array") and length > 0 then empty else [[], .] end,'
    " (paths as $p | getpath($p) as $v"
    ' | select((($v | type) != "object" and ($v | type) != "array") or ($v | length) == 0) | [$p, $v])]'
)

TRICKY = [
    '{"a": "tab\\there", "b": "nl\\nx", "c": "back\\\\slash", "d": "quote\\"", "e": "\\/slash\\b\\f\\r"}',
    '{"u": "\\u00e9\\u4e2d\\ud83d\\ude00", "raw": "é中😀", "nul": "a\\u0000b", "low": "x\\udc00y"}',
    '{"empty_a": [], "empty_o": {}, "nested": [[], {}, [[]], {"x": {}}], "s": ""}',
    '  \n\t{ "a" :\r\n [ 1 ,\n\n -2.5e+3 , 0 , 1E2, true , false , null ] ,"b":{ } }  \n',
    '{"annotations": {"org.linuxkit.restart": "always", "a b": 1, "q\\"k": 2, "\\u0001": 3, "é": 4, "1x": 5}}',
    '{"deep": [[[[[[{"k": [0, [1, {"z": "y"}]]}]]]]]]}',
    '["top", "level", {"array": true}]',
    '"just a string"',
    "42",
    "null",
    "{}",
    "[]",
]

INVALID = [
    "",
    "   ",
    "{",
    '{"a": 1,}',
    "[1, 2,]",
    '{"a" 1}',
    '{"a": tru}',
    '{"a": 01}',
    '{"a": "unterminated}',
    '{"a": "bad \\x escape"}',
    '{"a": "\\u12g4"}',
    '{"a": 1} {"b": 2}',
    "[1]]",
    '{"a": [1}',
    "{1: 2}",
    '{"a": "raw\ttab"}',
    '{"a": "x\\ud800y"}',
    '["\\ud800\\u0041"]',
]
# jq 1.6 accepts these, JSON does not
JQ_LENIENT = {'{"a": 01}'}


def awk_records(path: Path, *options: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(BUSYBOX), "awk", *options, "-f", str(JSON_AWK), str(path)], capture_output=True, check=False, timeout=30
    )


def path_text(path: list[Any]) -> str:
    """jq path array -> the reader's path expression."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif IDENT.fullmatch(part):
            out += f".{part}"
        else:
            # jq's tojson: short escapes, \u00XX for other controls and DEL, everything else as is
            out += "[" + json.dumps(part, ensure_ascii=False).replace("\x7f", "\\u007f") + "]"
    return "." + out if not out.startswith(".") else out


def value_text(value: Any) -> str:
    """What `jq -r` prints, with the reader's record escapes."""
    if isinstance(value, str):
        return (
            value.replace("\\", "\\\\")
            .replace("\n", "\\n")
            .replace("\t", "\\t")
            .replace("\r", "\\r")
            .replace("\0", "\\0")
        )
    if value == {}:
        return "{}"
    if value == []:
        return "[]"
    return json.dumps(value)


def jq_leaves(path: Path) -> list[tuple[str, Any]]:
    assert JQ is not None
    proc = subprocess.run([JQ, "-c", JQ_LEAVES, str(path)], capture_output=True, check=True, timeout=30)
    return [(path_text(p), v) for p, v in json.loads(proc.stdout)]


def assert_matches_jq(path: Path) -> None:
    proc = awk_records(path)
    assert proc.returncode == 0, proc.stderr
    got = [line.split(b"\t", 1) for line in proc.stdout.splitlines()]
    want = jq_leaves(path)
    assert [p.decode() for p, _ in got] == [p for p, _ in want]
    for (p, raw), (_, value) in zip(got, want, strict=True):
        text = raw.decode()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            # numbers are given as written; jq normalises them (1E2 -> 100)
            assert math.isclose(float(text), float(value)), p
        else:
            assert text == value_text(value), p


needs_jq = pytest.mark.skipif(JQ is None, reason="needs jq (Debian package jq) as the reference")


@needs_jq
@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: str(p.relative_to(SPEC_DATA)))
def test_spec_files_match_jq(path: Path) -> None:
    assert_matches_jq(path)


def test_spec_data_has_runtime_and_config_files() -> None:
    names = {p.name for p in SPEC_FILES}
    assert names == {"runtime.json", "config.json"} and len(SPEC_FILES) >= 10


@needs_jq
@pytest.mark.parametrize("text", TRICKY)
def test_tricky_inputs_match_jq(tmp_path: Path, text: str) -> None:
    path = tmp_path / "doc.json"
    path.write_text(text)
    assert_matches_jq(path)


def test_records_for_a_runtime_config(tmp_path: Path) -> None:
    path = tmp_path / "runtime.json"
    path.write_text(
        '{"mounts": [{"type": "tmpfs", "options": ["a=1", "b"]}], "mkdir": [], "bindNS": {"net": "/run/n s"},'
        ' "annotations": {"org.linuxkit.restart": "no"}, "n": 1.50, "x": "a\\\\b\\nc"}'
    )
    proc = awk_records(path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines() == [
        ".mounts[0].type\ttmpfs",
        ".mounts[0].options[0]\ta=1",
        ".mounts[0].options[1]\tb",
        ".mkdir\t[]",
        ".bindNS.net\t/run/n s",
        '.annotations["org.linuxkit.restart"]\tno',
        ".n\t1.50",  # as written
        ".x\ta\\\\b\\nc",
    ]


def test_utf8_and_escapes_are_decoded(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_text('{"k\\u00e9y": "\\u00e9\\ud83d\\ude00\\u0007|\\u0000|\\udc00"}')
    proc = awk_records(path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == '.["kéy"]\té😀\x07|\\0|\ufffd\n'.encode()


@pytest.mark.parametrize("text", INVALID)
def test_invalid_json_is_an_error_without_output(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    proc = awk_records(path)
    assert proc.returncode == 1
    assert proc.stdout == b""
    assert proc.stderr.startswith(b"json: ")
    if JQ is not None and text not in JQ_LENIENT:  # jq agrees that it is not one JSON document
        ref = subprocess.run([JQ, "-e", "-s", "length == 1", str(path)], capture_output=True, check=False)
        assert ref.returncode != 0


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("{}", True),
        ('{"a": 1}', True),
        ('{"a b": 1}', True),
        ("[1]", False),
        ('"s"', False),
        ("null", False),
        ("[]", False),
    ],
)
def test_top_object_option(tmp_path: Path, text: str, ok: bool) -> None:
    path = tmp_path / "doc.json"
    path.write_text(text)
    proc = awk_records(path, "-v", "top=object")
    assert proc.returncode == (0 if ok else 1), proc.stderr
    if not ok:
        assert b"not a JSON object" in proc.stderr


def test_a_large_document_is_quick(tmp_path: Path) -> None:
    doc = {"env": [f"VAR{i}=value {i}" for i in range(400)], "mounts": [{"destination": f"/m{i}"} for i in range(200)]}
    path = tmp_path / "big.json"
    path.write_text(json.dumps(doc))  # one long line
    proc = awk_records(path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 600
    assert lines[399] == ".env[399]\tVAR399=value 399" and lines[-1] == ".mounts[199].destination\t/m199"
