"""linuxkit.gocompat.json reproduces Go's encoding/json output."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linuxkit.gocompat.json import encode_float, encode_string, marshal, marshal_indent, sorted_map
from linuxkit.gocompat.values import Field, NilSlice, Struct, to_plain


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("plain", '"plain"'),
        ("<a href='x'>&</a>", r'"\u003ca href=\'x\'\u003e\u0026\u003c/a\u003e"'.replace("\\'", "'")),
        ('quote " and \\ backslash', r'"quote \" and \\ backslash"'),
        ("\n\r\t\b\f", r'"\n\r\t\b\f"'),
        ("\x00\x01\x1f\x7f", '"\\u0000\\u0001\\u001f\x7f"'),
        ("\u2028\u2029", r'"\u2028\u2029"'),
        ("é 😀 中", '"é 😀 中"'),
        ("bad \udcff byte", r'"bad \ufffd byte"'),
    ],
)
def test_string_escaping(text: str, want: str) -> None:
    assert encode_string(text) == want


@pytest.mark.parametrize(
    ("value", "want"),
    [
        (0.0, "0"),
        (-0.0, "-0"),
        (1.0, "1"),
        (1.5, "1.5"),
        (-2.25, "-2.25"),
        (0.1, "0.1"),
        (123456789.0, "123456789"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e300, "1.5e+300"),
        (0.000001, "0.000001"),
        (1e-7, "1e-7"),
        (1.25e-10, "1.25e-10"),
        (5e-324, "5e-324"),
        (1e-100, "1e-100"),
        (2.5e16, "25000000000000000"),
    ],
)
def test_float_formatting(value: float, want: str) -> None:
    assert encode_float(value) == want


def test_non_finite_floats_are_rejected() -> None:
    with pytest.raises(ValueError):
        marshal(math.inf)
    with pytest.raises(ValueError):
        marshal(math.nan)


def test_layout_matches_go_marshal_indent() -> None:
    value = {"b": [], "a": {}, "c": [1, {"d": None, "e": True}], "f": False, "g": "x"}
    assert marshal_indent(value) == (
        b'{\n    "b": [],\n    "a": {},\n    "c": [\n        1,\n        {\n            "d": null,\n'
        b'            "e": true\n        }\n    ],\n    "f": false,\n    "g": "x"\n}'
    )
    assert marshal(value) == b'{"b":[],"a":{},"c":[1,{"d":null,"e":true}],"f":false,"g":"x"}'
    assert marshal_indent([]) == b"[]"
    assert marshal_indent("x") == b'"x"'


def test_bytes_are_base64_and_keys_escaped() -> None:
    assert marshal({"<k>": b"\x00\xff"}) == b'{"\\u003ck\\u003e":"AP8="}'


def test_sorted_map_uses_byte_order() -> None:
    assert list(sorted_map({"b": 1, "B": 2, "a": 3, "é": 4, "z": 5})) == ["B", "a", "b", "z", "é"]


def test_unsupported_values() -> None:
    with pytest.raises(TypeError):
        marshal({1: "x"})
    with pytest.raises(TypeError):
        marshal(object())


_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]))
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats(allow_nan=False, allow_infinity=False) | _text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=20,
)


def _same(parsed: Any, value: Any) -> bool:
    """Equality where a float may come back as an int (Go writes 1e20 as 100000000000000000000)."""
    if isinstance(value, float):
        return isinstance(parsed, int | float) and not isinstance(parsed, bool) and float(parsed) == value
    if isinstance(value, dict):
        return (
            isinstance(parsed, dict) and list(parsed) == list(value) and all(_same(parsed[k], value[k]) for k in value)
        )
    if isinstance(value, list):
        return isinstance(parsed, list) and len(parsed) == len(value) and all(map(_same, parsed, value))
    return bool(parsed == value) and type(parsed) is type(value)


@given(_json)
def test_round_trip(value: Any) -> None:
    indented = marshal_indent(value)
    compact = marshal(value)
    assert _same(json.loads(indented), value)
    assert _same(json.loads(compact), value)
    text = indented.decode("utf-8")
    # formatting invariants: no trailing newline, 4-space indentation, only ASCII-safe HTML characters
    assert not text.endswith("\n")
    assert not any(ch in text for ch in "<>&\u2028\u2029")
    for line in text.split("\n"):
        indent = len(line) - len(line.lstrip(" "))
        assert indent % 4 == 0
        assert not line.endswith(" ")
    # the compact form is the indented one without the layout whitespace
    assert json.loads(compact) == json.loads(indented)
    assert len(compact) <= len(indented)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_round_trip(value: float) -> None:
    text = encode_float(value)
    assert float(text) == value
    assert ("e" in text) == (value != 0 and not 1e-6 <= abs(value) < 1e21)


def test_go_values_print_through_the_same_encoder() -> None:
    """``metadata: json`` (config dump) and the bundle specs share this encoder: invalid UTF-8 (from
    ``!!binary``) is ``\\ufffd``, as Go writes it, nil slices are ``null``, ``omitempty`` drops."""
    value = Struct([Field("a", "x\udcffy"), Field("b", NilSlice()), Field("c", "", omitempty=True)])
    assert marshal_indent(to_plain(value, json=True)) == b'{\n    "a": "x\\ufffdy",\n    "b": null\n}'
