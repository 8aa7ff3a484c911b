"""``linuxkit schema``: the JSON Schema generated from the schema declaration accepts every example,
rejects what the checker rejects, and is the committed ``docs/linuxkit.schema.json`` that the
examples name for editors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from linuxkit.cli.main import main
from linuxkit.config import schema
from linuxkit.config.jsonschema import json_schema, render
from linuxkit.config.yamlload import load_yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yml"))
COMMITTED = ROOT / "docs" / "linuxkit.schema.json"
MODELINE = "# yaml-language-server: $schema=../docs/linuxkit.schema.json"


def _validator() -> jsonschema.protocols.Validator:
    doc = json_schema()
    jsonschema.Draft202012Validator.check_schema(doc)
    return jsonschema.Draft202012Validator(doc)


def test_the_committed_schema_is_the_generated_one() -> None:
    assert COMMITTED.read_text() == render(), "regenerate it: linuxkit schema > docs/linuxkit.schema.json"


def test_the_schema_verb_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    out = capsys.readouterr().out
    assert out == render()
    assert json.loads(out)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_valid_and_names_the_schema(path: Path) -> None:
    assert path.read_text().splitlines()[0] == MODELINE
    assert (path.parent / MODELINE.split("=", 1)[1]).resolve() == COMMITTED
    value = load_yaml(path.read_bytes(), path.name).value
    assert list(_validator().iter_errors(value)) == []
    assert schema.check(schema.Moby, value)[1] == []


BAD: list[tuple[str, dict[str, Any]]] = [
    ("unknown top-level key", {"kernal": {"image": "k:1"}}),
    ("unknown nested key", {"services": [{"name": "a", "image": "b:1", "capabilties": ["CAP_KILL"]}]}),
    ("missing name", {"onboot": [{"image": "b:1"}]}),
    ("string for a boolean", {"files": [{"path": "etc/x", "contents": "", "optional": "yes"}]}),
    ("number for a mode string", {"files": [{"path": "etc/x", "contents": "", "mode": 644}]}),
    ("volume format not in the enum", {"volumes": [{"name": "v", "format": "tar"}]}),
    ("list for a uid", {"files": [{"path": "etc/x", "contents": "", "uid": [1]}]}),
    ("string for a list", {"init": "linuxkit/init:1"}),
    ("number in sysctl", {"services": [{"name": "a", "image": "b:1", "sysctl": {"a": 1}}]}),
    ("unknown runtime-spec key", {"services": [{"name": "a", "image": "b:1", "resources": {"memory": {"x": 1}}}]}),
]


@pytest.mark.parametrize(("what", "doc"), BAD, ids=[b[0] for b in BAD])
def test_bad_documents_are_rejected_by_both(what: str, doc: dict[str, Any]) -> None:
    assert list(_validator().iter_errors(doc)) != []
    assert schema.check(schema.Moby, doc)[1] != []


def test_empty_values_and_int_or_string_ids_are_accepted_by_both() -> None:
    doc: dict[str, Any] = {
        "kernel": None,
        "files": [{"path": "etc/x", "contents": "", "uid": 0, "gid": "root"}],
        "services": [{"name": "a", "image": "b:1", "additionalGids": [1, "a"], "runtime": {"bindNS": None}}],
    }
    assert list(_validator().iter_errors(doc)) == []
    assert schema.check(schema.Moby, doc)[1] == []
