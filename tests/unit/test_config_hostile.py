"""Hostile config inputs: traversing names and paths, odd encodings, deep nesting, and a fuzz test
that no input makes the loader fail with anything but a located :class:`UserError`."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linuxkit.config import paths, schema
from linuxkit.config.load import load_configs, parse_config
from linuxkit.config.yamlload import MAX_DEPTH, load_yaml
from linuxkit.errors import ConfigError, UserError


def diagnostics(tmp_path: Path, text: str | bytes) -> list[str]:
    """Every diagnostic headline of loading ``text`` as ``c.yml`` (relative to ``tmp_path``)."""
    path = tmp_path / "c.yml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    with pytest.raises(ConfigError) as info:
        load_configs([str(path)], resolve_packages=False)
    return [d.headline().replace(str(tmp_path) + "/", "") for d in info.value.diagnostics]


# ------------------------------------------------------------------ the rules


@pytest.mark.parametrize(
    ("name", "problem"),
    [("", "is empty"), (".", "is '.'"), ("..", "is '..'"), ("a/b", "contains '/'"), ("a\0b", "NUL"), ("../x", "/")],
)
def test_name_must_be_one_path_component(name: str, problem: str) -> None:
    assert problem in (paths.name_problem(name) or "")


@pytest.mark.parametrize("name", ["a", "a.b", "...", "-x", "getty", "a b", "a..b"])
def test_ordinary_names_pass(name: str) -> None:
    assert paths.name_problem(name) is None


def test_path_rules() -> None:
    assert paths.container_destination_problem("/a/b") is None
    assert paths.container_destination_problem("/a/..b/c..") is None
    assert paths.container_destination_problem("a/b") is None  # below the container root, as upstream
    assert "'..'" in (paths.container_destination_problem("/a/../../b") or "")
    assert "'..'" in (paths.container_destination_problem("/..") or "")
    assert "NUL" in (paths.container_destination_problem("/a\0") or "")
    # runtime paths: relative (under the container's root) and absolute (host) are both fine
    assert paths.runtime_path_problem("writeable-host-etc") is None
    assert paths.runtime_path_problem("/var/lib/docker") is None
    assert "'..'" in (paths.runtime_path_problem("../../etc") or "")
    assert "'..'" in (paths.runtime_path_problem("a/..") or "")
    assert paths.file_path_problem("/etc/x") is None and paths.file_path_problem("etc/x") is None
    assert "root" in (paths.file_path_problem("//") or "")
    assert "'..'" in (paths.file_path_problem("a/../b") or "")


# ------------------------------------------------------------------ located errors from the YAML


@pytest.mark.parametrize("section", ["onboot", "onshutdown", "services"])
def test_traversing_container_name_is_located(tmp_path: Path, section: str) -> None:
    text = f"{section}:\n  - name: ok\n    image: x:1\n  - name: ../../../../tmp/x\n    image: x:1\n"
    assert diagnostics(tmp_path, text) == [
        f"c.yml:4:11: {section}[1].name: invalid container name '../../../../tmp/x': it contains '/'"
    ]


@pytest.mark.parametrize(("name", "problem"), [('""', "is empty"), ("..", "is '..'"), ('"a\\0b"', "NUL")])
def test_other_bad_container_names(tmp_path: Path, name: str, problem: str) -> None:
    (headline,) = diagnostics(tmp_path, f"services:\n  - name: {name}\n    image: x:1\n")
    assert headline.startswith("c.yml:2:11: services[0].name: invalid container name") and problem in headline


def test_volume_names(tmp_path: Path) -> None:
    text = 'volumes:\n  - name: ""\n  - image: x:1\n  - name: ..\n  - name: ok\n'
    assert diagnostics(tmp_path, text) == [
        "c.yml:2:11: volumes[0].name: invalid volume name ''",
        "c.yml:3:5: volumes[1]: a volume needs a name",
        "c.yml:4:11: volumes[2].name: invalid volume name '..'",
    ]


def test_mount_destinations_and_runtime_paths_are_located(tmp_path: Path) -> None:
    text = """\
services:
  - name: s
    image: x:1
    binds: [/host:/ok, /host:/a/../../x, "/host:rel:ro"]
    binds.add: [/h:/../etc]
    tmpfs: [/tmp, ../t]
    mounts:
      - type: proc
      - type: bind
        source: /x
        destination: /a/..
      - type: tmpfs
        destination: relative
    runtime:
      mkdir: [/var/lib/ok, relative/ok, ../../../etc/x]
      cgroups: [ok, ../../x]
      mounts:
        - type: overlay
          source: overlay
          destination: writeable-host-etc
        - type: bind
          source: /
          destination: ../../escape
"""
    assert diagnostics(tmp_path, text) == [
        "c.yml:4:24: services[0].binds[1]: bind destination '/a/../../x' contains a '..' component",
        "c.yml:5:17: services[0].binds.add[0]: bind destination '/../etc' contains a '..' component",
        "c.yml:6:19: services[0].tmpfs[1]: tmpfs destination '../t' contains a '..' component",
        "c.yml:11:22: services[0].mounts[1].destination: mount destination '/a/..' contains a '..' component",
        "c.yml:15:41: services[0].runtime.mkdir[2]: mkdir path '../../../etc/x' contains a '..' component",
        "c.yml:16:21: services[0].runtime.cgroups[1]: cgroup '../../x' contains a '..' component",
        "c.yml:23:24: services[0].runtime.mounts[1].destination: "
        "runtime mount destination '../../escape' contains a '..' component",
    ]


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("../x", "contains a '..' component"),
        ("a/../../b", "contains a '..' component"),
        ("/", "names the root of the image"),
    ],
)
def test_traversing_file_path_is_located(tmp_path: Path, path: str, problem: str) -> None:
    text = f"files:\n  - path: ok\n    contents: x\n  - path: {path}\n    contents: x\n"
    assert diagnostics(tmp_path, text) == [f"c.yml:4:11: files[1].path: file path {path!r} {problem}"]


# ------------------------------------------------------------------ encodings and nesting


def test_utf16_with_bom_is_read_like_go_yaml() -> None:
    text = "services:\n  - name: é\n    image: x:1\n"
    for codec, bom in (("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", codecs.BOM_UTF16_BE)):
        doc = load_yaml(bom + text.encode(codec), "f")
        assert doc.value == {"services": [{"name": "é", "image": "x:1"}]}
        assert str(doc.locate(("services", 0, "image"))) == "f:3:12"


@pytest.mark.parametrize(
    ("data", "where", "message"),
    [
        (codecs.BOM_UTF16_LE + "a: b\nc".encode("utf-16-le") + b"d", "f:2:2", "truncated UTF-16 data"),
        (codecs.BOM_UTF16_BE + "a: b\n".encode("utf-16-be") + b"\xdc\x00", "f:2:1", "invalid UTF-16"),
        (codecs.BOM_UTF16_LE + "ab".encode("utf-16-le") + b"\x00\xd8a\x00", "f:1:3", "invalid UTF-16"),
        (codecs.BOM_UTF32_LE + "a: b\n".encode("utf-32-le"), "f:1:1", "UTF-32"),
        (codecs.BOM_UTF32_BE + "a: b\n".encode("utf-32-be"), "f:1:1", "UTF-32"),
        (b"a:\n  b: \xc3\xa9\xff\n", "f:2:7", "invalid UTF-8"),
        (codecs.BOM_UTF8 + b"a:\n \xc3\xa9\xc3(\n", "f:2:3", "invalid UTF-8"),
    ],
)
def test_bad_encodings_are_located(data: bytes, where: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_yaml(data, "f")
    assert str(info.value.location) == where and message in info.value.message


@pytest.mark.parametrize("text", ["[" * 999 + "]" * 999, "a: " + "{b: " * 500 + "1" + "}" * 500])
def test_deep_nesting_is_refused_not_a_recursion_error(text: str) -> None:
    with pytest.raises(ConfigError, match=f"nested more than {MAX_DEPTH} levels"):
        parse_config(text.encode(), "f")


def test_nesting_up_to_the_limit_is_fine() -> None:
    text = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert load_yaml(text, "f").value is not None


# ------------------------------------------------------------------ fuzz: only located user errors

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["", "..", "../x", "/a/../b", "a/b", "all", "CAP_KILL", "0644", "/a:/b", "a:b:c:d", "@pkg:x"]),
)
_ANY = st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
)


def _for_type(tp: Any) -> st.SearchStrategy[Any]:
    """Values shaped like the schema type ``tp`` (often right, sometimes anything at all)."""
    import types
    import typing

    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*[_for_type(arg) for arg in typing.get_args(tp)])
    if origin is list:
        return st.lists(_for_type(typing.get_args(tp)[0]), max_size=3) | _SCALARS
    if origin is dict:
        return st.dictionaries(st.text(max_size=6), _for_type(typing.get_args(tp)[1]), max_size=3) | _SCALARS
    if isinstance(tp, type) and issubclass(tp, schema.Model):
        hints = typing.get_type_hints(tp)
        fields = {spec.key: hints[spec.attr] for spec in schema.fields_of(tp)}
        keys = st.lists(st.sampled_from(sorted(fields)), unique=True, max_size=6)

        def entries(chosen: list[str]) -> st.SearchStrategy[dict[str, Any]]:
            return st.fixed_dictionaries({k: _for_type(fields[k]) for k in chosen})

        return keys.flatmap(entries)
    if tp is Any:
        return _ANY
    return _SCALARS


def _parse_only_user_errors(data: bytes) -> None:
    try:
        parse_config(data, "f.yml")
    except UserError as exc:
        assert exc.exit_code == 2
        assert all(d.location is not None and d.location.file == "f.yml" for d in exc.diagnostics)


_BOMS = [b"", codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(_BOMS), st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(bom: bytes, data: bytes) -> None:
    _parse_only_user_errors(bom + data)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(_for_type(schema.Moby), st.sampled_from(["utf-8", "utf-16"]))
def test_fuzz_schema_shaped_yaml(value: Any, encoding: str) -> None:
    text = yaml.safe_dump(value, allow_unicode=True)
    _parse_only_user_errors(text.encode(encoding))


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.text(alphabet=st.sampled_from(list("[]{}:,-?&*!|>'\"#%@ \n\tab0.~\\")), max_size=200),
    st.integers(min_value=0, max_value=990),
    st.sampled_from(["[]", "{}"]),
)
def test_fuzz_yaml_syntax(text: str, depth: int, brackets: str) -> None:
    _parse_only_user_errors((brackets[0] * depth + text + brackets[1] * depth).encode())
