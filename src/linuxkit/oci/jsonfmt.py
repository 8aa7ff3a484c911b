"""JSON bytes the way Go's ``encoding/json`` writes them, so files we write match upstream's.

Go escapes ``<``, ``>``, ``&``, U+2028 and U+2029 inside strings, writes other non-ASCII as UTF-8,
sorts map keys and writes struct fields in declaration order. Struct order is given here as key
tables; keys a table does not know follow, sorted (Go would drop them; we keep them).
"""

from __future__ import annotations

import json
import os
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


#: Largest JSON document :func:`loads` parses (manifests, indexes, configs, ``index.json``...).
MAX_SIZE = 32 << 20
#: Deepest nesting of arrays and objects :func:`loads` accepts; OCI documents need about 5.
MAX_DEPTH = 100


class LimitError(ValueError):
    """The JSON document is larger or nested deeper than :func:`loads` accepts."""


def loads(data: bytes | bytearray | str, what: str, *, max_size: int = MAX_SIZE, max_depth: int = MAX_DEPTH) -> Any:
    """Parse untrusted JSON (from the cache, a registry, an archive, an image) with bounded size and
    nesting; ``ValueError`` naming ``what`` on bad input, never ``RecursionError`` or ``MemoryError``.

    This is the one parser for JSON we did not write ourselves: every reader of cache or registry
    JSON goes through it (read the bytes with :func:`read_limited` to bound the read as well).
    """
    if len(data) > max_size:
        raise LimitError(f"{what}: larger than {max_size} bytes ({len(data)})")
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{what}: not valid JSON ({exc})") from exc
    except RecursionError:
        raise LimitError(f"{what}: nested more than {max_depth} levels deep") from None
    except MemoryError:
        raise LimitError(f"{what}: too large to parse") from None
    if _depth_over(obj, max_depth):
        raise LimitError(f"{what}: nested more than {max_depth} levels deep")
    return obj


def _depth_over(obj: Any, limit: int) -> bool:
    """Whether arrays/objects nest deeper than ``limit`` in ``obj`` (level by level: any depth is safe)."""
    level = [obj] if isinstance(obj, (dict, list)) else []
    depth = 1
    while level:
        if depth > limit:
            return True
        below: list[Any] = []
        for item in level:
            below += [c for c in (item.values() if isinstance(item, dict) else item) if isinstance(c, (dict, list))]
        level = below
        depth += 1
    return False


def read_limited(path: str | os.PathLike[str], what: str, max_size: int = MAX_SIZE) -> bytes:
    """The bytes of the file ``path``, at most ``max_size`` of them (``ValueError`` naming ``what``
    when it holds more); ``FileNotFoundError`` when it is missing."""
    with open(path, "rb") as f:
        data = f.read(max_size + 1)
    if len(data) > max_size:
        raise LimitError(f"{what}: larger than {max_size} bytes")
    return data
