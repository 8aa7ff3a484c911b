"""Go values as upstream's structs hold them, for the printers in :mod:`.yaml` and :mod:`.json`.

A config is printed from Go's view of it: pointers and interfaces (:class:`Ptr`, never empty), nil
slices and maps (:class:`NilSlice`, :class:`NilMap`: ``[]``/``{}`` in YAML, ``null`` in JSON) and
structs whose fields may be ``omitempty`` (:class:`Struct`). :func:`to_plain` resolves them into the
dicts, lists and scalars the printers take, with map keys in the order each encoder writes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Union

# NamedTuples and plain classes, not dataclasses: these modules are on ``build --dry-run``'s path,
# where ``dataclasses`` (import and generated methods) cost 10-20 ms of each start.


class Ptr(NamedTuple):
    """A non-nil Go pointer or interface: never "empty" for ``omitempty``."""

    value: GoValue


class _Nil:
    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NilSlice(_Nil):
    """A nil slice: ``[]`` in YAML, ``null`` in JSON."""

    __slots__ = ()


class NilMap(_Nil):
    """A nil map: ``{}`` in YAML, ``null`` in JSON."""

    __slots__ = ()


class Field(NamedTuple):
    key: str
    value: GoValue
    omitempty: bool = False


class Struct(NamedTuple):
    fields: Sequence[Field]


GoValue = Union[None, bool, int, str, Ptr, NilSlice, NilMap, "list[GoValue]", "dict[str, GoValue]", Struct]


def is_zero(value: GoValue, *, json: bool) -> bool:
    """Whether ``omitempty`` drops ``value`` (yaml: zero value, structs included; json: empty, structs never)."""
    if value is None or isinstance(value, NilSlice | NilMap):
        return True
    if isinstance(value, Ptr):
        return False
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | str | list | dict):
        return not value
    if json:
        return False
    return all(is_zero(f.value, json=False) for f in value.fields)


def to_plain(value: GoValue, *, json: bool) -> object:
    """Resolve pointers, nils and structs (dropping ``omitempty`` fields) into dicts, lists and scalars."""
    if isinstance(value, Ptr):
        return to_plain(value.value, json=json)
    if isinstance(value, NilSlice):
        return None if json else []
    if isinstance(value, NilMap):
        return None if json else {}
    if isinstance(value, list):
        return [to_plain(v, json=json) for v in value]
    if isinstance(value, dict):
        keys = sorted(value) if json else sorted(value, key=_GoKey)
        return {k: to_plain(value[k], json=json) for k in keys}
    if isinstance(value, Struct):
        return {
            f.key: to_plain(f.value, json=json)
            for f in value.fields
            if not (f.omitempty and is_zero(f.value, json=json))
        }
    return value


class _GoKey:
    """go-yaml's map key order: letters before other runes, digit runs compared as numbers."""

    def __init__(self, s: str) -> None:
        self.s = s

    def __lt__(self, other: _GoKey) -> bool:
        a, b = self.s, other.s
        digits = False
        for i in range(min(len(a), len(b))):
            if a[i] == b[i]:
                digits = a[i].isdigit()
                continue
            al, bl = a[i].isalpha(), b[i].isalpha()
            if al and bl:
                return a[i] < b[i]
            if al or bl:
                return al if digits else bl
            an = bn = 0
            if a[i] == "0" or b[i] == "0":
                j = i - 1
                while j >= 0 and a[j].isdigit():
                    if a[j] != "0":
                        an = bn = 1
                        break
                    j -= 1
            ai = i
            while ai < len(a) and a[ai].isdigit():
                an = an * 10 + int(a[ai])
                ai += 1
            bi = i
            while bi < len(b) and b[bi].isdigit():
                bn = bn * 10 + int(b[bi])
                bi += 1
            if an != bn:
                return an < bn
            if ai != bi:
                return ai < bi
            return a[i] < b[i]
        return len(a) < len(b)
