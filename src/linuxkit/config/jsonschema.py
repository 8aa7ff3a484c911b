"""The JSON Schema (draft 2020-12) of a LinuxKit YAML, generated from :mod:`.schema`'s declaration.

``linuxkit schema`` prints it; ``docs/linuxkit.schema.json`` is a copy (a test keeps the two equal)
that the examples name on their first line for editors (``# yaml-language-server: $schema=...``).
It checks what :func:`.schema.check` checks (keys, types, required keys, enums); the semantic
checks (references, capabilities, paths...) stay with ``linuxkit build``.
"""

from __future__ import annotations

import json
from typing import Any

from . import schema as s

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _type(t: s.Type, defs: dict[str, Any]) -> dict[str, Any]:
    if t.kind == "str":
        return {"type": "string"}
    if t.kind == "int":
        return {"type": "integer"}
    if t.kind == "bool":
        return {"type": "boolean"}
    if t.kind == "enum":
        return {"enum": list(t.values)}
    if t.kind == "union":
        return {"anyOf": [_type(m, defs) for m in t.members]}
    if t.kind == "list":
        assert t.item is not None
        return {"type": "array", "items": _type(t.item, defs)}
    if t.kind == "map":
        assert t.item is not None
        return {"type": "object", "additionalProperties": _type(t.item, defs)}
    assert t.cls is not None
    _define(t.cls, defs)
    return {"$ref": f"#/$defs/{t.cls.__name__}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null (an optional key may be written with no value)."""
    if isinstance(schema.get("type"), str) and len(schema) == 1:
        return {"type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _object(cls: type[s.Model], defs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object"}
    doc = (cls.__doc__ or "").strip()
    if doc and not doc.startswith(cls.__name__ + "("):  # not the dataclass's generated signature
        out["description"] = " ".join(doc.split())
    props: dict[str, Any] = {}
    for spec in s.fields_of(cls):
        prop = _type(spec.type, defs)
        props[spec.key] = _nullable(prop) if spec.nullable else prop
    out["properties"] = props
    required = [spec.key for spec in s.fields_of(cls) if spec.required]
    if required:
        out["required"] = required
    out["additionalProperties"] = False
    return out


def _define(cls: type[s.Model], defs: dict[str, Any]) -> None:
    if cls.__name__ not in defs:
        defs[cls.__name__] = {}  # placeholder: recursion stops here
        defs[cls.__name__] = _object(cls, defs)


def json_schema(root: type[s.Model] = s.Moby) -> dict[str, Any]:
    """The JSON Schema of ``root`` (a whole config by default)."""
    defs: dict[str, Any] = {}
    top = _object(root, defs)
    return {
        "$schema": DRAFT,
        "title": "LinuxKit YAML",
        **top,
        "$defs": dict(sorted(defs.items())),
    }


def render(root: type[s.Model] = s.Moby) -> str:
    """The schema as ``linuxkit schema`` prints it (2-space indent, final newline)."""
    return json.dumps(json_schema(root), indent=2, ensure_ascii=False) + "\n"
