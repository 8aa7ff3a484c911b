"""JSON encoding that reproduces Go's ``encoding/json`` byte for byte.

Upstream writes every ``config.json`` and ``runtime.json`` with ``json.MarshalIndent(v, "", "    ")``.
Python's :mod:`json` differs in escaping (Go escapes ``<``, ``>``, ``&``, U+2028 and U+2029 and keeps other
non-ASCII text as UTF-8), in float formatting and in the layout of empty containers, so the bytes are
produced here instead.

Values are ``dict`` (keys in insertion order: callers build them in Go struct field order and sort the
keys of what Go holds as a map, see :func:`sorted_map`), ``list``/``tuple``, ``str``, ``int``, ``float``,
``bool``, ``None`` and ``bytes`` (base64, as Go encodes ``[]byte``).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

_INDENT = "    "
_HEX = "0123456789abcdef"
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def sorted_map(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``mapping`` with its keys in the order Go emits a ``map[string]T`` (byte order)."""
    return {key: mapping[key] for key in sorted(mapping, key=lambda k: k.encode("utf-8", "surrogatepass"))}


def _escape_char(ch: str) -> str:
    short = _SHORT_ESCAPES.get(ch)
    if short is not None:
        return short
    code = ord(ch)
    if 0xD800 <= code <= 0xDFFF:  # a lone surrogate stands for invalid UTF-8, which Go replaces
        return "\\ufffd"
    return "\\u" + "".join(_HEX[(code >> shift) & 0xF] for shift in (12, 8, 4, 0))


def _needs_escape(ch: str) -> bool:
    code = ord(ch)
    return code < 0x20 or ch in '"\\<>&' or code in (0x2028, 0x2029) or 0xD800 <= code <= 0xDFFF


def encode_string(text: str) -> str:
    """``text`` as a Go JSON string literal, quotes included (HTML-safe escaping, as Go's default)."""
    if not any(_needs_escape(ch) for ch in text):
        return '"' + text + '"'
    return '"' + "".join(_escape_char(ch) if _needs_escape(ch) else ch for ch in text) + '"'


def encode_float(value: float) -> str:
    """A float64 the way Go's encoder writes it (shortest digits; exponent form below 1e-6 or from 1e21)."""
    if not math.isfinite(value):
        raise ValueError(f"json: unsupported value: {value!r}")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(str(d) for d in digit_tuple)
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    digits = stripped
    prefix = "-" if sign else ""
    magnitude = abs(value)
    if magnitude < 1e-6 or magnitude >= 1e21:
        point_exp = exponent + len(digits) - 1
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        exp_text = f"{abs(point_exp):02d}"
        if point_exp < 0 and exp_text.startswith("0"):
            exp_text = exp_text[1:]  # Go trims e-07 to e-7 (but keeps e+21)
        return f"{prefix}{mantissa}e{'-' if point_exp < 0 else '+'}{exp_text}"
    if exponent >= 0:
        return prefix + digits + "0" * exponent
    point = len(digits) + exponent
    if point > 0:
        return prefix + digits[:point] + "." + digits[point:]
    return prefix + "0." + "0" * (-point) + digits


def _scalar(value: Any) -> str | None:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return encode_float(value)
    if isinstance(value, str):
        return encode_string(value)
    if isinstance(value, bytes | bytearray):
        return '"' + base64.b64encode(bytes(value)).decode("ascii") + '"'
    return None


def _encode(value: Any, out: list[str], indent: str | None, depth: int) -> None:
    scalar = _scalar(value)
    if scalar is not None:
        out.append(scalar)
        return
    if isinstance(value, Mapping):
        items: list[tuple[str, Any]] = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"json: unsupported map key type {type(key).__name__}")
            items.append((key, item))
        if not items:
            out.append("{}")
            return
        out.append("{")
        for index, (key, item) in enumerate(items):
            if index:
                out.append(",")
            if indent is not None:
                out.append("\n" + indent * (depth + 1))
            out.append(encode_string(key))
            out.append(": " if indent is not None else ":")
            _encode(item, out, indent, depth + 1)
        if indent is not None:
            out.append("\n" + indent * depth)
        out.append("}")
        return
    if isinstance(value, list | tuple):
        if not value:
            out.append("[]")
            return
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            if indent is not None:
                out.append("\n" + indent * (depth + 1))
            _encode(item, out, indent, depth + 1)
        if indent is not None:
            out.append("\n" + indent * depth)
        out.append("]")
        return
    raise TypeError(f"json: unsupported type {type(value).__name__}")


def _to_bytes(parts: list[str]) -> bytes:
    return "".join(parts).encode("utf-8", "surrogatepass")


def marshal(obj: Any) -> bytes:
    """What Go's ``json.Marshal(obj)`` returns (compact, no trailing newline)."""
    out: list[str] = []
    _encode(obj, out, None, 0)
    return _to_bytes(out)


def marshal_indent(obj: Any) -> bytes:
    """What Go's ``json.MarshalIndent(obj, "", "    ")`` returns (no trailing newline)."""
    out: list[str] = []
    _encode(obj, out, _INDENT, 0)
    return _to_bytes(out)
