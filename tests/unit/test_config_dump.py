"""Dumps match upstream byte for byte (goldens produced by upstream v1.8.2 ``build --dry-run`` and ``metadata:``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linuxkit.config import schema
from linuxkit.config.dump import dump_json, dump_yaml, metadata_file
from linuxkit.config.yamlload import load_yaml
from linuxkit.gocompat.values import GoValue
from linuxkit.gocompat.yaml import marshal_yaml

UPSTREAM = "/work/upstream/bin/linuxkit"

DATA = Path(__file__).parent / "data" / "dump"
CONFIG = (DATA / "config.yml").read_text()
DRY_RUN = (DATA / "config.dry-run").read_text()  # upstream v1.8.2: linuxkit build --dry-run config.yml
META_CONFIG = (DATA / "metadata.yml").read_text()
META_YAML = (DATA / "metadata.yaml.golden").read_text()  # etc/linuxkit-config of linuxkit build metadata.yml
META_JSON = (DATA / "metadata.json.golden").read_text()  # etc/linuxkit.json of the same build


def model(text: str) -> schema.Moby:
    return schema.parse(schema.Moby, load_yaml(text.encode(), "c.yml").value)


def test_dry_run_matches_upstream_golden() -> None:
    # upstream prints the marshalled YAML with fmt.Println, hence one more newline
    assert dump_yaml(model(CONFIG)).decode() + "\n" == DRY_RUN


def test_metadata_yaml_is_go_yaml_v2() -> None:
    assert metadata_file(model(META_CONFIG), "yaml").decode() == META_YAML


def test_metadata_json_is_encoding_json() -> None:
    assert metadata_file(model(META_CONFIG), "json").decode() == META_JSON
    assert dump_json(model(META_CONFIG)).decode() == META_JSON


def test_metadata_expands_image_references_but_dry_run_does_not() -> None:
    m = model("kernel:\n  image: linuxkit/kernel:6.6\ninit: [alpine]\nvolumes:\n  - name: v\n    image: alpine\n")
    assert b"image: linuxkit/kernel:6.6" in dump_yaml(m)
    meta = metadata_file(m, "yaml").decode()
    assert "  image: docker.io/linuxkit/kernel:6.6\ninit:\n- docker.io/library/alpine\n" in meta
    assert "  image: alpine\n" in meta  # volumes are left alone, as upstream's UpdateImages does


@pytest.mark.parametrize(
    ("text", "v3", "v2"),
    [
        ("0644", '"0644"', '"0644"'),
        ("yes", '"yes"', '"yes"'),
        ("", '""', '""'),
        ("- x", "'- x'", "'- x'"),
        ("a: b", "'a: b'", "'a: b'"),
        ("x\n", "|\n        x", "|\n    x"),
        ("\tx\n", "|\n        \tx", '"\\tx\\n"'),
        ("\ufeffab", '"\\uFEFF\\x61\\x62"', '"\\uFEFF\\x61\\x62"'),
        ("1:20", '"1:20"', '"1:20"'),
        ("2001-12-14", '"2001-12-14"', '"2001-12-14"'),
        ("😀", '"\\U0001F600"', '"\\U0001F600"'),
    ],
)
def test_scalar_styles(text: str, v3: str, v2: str) -> None:
    value: GoValue = {"k": [{"s": text}]}
    assert marshal_yaml(value, v3=True).decode() == f"k:\n    - s: {v3}\n"
    assert marshal_yaml(value, v3=False).decode() == f"k:\n- s: {v2}\n"


def test_v2_folds_long_plain_lines_at_80_columns() -> None:
    words = " ".join(["word"] * 30)
    out = marshal_yaml({"cmdline": words}, v3=False).decode()
    assert out.splitlines()[0] == "cmdline: " + " ".join(["word"] * 15)
    assert out.splitlines()[1] == "  " + " ".join(["word"] * 15)
    assert marshal_yaml({"cmdline": words}, v3=True).decode() == f"cmdline: {words}\n"


def test_map_keys_sort_like_go_yaml() -> None:
    keys = ["b", "a10", "a2", "A", "a", "1"]
    out = marshal_yaml({k: "x" for k in keys}, v3=True).decode()
    assert [line.split(":")[0] for line in out.splitlines()] == ['"1"', "A", "a", "a2", "a10", "b"]


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=30))
@settings(max_examples=200)
def test_dump_round_trips_through_our_loader(text: str) -> None:
    m = schema.Moby(init=["alpine"], kernel=schema.Kernel(image="k", cmdline=text))
    v3 = load_yaml(dump_yaml(m), "d.yml").value
    v2 = load_yaml(metadata_file(m, "yaml"), "d.yml").value
    assert isinstance(v3, dict) and isinstance(v2, dict)
    assert v2["kernel"].get("cmdline", "") == text
    # go-yaml v3 drops the leading newline of a literal block (go-yaml #755), and so do we
    expected = (text, text[1:]) if text.startswith("\n") else (text,)
    assert v3["kernel"].get("cmdline", "") in expected


@pytest.mark.skipif(not os.access(UPSTREAM, os.X_OK), reason="no upstream linuxkit binary at " + UPSTREAM)
def test_against_upstream_binary(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text(CONFIG)
    out = subprocess.run([UPSTREAM, "build", "--dry-run", str(path)], capture_output=True, check=True).stdout
    assert dump_yaml(model(CONFIG)) + b"\n" == out
    meta = tmp_path / "m.yml"
    meta.write_text(META_CONFIG)
    tar = tmp_path / "m.tar"
    subprocess.run(
        [UPSTREAM, "build", "--no-sbom", "--format", "tar", "--o", str(tar), str(meta)],
        capture_output=True,
        check=True,
        cwd=tmp_path,
    )
    with tarfile.open(tar) as tf:
        yml = tf.extractfile("etc/linuxkit-config")
        js = tf.extractfile("etc/linuxkit.json")
        assert yml is not None and js is not None
        assert metadata_file(model(META_CONFIG), "yaml") == yml.read()
        assert metadata_file(model(META_CONFIG), "json") == js.read()
    assert shutil.which("true")
