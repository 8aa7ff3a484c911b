"""Load YAML into plain values plus a map of where every node came from.

PyYAML parses and composes the node tree; everything after that is ours, because upstream
decodes with go-yaml v3 and PyYAML's constructor follows YAML 1.1. What we do by hand:

* scalar resolution as go-yaml v3 does it (YAML 1.2 core plus Go's ``strconv`` quirks:
  ``yes``/``on`` stay strings, ``0644`` is the octal int 420, ``1_000`` is 1000, ``08`` is 8.0);
* merge keys (``<<``) with v3's precedence: explicit keys win, then earlier merged maps;
* duplicate keys are an error (v3 rejects them; PyYAML silently keeps the last);
* go-yaml v3's "excessive aliasing" rule (the share of nodes decoded through aliases, see
  :func:`allowed_alias_ratio`), a cap on decoded nodes, and a refusal of recursive anchors;
* a cap on nesting depth (libyaml allows 1000 levels, go-yaml 10000; we build recursively);
* only the first document is used (upstream decodes one); later ones are ignored with a warning.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .. import log
from ..errors import ConfigError, Diagnostic, Location

MAX_BYTES = 16 * 1024 * 1024
# go-yaml v3's alias rule (below) is the stricter one for small files (a 6 KB file may not expand to
# 300,000 nodes), but it lets a large file decode any number of nodes (10% of them through aliases):
# this cap on decoded nodes stays as the backstop, so what a 16 MiB file can cost is bounded too.
MAX_NODES = 1_000_000
MAX_DEPTH = 100  # nested collections; a config needs fewer than 10, Python's recursion limit is ~1000

Path = tuple[str | int, ...]

_PLAIN = "!plain"  # sentinel tag our resolver gives to untagged plain scalars
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_YAML_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_DOT_FLOAT = re.compile(r"^\.[0-9]+([eE][-+]?[0-9]+)?$")
_TIMESTAMP = re.compile(
    r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"(?:(?:[Tt]| )[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(?:\.[0-9]{1,9})?(?:Z|[-+][0-9]{2}:[0-9]{2})?)?$"
)
_CONSTANTS: Mapping[str, Any] = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
_INT64 = (-(2**63), 2**63 - 1)


class Timestamp(str):
    """A plain scalar that go-yaml resolves as a timestamp (decoded as its text, like upstream's string fields)."""


def _go_parse_int(text: str) -> int | None:
    """``strconv.ParseInt(text, 0, 64)`` falling back to ``ParseUint``: base prefixes, leading-0 octal."""
    sign = 1
    body = text
    if body[:1] in "+-":
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    lower = body[:2].lower()
    try:
        if lower == "0x":
            value = int(body[2:], 16)
        elif lower == "0o":
            value = int(body[2:], 8)
        elif lower == "0b":
            value = int(body[2:], 2)
        elif len(body) > 1 and body[0] == "0":
            value = int(body[1:], 8)
        else:
            value = int(body, 10)
    except ValueError:
        return None
    if not body or not body.isascii() or any(c in "+-_ " for c in body):
        return None
    value *= sign
    if _INT64[0] <= value <= _INT64[1] or (text[0] != "+" and sign > 0 and value < 2**64):
        return value
    return None


def _go_float(text: str) -> float | str:
    """``strconv.ParseFloat``: out-of-range values are an error, so the scalar stays a string."""
    value = float(text)
    return value if math.isfinite(value) else text


def resolve_plain(text: str) -> Any:
    """The value go-yaml v3 gives an untagged plain scalar (timestamps become :class:`Timestamp`)."""
    if text in _CONSTANTS:
        return _CONSTANTS[text]
    first = text[:1]
    if first == ".":
        return _go_float(text) if _DOT_FLOAT.match(text) else text
    if not first or not ((first.isdigit() and first.isascii()) or first in "+-"):
        return text
    if _TIMESTAMP.match(text):
        return Timestamp(text)
    plain = text.replace("_", "")
    if plain:
        number = _go_parse_int(plain)
        if number is not None:
            return number
        if _YAML_FLOAT.match(plain):
            return text if isinstance(_go_float(plain), str) else float(plain)
    return text


def is_plain_string(text: str) -> bool:
    """Whether go-yaml would write ``text`` unquoted (it resolves back to the same string)."""
    if type(resolve_plain(text)) is not str:
        return False
    if _BASE60.match(text):
        return False
    return text not in _OLD_BOOLS


_BASE60 = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
_OLD_BOOLS = frozenset(
    ["y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "n", "N", "no", "No", "NO", "off", "Off", "OFF"]
)


# go-yaml v3 (decode.go, ``allowedAliasRatio``): between these numbers of decoded nodes the share
# that may come from aliases falls from 99% to 10%.
_ALIAS_RATIO_LOW = 400_000
_ALIAS_RATIO_HIGH = 4_000_000


def allowed_alias_ratio(decoded: int) -> float:
    """The share of ``decoded`` nodes go-yaml v3 lets come from alias expansion."""
    if decoded <= _ALIAS_RATIO_LOW:
        return 0.99
    if decoded >= _ALIAS_RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * ((decoded - _ALIAS_RATIO_LOW) / (_ALIAS_RATIO_HIGH - _ALIAS_RATIO_LOW))


def excessive_aliasing(decoded: int, aliased: int) -> bool:
    """go-yaml v3's test, made after every decoded node: more than 100 nodes from aliases, more than
    1000 decoded, and a larger share from aliases than :func:`allowed_alias_ratio` allows."""
    return aliased > 100 and decoded > 1000 and aliased / decoded > allowed_alias_ratio(decoded)


#: the default of a read-only mapping field of a NamedTuple (one shared, immutable empty mapping)
EMPTY: Mapping[Any, Any] = MappingProxyType({})


class Document(NamedTuple):
    """A loaded YAML document: its value and the location of every value and mapping key.

    ``texts`` holds the source text of the scalars that did not resolve to a string (``0666``,
    ``true``, ``1.5``): go-yaml decodes any scalar into a Go string field as its text."""

    file: str
    value: Any
    positions: Mapping[Path, Location] = EMPTY
    key_positions: Mapping[Path, Location] = EMPTY
    texts: Mapping[Path, str] = EMPTY

    def locate(self, path: Path, *, key: bool = False) -> Location:
        """The location of ``path`` (its key with ``key``), or of its nearest located ancestor."""
        while True:
            if key and path in self.key_positions:
                return self.key_positions[path]
            if path in self.positions:
                return self.positions[path]
            if not path:
                return Location(self.file, 1, 1)
            path = path[:-1]


def _resolve(self: Any, kind: Any, value: Any, implicit: Any) -> Any:
    """Mark untagged plain scalars so that we resolve them ourselves, v3-style."""
    if kind is ScalarNode and implicit[0]:
        return _PLAIN
    return yaml.resolver.BaseResolver.resolve(self, kind, value, implicit)  # type: ignore[no-untyped-call]


class _PyLoader(yaml.SafeLoader):
    resolve = _resolve


try:
    from yaml.cyaml import CSafeLoader

    class _CLoader(CSafeLoader):
        resolve = _resolve

    _Loader: type[Any] = _CLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = _PyLoader


def _loc(file: str, mark: Any) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


def _fail(file: str, node: Node | None, message: str, hint: str | None = None) -> ConfigError:
    location = _loc(file, node.start_mark) if node is not None else Location(file, 1, 1)
    return ConfigError([Diagnostic(message, location, hint=hint)])


def _position(text: str, file: str) -> Location:
    """The location just after ``text`` (the decoded part of a file before a problem)."""
    return Location(file, text.count("\n") + 1, len(text) - (text.rfind("\n") + 1) + 1)


def _decode(data: bytes, file: str) -> str:
    """The text of a YAML file as go-yaml v3 reads it: UTF-16 (LE or BE) after its byte-order mark,
    else UTF-8 (with or without a BOM). UTF-32 is refused as upstream refuses it (go-yaml sees NULs)."""
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        raise ConfigError(
            [
                Diagnostic(
                    "YAML file is UTF-32 encoded, which is not supported",
                    Location(file, 1, 1),
                    hint="save the file as UTF-8 (or UTF-16 with a byte-order mark)",
                )
            ]
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16-le" if data[0] == 0xFF else "utf-16-be"
        body = data[2:]
        try:
            return body.decode(encoding)
        except UnicodeDecodeError as exc:
            before = body[: exc.start - exc.start % 2].decode(encoding, "replace")
            reason = (
                "truncated UTF-16 data" if exc.reason == "truncated data" else "invalid UTF-16 (unpaired surrogate)"
            )
            raise ConfigError(
                [Diagnostic(f"{reason} in YAML file", _position(before, file), hint="save the file as UTF-8")]
            ) from exc
    body = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = body[: exc.start].decode("utf-8")
        raise ConfigError(
            [Diagnostic("invalid UTF-8 in YAML file", _position(before, file), hint="save the file as UTF-8")]
        ) from exc


def _syntax_error(file: str, text: str, exc: yaml.YAMLError) -> ConfigError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        parts = [p for p in (exc.context, exc.problem) if p]
        message = "YAML syntax error: " + ", ".join(parts)
        return ConfigError([Diagnostic(message, _loc(file, mark) if mark else Location(file, 1, 1))])
    if isinstance(exc, yaml.reader.ReaderError):
        before = text[: exc.position]
        where = Location(file, before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1)
        return ConfigError([Diagnostic(f"YAML syntax error: {exc.reason} (character {exc.character!r})", where)])
    return ConfigError([Diagnostic(f"YAML syntax error: {exc}", Location(file, 1, 1))])


def load_yaml(data: bytes | str, file: str, *, max_nodes: int = MAX_NODES, max_bytes: int = MAX_BYTES) -> Document:
    """Parse the first YAML document of ``data``; raise :class:`ConfigError` with a location on any problem.

    An empty stream gives a document whose value is ``None``.
    """
    size = len(data.encode() if isinstance(data, str) else data)
    if size > max_bytes:
        raise ConfigError(
            [Diagnostic(f"YAML file is too large ({size} bytes, limit {max_bytes})", Location(file, 1, 1))]
        )
    text = data if isinstance(data, str) else _decode(data, file)
    loader = _Loader(text)
    try:
        try:
            root = _first_node(loader, file)
        except yaml.YAMLError as exc:
            raise _syntax_error(file, text, exc) from exc
        if root is None:
            return Document(file, None)
        builder = _Builder(file, text, max_nodes)
        builder.tick(root)  # go-yaml decodes the document node first
        value = builder.build(root, (), alias=False)
        return Document(file, value, builder.positions, builder.key_positions, builder.texts)
    finally:
        loader.dispose()


def _first_node(loader: Any, file: str) -> Node | None:
    if not loader.check_node():
        return None
    node: Node = loader.get_node()
    try:
        more = bool(loader.check_node())
    except yaml.YAMLError:
        more = True
    if more:
        log.warn(f"{file}: only the first YAML document is used; the others are ignored")
    return node


def _is_merge(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.value == "<<" and node.tag in (_PLAIN, _MERGE)


class _Builder:
    """Turns a composed node tree into plain values, v3-style, recording positions.

    PyYAML's composer replaces an alias by the node it names, so an alias is recognised by where
    its node starts: a child written in place starts after its previous sibling written in place
    (or after its parent's start); a node from an alias was written before that. Nodes are counted
    as go-yaml's decoder counts them when it decodes into an ``interface{}`` (upstream's first,
    schema-checking decode): the document, every key and value, an alias node plus what it
    expands to, the keys of a mapping again when it has a merge key."""

    def __init__(self, file: str, text: str, max_nodes: int) -> None:
        self.file = file
        self.text = text
        self.max_nodes = max_nodes
        self.decoded = 0  # go-yaml's decodeCount
        self.aliased = 0  # go-yaml's aliasCount: nodes decoded below an alias
        self.alias_depth = 0
        self.slot: tuple[Node, int] | None = None  # (parent, slot) of the node being built
        self.outer_alias: tuple[Node, int] | None = None  # (parent, slot) of the outermost alias expanding
        self.active: set[int] = set()
        self.positions: dict[Path, Location] = {}
        self.key_positions: dict[Path, Location] = {}
        self.texts: dict[Path, str] = {}

    def tick(self, node: Node) -> None:
        """One node decoded, as go-yaml's ``unmarshal`` counts it."""
        self.decoded += 1
        if self.alias_depth:
            self.aliased += 1
        if excessive_aliasing(self.decoded, self.aliased):
            where = self.outer_alias
            location = _alias_location(self.text, self.file, where) if where else None
            share = allowed_alias_ratio(self.decoded)
            message = (
                f"document contains excessive aliasing: {self.aliased} of the first {self.decoded} nodes come "
                f"from aliases (at most {share:.0%} may)"
            )
            hint = "this looks like an alias bomb; reduce the use of anchors and aliases"
            if location is None:
                raise _fail(self.file, node, message, hint)
            raise ConfigError([Diagnostic(message, location, hint=hint)])
        if self.decoded > self.max_nodes:
            raise _fail(
                self.file,
                node,
                f"document expands to more than {self.max_nodes} nodes",
                hint="this looks like an alias bomb; reduce the use of anchors and aliases",
            )

    def build(self, node: Node, path: Path, *, alias: bool, slot: tuple[Node, int] | None = None) -> Any:
        if alias:
            self.tick(node)  # the alias node itself
            if id(node) in self.active:
                raise _fail(self.file, node, "anchor value contains itself")
            outer = self.alias_depth == 0
            if outer:
                self.outer_alias = slot
            self.alias_depth += 1
            try:
                return self._build(node, path)
            finally:
                self.alias_depth -= 1
                if outer:
                    self.outer_alias = None
        return self._build(node, path)

    def _build(self, node: Node, path: Path) -> Any:
        self.tick(node)
        self.positions.setdefault(path, _loc(self.file, node.start_mark))
        if isinstance(node, ScalarNode):
            value = self._scalar(node)
            if not isinstance(value, str):
                self.texts.setdefault(path, node.value)
            return value
        if len(path) >= MAX_DEPTH:
            raise _fail(
                self.file,
                node,
                f"document is nested more than {MAX_DEPTH} levels deep",
                hint="a LinuxKit config needs only a few levels of lists and mappings",
            )
        if id(node) in self.active:
            raise _fail(self.file, node, "anchor value contains itself")
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                flags = _alias_flags(node, node.value)
                return [
                    self.build(item, (*path, i), alias=flags[i], slot=(node, i)) for i, item in enumerate(node.value)
                ]
            assert isinstance(node, MappingNode)
            out: dict[Any, Any] = {}
            self._mapping(node, path, out, merging=False)
            return out
        finally:
            self.active.discard(id(node))

    def _scalar(self, node: ScalarNode) -> Any:
        tag = node.tag
        text = node.value
        if tag == _PLAIN:
            value = resolve_plain(text)
            return str(value) if isinstance(value, Timestamp) else value
        short = tag.removeprefix("tag:yaml.org,2002:")
        if tag.startswith("tag:yaml.org,2002:") and short in ("int", "float", "bool", "null"):
            value = resolve_plain(text)
            kinds = {"int": (int,), "float": (int, float), "bool": (bool,), "null": (type(None),)}[short]
            if (isinstance(value, bool) and short != "bool") or not isinstance(value, kinds):
                raise _fail(self.file, node, f"cannot decode {text!r} as !!{short}")
            return float(value) if short == "float" and value is not None else value
        if tag == "tag:yaml.org,2002:binary":
            import base64
            import binascii

            try:
                return base64.b64decode("".join(text.split()), validate=True).decode("utf-8", "surrogateescape")
            except (binascii.Error, ValueError) as exc:
                raise _fail(self.file, node, "!!binary value contains invalid base64 data") from exc
        return text  # !!str, !!timestamp, quoted and block scalars, custom tags

    def _key(self, node: Node, alias: bool) -> None:
        """Count a key as go-yaml decodes it (an aliased key: the alias, then its scalar)."""
        if alias:
            self.tick(node)
            self.alias_depth += 1
            try:
                self.tick(node)
            finally:
                self.alias_depth -= 1
        else:
            self.tick(node)

    def _mapping(self, node: MappingNode, path: Path, out: dict[Any, Any], *, merging: bool) -> None:
        seen: dict[tuple[str, str], Node] = {}
        merge: tuple[Node, bool, int] | None = None
        flags = _alias_flags(node, [n for pair in node.value for n in pair])
        for index, (key_node, value_node) in enumerate(node.value):
            if isinstance(key_node, ScalarNode):
                ident = ("scalar", key_node.value)
                if ident in seen:
                    first = seen[ident]
                    raise _fail(
                        self.file,
                        key_node,
                        f"mapping key {key_node.value!r} already defined at line {first.start_mark.line + 1}",
                        hint="YAML keys must be unique within a mapping",
                    )
                seen[ident] = key_node
            if _is_merge(key_node):
                merge = (value_node, flags[2 * index + 1], 2 * index + 1)
                continue
            key = self._scalar(key_node) if isinstance(key_node, ScalarNode) else None
            if not isinstance(key, str):
                # (not the repr of a collection key: it may be nested deep enough to exhaust the stack)
                shown = repr(key_node.value) if isinstance(key_node, ScalarNode) else f"of kind {key_node.id}"
                raise _fail(self.file, key_node, f"mapping key {shown} is not a string", hint="quote it")
            self._key(key_node, flags[2 * index])
            if key in out:  # only reachable through merged maps
                continue
            self.key_positions[(*path, key)] = _loc(self.file, key_node.start_mark)
            out[key] = self.build(value_node, (*path, key), alias=flags[2 * index + 1], slot=(node, 2 * index + 1))
        if merge is None:
            return
        if not merging:  # go-yaml decodes the keys of the mapping again to know which ones it holds
            for index, (key_node, _) in enumerate(node.value):
                self._key(key_node, flags[2 * index])
        value_node, alias, slot = merge
        if isinstance(value_node, SequenceNode) and all(isinstance(n, MappingNode) for n in value_node.value):
            item_flags = _alias_flags(value_node, value_node.value)
            for i, item in enumerate(value_node.value):
                self._merge_from(item, path, out, alias=item_flags[i], slot=(value_node, i))
        else:
            for source in _merge_sources(value_node, self.file):
                self._merge_from(source, path, out, alias=alias, slot=(node, slot))

    def _merge_from(
        self, node: MappingNode, path: Path, out: dict[Any, Any], *, alias: bool, slot: tuple[Node, int]
    ) -> None:
        if id(node) in self.active:
            raise _fail(self.file, node, "anchor value contains itself")
        outer = alias and self.alias_depth == 0
        if alias:
            self.tick(node)  # the alias node
            if outer:
                self.outer_alias = slot
            self.alias_depth += 1
        self.active.add(id(node))
        try:
            self.tick(node)
            self._mapping(node, path, out, merging=True)
        finally:
            self.active.discard(id(node))
            if alias:
                self.alias_depth -= 1
                if outer:
                    self.outer_alias = None


def _alias_flags(parent: Node, children: list[Node]) -> list[bool]:
    """For each child of ``parent`` (keys and values alternate for a mapping): whether it is an
    alias. A child written in place starts at or after the end of the previous child written in
    place (or its parent's start); an alias names a node that was complete before it."""
    bound = _index(parent.start_mark)
    flags: list[bool] = []
    for child in children:
        alias = _index(child.start_mark) < bound
        if not alias:
            bound = _index(child.end_mark)
        flags.append(alias)
    return flags


def _index(mark: Any) -> int:
    index: int = mark.index
    return index


def _alias_location(text: str, file: str, where: tuple[Node, int]) -> Location | None:
    """Where the alias in slot ``where[1]`` of the collection ``where[0]`` is written: found by
    parsing again (only on this error), as the composer does not keep where an alias was."""
    parent, slot = where
    kind = yaml.SequenceStartEvent if isinstance(parent, SequenceNode) else yaml.MappingStartEvent
    start = _index(parent.start_mark)
    stack: list[list[Any]] = []  # [start event kind, start index, children seen]
    loader = _Loader(text)
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.CollectionEndEvent):
                stack.pop()
                continue
            if not isinstance(event, yaml.NodeEvent):
                continue
            if stack:
                top = stack[-1]
                if isinstance(event, yaml.AliasEvent) and top[0] is kind and top[1] == start and top[2] == slot:
                    return _loc(file, event.start_mark)
                top[2] += 1
            if isinstance(event, yaml.CollectionStartEvent):
                stack.append([type(event), _index(event.start_mark), 0])
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()
    return None


def _merge_sources(node: Node, file: str) -> Iterator[MappingNode]:
    if isinstance(node, MappingNode):
        yield node
        return
    if isinstance(node, SequenceNode) and all(isinstance(n, MappingNode) for n in node.value):
        yield from node.value
        return
    raise _fail(file, node, "map merge requires map or sequence of maps as the value")
