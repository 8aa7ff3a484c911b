"""Write Go-shaped values the way go-yaml (v2 and v3) does, byte for byte.

Upstream prints configs with ``yaml.Marshal`` (v3 for ``build --dry-run``, v2 for ``metadata: yaml``).
PyYAML's emitter differs in indentation, quoting and line folding, so this is a small port of the
parts of libyaml's emitter those calls reach: block mappings and sequences, ``[]``/``{}`` for empty
collections, and plain, single-quoted, double-quoted and literal scalars with v3's regular
indentation or v2's indentless sequences and 80-column folding.

Not covered (never produced for a LinuxKit config): ``...`` after a final ``|+`` scalar, floats,
invalid UTF-8 (``!!binary``), flow-style collections other than ``[]``/``{}``.
"""

from __future__ import annotations

from typing import NamedTuple

from ..config.yamlload import is_plain_string
from .values import GoValue, to_plain


def _printable(c: str) -> bool:
    cp = ord(c)
    return cp == 0x0A or 0x20 <= cp <= 0x7E or 0xA0 <= cp <= 0xD7FF or (0xE000 <= cp <= 0xFFFD and cp != 0xFEFF)


_BREAKS = "\r\n\x85\u2028\u2029"


class _Analysis(NamedTuple):
    multiline: bool
    block_plain: bool
    single_quoted: bool
    block: bool


def _analyze(value: str, *, v3: bool = True) -> _Analysis:
    if not value:
        return _Analysis(False, True, True, False)
    block_ind = value.startswith(("---", "..."))
    line_breaks = special = tabs = False
    leading_space = leading_break = trailing_space = trailing_break = False
    break_space = space_break = previous_space = previous_break = False
    preceded_by_ws = True
    n = len(value)
    for i, c in enumerate(value):
        followed_by_ws = i + 1 >= n or value[i + 1] in " \t" or value[i + 1] in _BREAKS
        if i == 0:
            if c in "#,[]{}&*!|>'\"%@`" or (c in "?:" and followed_by_ws) or (c == "-" and followed_by_ws):
                block_ind = True
        elif (c == ":" and followed_by_ws) or (c == "#" and preceded_by_ws):
            block_ind = True
        if c == "\t" and v3:  # v2 counts a tab as a special character (no block style)
            tabs = True
        elif not _printable(c):
            special = True
        if c == " ":
            leading_space = leading_space or i == 0
            trailing_space = trailing_space or i == n - 1
            break_space = break_space or previous_break
            previous_space, previous_break = True, False
        elif c in _BREAKS:
            line_breaks = True
            leading_break = leading_break or i == 0
            trailing_break = trailing_break or i == n - 1
            space_break = space_break or previous_space
            previous_space, previous_break = False, True
        else:
            previous_space = previous_break = False
        preceded_by_ws = c in " \t" or c in _BREAKS
    plain = not (leading_space or leading_break or trailing_space or trailing_break)
    single = True
    block = not trailing_space
    if break_space:
        plain = single = False
    if space_break or tabs or special:
        plain = single = False
    if space_break or special:
        block = False
    if line_breaks or block_ind:
        plain = False
    return _Analysis(line_breaks, plain, single, block)


class YamlEmitter:
    """Block-style emitter state (column, indentation) following libyaml's rules."""

    def __init__(self, *, v3: bool) -> None:
        self.v3 = v3
        self.best_indent = 4 if v3 else 2
        self.best_width = 1 << 31 if v3 else 80
        self.out: list[str] = []
        self.column = 0
        self.whitespace = True
        self.indention = True
        self.indent = -1
        self.indents: list[int] = []
        self.in_sequence_item = False  # the state v3 looks at when indenting

    # -- low level
    def _put(self, s: str) -> None:
        self.out.append(s)
        self.column += len(s)

    def _put_break(self) -> None:
        self.out.append("\n")
        self.column = 0
        if self.v3:
            self.indention = True

    def _write_indent(self) -> None:
        indent = max(self.indent, 0)
        if not self.indention or self.column > indent or (self.column == indent and not self.whitespace):
            self._put_break()
        if self.column < indent:
            self._put(" " * (indent - self.column))
        self.whitespace = True
        if not self.v3:
            self.indention = True

    def _indicator(self, s: str, need_ws: bool, is_ws: bool, is_indention: bool) -> None:
        if need_ws and not self.whitespace:
            self._put(" ")
        self._put(s)
        self.whitespace = is_ws
        self.indention = self.indention and is_indention

    def _increase_indent(self, *, flow: bool, indentless: bool, parent_is_sequence: bool) -> None:
        self.indents.append(self.indent)
        if self.indent < 0:
            self.indent = self.best_indent if flow else 0
        elif not indentless:
            if not self.v3:
                self.indent += self.best_indent
            elif parent_is_sequence:
                self.indent += 2
            else:
                self.indent = self.best_indent * ((self.indent + self.best_indent) // self.best_indent)

    # -- nodes
    def node(
        self, value: object, *, mapping_ctx: bool = False, seq_ctx: bool = False, simple_key: bool = False
    ) -> None:
        if isinstance(value, dict):
            if not value:
                self._indicator("{", True, True, False)
                self._indicator("}", False, False, False)
            else:
                self._mapping(list(value.items()), seq_ctx)
        elif isinstance(value, list):
            if not value:
                self._indicator("[", True, True, False)
                self._indicator("]", False, False, False)
            else:
                self._sequence(value, mapping_ctx, seq_ctx)
        else:
            self._scalar(value, seq_ctx=seq_ctx, simple_key=simple_key)

    def _mapping(self, items: list[tuple[str, object]], parent_is_sequence: bool) -> None:
        self._increase_indent(flow=False, indentless=False, parent_is_sequence=parent_is_sequence)
        for key, value in items:
            self._write_indent()
            if not _analyze(key).multiline and len(key.encode()) <= 128:
                self.node(key, simple_key=True)
                self._indicator(":", False, False, False)
            else:  # a complex key: "? key" then ": value" on its own line
                self._indicator("?", True, False, True)
                self.node(key, mapping_ctx=True)
                self._write_indent()
                self._indicator(":", True, False, True)
            self.node(value, mapping_ctx=True)
        self.indent = self.indents.pop()

    def _sequence(self, items: list[object], mapping_ctx: bool, parent_is_sequence: bool) -> None:
        indentless = not self.v3 and mapping_ctx and not self.indention
        self._increase_indent(flow=False, indentless=indentless, parent_is_sequence=parent_is_sequence)
        for item in items:
            self._write_indent()
            self._indicator("-", True, False, True)
            self.node(item, seq_ctx=True)
        self.indent = self.indents.pop()

    def _scalar(self, value: object, *, seq_ctx: bool, simple_key: bool) -> None:
        if value is None:
            text, style = "null", "plain"
        elif isinstance(value, bool):
            text, style = ("true" if value else "false"), "plain"
        elif isinstance(value, int):
            text, style = str(value), "plain"
        else:
            text = str(value)
            if "\n" in text:
                style = "literal"
            elif is_plain_string(text):
                style = "plain"
            else:
                style = "double"
        info = _analyze(text, v3=self.v3)
        if simple_key and info.multiline:
            style = "double"
        if style == "plain" and (not info.block_plain or (not text and simple_key)):
            style = "single"
        if style == "single" and not info.single_quoted:
            style = "double"
        if style == "literal" and (not info.block or simple_key):
            style = "double"
        self._increase_indent(flow=True, indentless=False, parent_is_sequence=seq_ctx)
        if style == "plain":
            self._plain(text, allow_breaks=not simple_key)
        elif style == "single":
            self._single(text, allow_breaks=not simple_key)
        elif style == "double":
            self._double(text, allow_breaks=not simple_key)
        else:
            self._literal(text)
        self.indent = self.indents.pop()

    def _plain(self, value: str, *, allow_breaks: bool) -> None:
        if value and not self.whitespace:
            self._put(" ")
        spaces = False
        for i, c in enumerate(value):
            if c == " ":
                nxt = value[i + 1] if i + 1 < len(value) else ""
                if allow_breaks and not spaces and self.column > self.best_width and nxt != " ":
                    self._write_indent()
                else:
                    self._put(c)
                spaces = True
            else:
                self._put(c)
                self.indention = False
                spaces = False
        if value:
            self.whitespace = False
        self.indention = False

    def _single(self, value: str, *, allow_breaks: bool) -> None:
        self._indicator("'", True, False, False)
        spaces = breaks = False
        n = len(value)
        for i, c in enumerate(value):
            if c == " ":
                nxt = value[i + 1] if i + 1 < n else ""
                if allow_breaks and not spaces and self.column > self.best_width and 0 < i < n - 1 and nxt != " ":
                    self._write_indent()
                else:
                    self._put(c)
                spaces = True
            elif c in _BREAKS:
                if not breaks and c == "\n":
                    self._put_break()
                self._write_break(c)
                breaks = True
            else:
                if breaks:
                    self._write_indent()
                self._put("''" if c == "'" else c)
                self.indention = False
                spaces = breaks = False
        self._indicator("'", False, False, False)
        self.whitespace = self.indention = False

    def _write_break(self, c: str) -> None:
        if c == "\n":
            self._put_break()
        else:
            self.out.append(c)
            self.column = 0
        self.indention = True

    def _double(self, value: str, *, allow_breaks: bool) -> None:
        self._indicator('"', True, False, False)
        spaces = False
        n = len(value)
        # libyaml's is_bom looks at the start of the value, not at i: a leading BOM escapes everything
        bom = value.startswith("\ufeff")
        for i, c in enumerate(value):
            if bom or not _printable(c) or c in _BREAKS or c in '"\\':
                self._put(_escape(c))
                spaces = False
            elif c == " ":
                if allow_breaks and not spaces and self.column > self.best_width and 0 < i < n - 1:
                    self._write_indent()
                    if i + 1 < n and value[i + 1] == " ":
                        self._put("\\")
                else:
                    self._put(c)
                spaces = True
            else:
                self._put(c)
                spaces = False
        self._indicator('"', False, False, False)
        self.whitespace = self.indention = False

    def _literal(self, value: str) -> None:
        self._indicator("|", True, False, False)
        if value[:1] == " " or value[:1] in _BREAKS:
            self._indicator(str(self.best_indent), False, False, False)
        if value[-1:] not in _BREAKS:
            self._indicator("-", False, False, False)
        elif len(value) == 1 or value[-2] in _BREAKS:
            self._indicator("+", False, False, False)
        if not self.v3:  # v2 breaks the line here; v3 does not, so it drops a leading newline (go-yaml #755)
            self._put_break()
            self.indention = True
        self.whitespace = True
        breaks = True
        for c in value:
            if c in _BREAKS:
                self._write_break(c)
                breaks = True
            else:
                if breaks:
                    self._write_indent()
                self._put(c)
                self.indention = False
                breaks = False

    def finish(self) -> str:
        self._write_indent()  # the document end moves to a fresh line
        return "".join(self.out)


_ESCAPES = {
    "\0": "0", "\a": "a", "\b": "b", "\t": "t", "\n": "n", "\v": "v", "\f": "f", "\r": "r",
    "\x1b": "e", '"': '"', "\\": "\\", "\x85": "N", "\xa0": "_", "\u2028": "L", "\u2029": "P",
}  # fmt: skip


def _escape(c: str) -> str:
    if c in _ESCAPES:
        return "\\" + _ESCAPES[c]
    cp = ord(c)
    if cp <= 0xFF:
        return f"\\x{cp:02X}"
    if cp <= 0xFFFF:
        return f"\\u{cp:04X}"
    return f"\\U{cp:08X}"


def marshal_yaml(value: GoValue, *, v3: bool = True) -> bytes:
    """``yaml.Marshal(value)`` of go-yaml v3 (or v2)."""
    emitter = YamlEmitter(v3=v3)
    emitter.node(to_plain(value, json=False))
    return emitter.finish().encode()
