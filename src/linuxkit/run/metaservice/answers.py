"""One request to the metadata service and its answer, with the helpers every provider answers with."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    target: str
    headers: Mapping[str, str]  # names lower case
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parts = urlsplit(self.target)
        self.path = parts.path or "/"
        self.query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "text/plain"
    headers: dict[str, str] = field(default_factory=dict)


def text(body: str | bytes, status: int = 200, content_type: str = "text/plain") -> Answer:
    return Answer(status, body.encode() if isinstance(body, str) else body, content_type)


def as_json(value: object, status: int = 200) -> Answer:
    return Answer(status, json.dumps(value, indent=2).encode(), "application/json")


NOT_FOUND = Answer(404, b"Not Found\n")
METHOD_NOT_ALLOWED = Answer(405, b"Method Not Allowed\n")

Tree = Mapping[str, Union["Tree", str, bytes]]


def tree_node(tree: Tree, path: str) -> Tree | str | bytes | None:
    """The node of ``tree`` at ``path`` (names separated by ``/``, empty ones skipped), or None."""
    node: Tree | str | bytes = tree
    for part in [p for p in path.split("/") if p]:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def tree_get(tree: Tree, path: str) -> Answer:
    """An EC2-style tree: a directory lists its entries one a line (directories with ``/``), a leaf is its
    value. ``path`` is relative to the tree ("" or ending in ``/``: the directory itself)."""
    node = tree_node(tree, path)
    if node is None:
        return NOT_FOUND
    if isinstance(node, Mapping):
        return text("\n".join(k + "/" if isinstance(v, Mapping) else k for k, v in node.items()))
    if path.endswith("/"):
        return NOT_FOUND
    return text(node)


def tree_json(tree: Tree | str | bytes) -> Any:
    if isinstance(tree, Mapping):
        return {k: tree_json(v) for k, v in tree.items()}
    return tree.decode(errors="replace") if isinstance(tree, bytes) else tree


def yaml_scalar(value: str) -> str:
    return json.dumps(value)  # a JSON string is a YAML double-quoted scalar
