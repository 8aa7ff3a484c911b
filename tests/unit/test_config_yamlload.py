"""YAML loading: go-yaml v3 scalar rules, positions, merges, duplicates and abuse limits."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linuxkit.config.yamlload import is_plain_string, load_yaml, resolve_plain
from linuxkit.errors import ConfigError, Location


def value(text: str) -> object:
    return load_yaml(text.encode(), "t.yml").value


def error(text: str, **kwargs: int) -> str:
    with pytest.raises(ConfigError) as info:
        load_yaml(text.encode(), "t.yml", **kwargs)
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("yes", "yes"),
        ("on", "on"),
        ("No", "No"),
        ("true", True),
        ("FALSE", False),
        ("~", None),
        ("null", None),
        ("0644", 420),  # Go's base-0 ParseInt: a leading 0 means octal
        ("0o17", 15),
        ("0x1F", 31),
        ("0b101", 5),
        ("-0b101", -5),
        ("1_000", 1000),
        ("+12", 12),
        ("08", 8.0),  # not octal, not an int, but a YAML-style float
        (".5", 0.5),
        ("1e3", 1000.0),
        ("1e30644", "1e30644"),  # ParseFloat overflows: stays a string
        ("18446744073709551615", 18446744073709551615),  # ParseUint
        ("18446744073709551616", 1.8446744073709552e19),
        ("2001-12-14", "2001-12-14"),
        ("1:20", "1:20"),
        ("0x", "0x"),
        ("-x", "-x"),
        ("+.inf", math.inf),
    ],
)
def test_scalars_resolve_like_go_yaml_v3(text: str, expected: object) -> None:
    got = value(f"k: {text}\n")
    assert got == {"k": expected}
    assert isinstance(got, dict)
    assert type(got["k"]) is type(expected)


def test_quoted_and_tagged_scalars_stay_strings() -> None:
    assert value('a: "0644"\nb: !!str 12\nc: |\n  x\n') == {"a": "0644", "b": "12", "c": "x\n"}
    assert value("a: !!float 1\nb: !!int 0x10\n") == {"a": 1.0, "b": 16}
    assert "cannot decode 'abc' as !!int" in error("a: !!int abc\n")


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_decimal_ints_round_trip(number: int) -> None:
    assert resolve_plain(str(number)) == number


@given(st.text(max_size=12))
def test_plain_strings_resolve_to_themselves(text: str) -> None:
    if is_plain_string(text):
        assert resolve_plain(text) == text


def test_positions_of_keys_and_values() -> None:
    doc = load_yaml(b"a:\n  - x\n  - k: v\nb: 1\n", "f.yml")
    assert doc.positions[("a", 0)] == Location("f.yml", 2, 5)
    assert doc.positions[("a", 1, "k")] == Location("f.yml", 3, 8)
    assert doc.key_positions[("a", 1, "k")] == Location("f.yml", 3, 5)
    assert doc.key_positions[("b",)] == Location("f.yml", 4, 1)
    assert doc.locate(("a", 1, "missing")) == Location("f.yml", 3, 5)


def test_merge_keys_explicit_wins_then_first_merge() -> None:
    text = "x: &x {a: 1, b: 1}\ny: &y {b: 2, c: 2}\nz:\n  <<: [*x, *y]\n  a: 0\n"
    assert value(text)["z"] == {"a": 0, "b": 1, "c": 2}  # type: ignore[index]


def test_merge_of_a_scalar_is_an_error() -> None:
    assert "map merge requires map or sequence of maps" in error("a: &a 1\nb:\n  <<: *a\n")


def test_duplicate_keys_are_rejected_with_both_lines() -> None:
    assert error("a: 1\nb: 2\na: 3\n") == (
        "t.yml:3:1: mapping key 'a' already defined at line 1\n  hint: YAML keys must be unique within a mapping"
    )


def test_non_string_keys_are_rejected() -> None:
    assert error("1: x\n").startswith("t.yml:1:1: mapping key '1' is not a string")


def test_alias_bomb_is_refused_at_the_alias_that_crosses_go_yamls_ratio() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 10) + "]")
    message = error("\n".join(lines) + "\n")
    # d's third *c (line 4, column 14) is being expanded when 99% of the decoded nodes come from aliases
    assert message.startswith("t.yml:4:14: document contains excessive aliasing: 4258 of the first 4301 nodes")
    assert "alias bomb" in message


def _fan_out(items: int, aliases: int) -> str:
    return "a: &a [" + ",".join(["x"] * items) + "]\nb: [" + ",".join(["*a"] * aliases) + "]\n"


def _merges(keys: int, maps: int) -> str:
    base = "{" + ",".join(f"k{i}: v" for i in range(keys)) + "}"
    return f"base: &b {base}\nitems: [" + ",".join(["{<<: *b, z: 1}"] * maps) + "]\n"


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        # where go-yaml v3 (linuxkit's vendored decoder, run on these files) starts refusing
        (_fan_out(150, 297), False),
        (_fan_out(150, 298), True),
        (_merges(150, 1436), False),
        (_merges(150, 1437), True),
    ],
)
def test_alias_ratio_matches_go_yaml_at_its_boundary(text: str, refused: bool) -> None:
    if refused:
        assert "document contains excessive aliasing" in error(text)
    else:
        load_yaml(text, "t.yml")


def test_small_file_expanding_to_300000_nodes_is_refused() -> None:
    # 200 strings, 10 lists of 30 aliases to them, a list of 50 aliases to those lists
    words = ",".join(f"item-{i:04d}-padding" for i in range(200))
    lists = "".join(f"l{j}: &l{j} [" + ",".join(["*w"] * 30) + "]\n" for j in range(10))
    text = f"w: &w [{words}]\n{lists}all: [" + ",".join(f"*l{j % 10}" for j in range(50)) + "]\n"
    assert 4_000 < len(text) < 6_000
    message = error(text)  # (it used to load: ~360,000 nodes are under the million-node cap)
    assert "document contains excessive aliasing" in message
    line, col = (int(part) for part in message.split(":")[1:3])
    written = text.splitlines()[line - 1]
    assert written.startswith("l") and written[col - 1 : col + 1] == "*w", (written, col)


def test_moderate_aliasing_is_accepted() -> None:
    text = (
        "a: &a [" + ",".join(["x"] * 20) + "]\nb: [" + ",".join(["*a"] * 40) + "]\nc: [" + ",".join(["1"] * 100) + "]\n"
    )
    assert len(value(text)["b"]) == 40  # type: ignore[index]


def test_node_cap_still_applies() -> None:
    assert "document expands to more than 50 nodes" in error("[" + ",".join(["1"] * 60) + "]\n", max_nodes=50)


def test_source_text_of_scalars_that_are_not_strings_is_kept() -> None:
    doc = load_yaml("mode: 0666\nflag: true\nname: x\nlist: [1.50, '2']\n", "t.yml")
    assert doc.value["mode"] == 0o666
    assert dict(doc.texts) == {("mode",): "0666", ("flag",): "true", ("list", 0): "1.50"}


def test_recursive_anchor_is_refused() -> None:
    assert "anchor value contains itself" in error("a: &a [*a]\n")


def test_huge_file_is_refused() -> None:
    assert error("a: 12345\n", max_bytes=4) == "t.yml:1:1: YAML file is too large (9 bytes, limit 4)"


def test_syntax_error_is_located() -> None:
    assert error("a: [1, 2\nb: 3\n").startswith("t.yml:2:2: YAML syntax error: while parsing a flow sequence")


def test_invalid_utf8_is_located() -> None:
    with pytest.raises(ConfigError) as info:
        load_yaml(b"a: 1\nb: \xff\n", "t.yml")
    assert str(info.value).startswith("t.yml:2:4: invalid UTF-8 in YAML file")


def test_only_first_document_is_used() -> None:
    assert value("a: 1\n---\nb: 2\n") == {"a": 1}


def test_empty_stream_has_no_value() -> None:
    assert value("# nothing\n") is None
