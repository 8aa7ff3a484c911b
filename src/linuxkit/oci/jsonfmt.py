"""JSON bytes the way Go's ``encoding/json`` writes them, so files we write match upstream's.

Go escapes ``<``, ``>``, ``&``, U+2028 and U+2029 inside strings, writes other non-ASCII as UTF-8,
sorts map keys and writes struct fields in declaration order. Struct order is given here as key
tables; keys a table does not know follow, sorted (Go would drop them; we keep them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

DESCRIPTOR_KEYS = ("mediaType", "size", "digest", "data", "urls", "annotations", "platform", "artifactType")
PLATFORM_KEYS = ("architecture", "os", "os.version", "os.features", "variant", "features")
INDEX_KEYS = ("schemaVersion", "mediaType", "manifests", "annotations", "subject")
MANIFEST_KEYS = ("schemaVersion", "mediaType", "config", "layers", "annotations", "subject")
CONFIG_KEYS = (
    "architecture",
    "author",
    "container",
    "created",
    "docker_version",
    "history",
    "os",
    "rootfs",
    "config",
    "os.version",
    "variant",
    "os.features",
)

_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def ordered(obj: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """``obj`` with ``keys`` first in that order, then the other keys sorted."""
    out = {k: obj[k] for k in keys if k in obj}
    for k in sorted(obj):
        if k not in out:
            out[k] = obj[k]
    return out


def dumps(obj: Any, *, indent: int | None = None) -> bytes:
    """Go-compatible JSON bytes: compact like ``json.Marshal`` or indented like ``MarshalIndent``.

    Dict key order is kept as given (use :func:`ordered` and sorted maps to match Go). No
    trailing newline, as Go writes none.
    """
    if indent is None:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    else:
        text = json.dumps(obj, ensure_ascii=False, indent=" " * indent, separators=(",", ": "), allow_nan=False)
    for char, escape in _GO_ESCAPES.items():
        if char in text:
            text = text.replace(char, escape)
    return text.encode()


def sorted_map(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: obj[k] for k in sorted(obj)}


def loads(data: bytes, what: str) -> Any:
    """Parse JSON; ``ValueError`` naming ``what`` on bad input."""
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{what}: not valid JSON ({exc})") from exc
