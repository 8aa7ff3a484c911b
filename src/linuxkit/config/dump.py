"""Print a config the way upstream does: ``build --dry-run`` and ``files: [{metadata: yaml|json}]``.

Upstream marshals its Go ``Moby`` struct, so the output shows Go's view of the config: every
non-``omitempty`` field appears with its zero value (``image: ""``, ``onshutdown: []``,
``optional: false``), OCI structs from runtime-spec carry lower-cased Go field names in YAML
(``uidmappings``, ``kerneltcp``) and all their fields, and ``trust`` is gone.

* ``dump_yaml`` is ``build --dry-run`` (:func:`dry_run` loads and prints): go-yaml **v3** (4-space
  indent); ``print`` adds one more ``\\n``.
* ``metadata_file`` is the ``metadata:`` file: image references expanded first (``UpdateImages``),
  then go-yaml **v2** (2-space indent, indentless sequences, folding at 80 columns) for ``yaml``
  and ``json.MarshalIndent`` with 4 spaces for ``json``.

Field names, order, pointers and ``omitempty`` come from the schema's declaration
(:class:`.schema.Go` of each field, :class:`.schema.GoOnly` fields, ``GO_EMBED``).

Difference: upstream silently drops camelCase keys inside ``resources`` and ``uidMappings``
entries (``kernelTCP``, ``hostID``…; go-yaml only matches the lower-cased Go field name), so it
prints them as ``null``/``0``; we keep and print the values given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, Any, Literal

from .. import log
from ..errors import UserError
from ..gocompat import json as gojson
from ..gocompat.values import Field, GoValue, NilMap, NilSlice, Ptr, Struct, to_plain
from ..gocompat.yaml import marshal_yaml
from ..oci import reference
from . import schema as s
from .load import load_configs


def _zero(t: s.Type, j: bool) -> GoValue:
    """Go's zero value of a field that is not set (and not a pointer)."""
    if t.kind in ("str", "enum"):
        return ""
    if t.kind == "int":
        return 0
    if t.kind == "bool":
        return False
    if t.kind == "list":
        return NilSlice()
    if t.kind == "map":
        return NilMap()
    if t.kind == "object":
        assert t.cls is not None
        return _struct(t.cls, t.cls(), j)
    raise TypeError(f"no Go zero value for {t.kind}")


def _value(spec: s.FieldSpec, value: object, j: bool) -> GoValue:
    if value is None:
        return None if spec.go.ptr else _zero(spec.type, j)
    out = _convert(spec.type, value, j)
    if spec.go.string:
        out = str(out)
    return Ptr(out) if spec.go.ptr else out


def _convert(t: s.Type, value: object, j: bool) -> GoValue:
    if t.kind == "list":
        assert t.item is not None and isinstance(value, list)
        return [_convert(t.item, v, j) for v in value]
    if t.kind == "map":
        assert isinstance(value, dict)
        return dict(value)
    if t.kind == "object":
        assert t.cls is not None
        return _struct(t.cls, value, j)
    assert isinstance(value, bool | int | str)
    return value


def _key(key: str, go: s.Go, j: bool) -> str:
    key = go.key or key
    return key if j or not go.lower else key.lower()


def _field(key: str, go: s.Go, value: GoValue, j: bool) -> Field:
    return Field(_key(key, go, j), value, go.omit == "both" or (j and go.omit == "json"))


def _fields(cls: type[s.Model], model: object, j: bool) -> list[Field]:
    """The Go struct fields of ``cls`` (``model`` may be of a subclass), in Go's order."""
    specs = s.fields_of(cls)
    if cls.GO_BASE_LAST:  # the struct's own fields, then the base struct inlined
        base = cls.__mro__[1]
        assert issubclass(base, s.Model)
        own = specs[len(s.fields_of(base)) :]
        return [_field(sp.key, sp.go, _value(sp, getattr(model, sp.attr), j), j) for sp in own] + _fields(
            base, model, j
        )
    extra = {g.after: g for g in cls.GO_ONLY if g.after is not None}
    out: list[Field] = []
    for sp in specs:
        if not sp.go.skip:
            out.append(_field(sp.key, sp.go, _value(sp, getattr(model, sp.attr), j), j))
        if sp.key in extra:
            g = extra[sp.key]
            out.append(_field(g.key, g.go, NilMap() if g.nil_map else None, j))
    out += [_field(g.key, g.go, NilMap() if g.nil_map else None, j) for g in cls.GO_ONLY if g.after is None]
    if cls.GO_EMBED is not None and not j:  # go-yaml keeps an embedded struct under its name
        name, keys = cls.GO_EMBED
        inner = [fl for fl in out if fl.key in keys]
        out = [Field(name, Struct(inner)), *(fl for fl in out if fl.key not in keys)]
    return out


def _struct(cls: type[s.Model], model: object, j: bool) -> Struct:
    return Struct(_fields(cls, model, j))


def image_config_label(config: s.ImageConfig) -> str:
    """The ``org.mobyproject.config`` label for ``config``, as upstream's ``pkg build`` writes it
    (``json.Marshal`` of its ImageConfig: field order of the struct, empty fields left out)."""
    return gojson.marshal(to_plain(_struct(s.ImageConfig, config, True), json=True)).decode()


def to_go(moby: s.Moby, *, json: bool = False) -> GoValue:
    """The Go value upstream would marshal for ``moby`` (field order, zero values, omitempty), as
    the schema declares it."""
    return _struct(s.Moby, moby, json)


def dump_yaml(moby: s.Moby) -> bytes:
    """``yaml.Marshal`` (go-yaml v3) of the config, as ``build --dry-run`` prints it (before its extra newline)."""
    return marshal_yaml(to_go(moby), v3=True)


def dump_json(moby: s.Moby) -> bytes:
    """``json.MarshalIndent(m, "", "    ")`` of the config."""
    return gojson.marshal_indent(to_plain(to_go(moby, json=True), json=True))


def with_expanded_images(moby: s.Moby) -> s.Moby:
    """Upstream's ``UpdateImages``: kernel, init and container images as full references (volumes untouched)."""

    def full(ref: str) -> str:
        return str(reference.parse(ref))

    update: dict[str, Any] = {}
    if moby.kernel is not None and moby.kernel.image:
        update["kernel"] = s.replace(moby.kernel, image=full(moby.kernel.image))
    if moby.init is not None:
        update["init"] = [full(r) for r in moby.init]
    for section in ("onboot", "onshutdown", "services"):
        images: list[s.Image] | None = getattr(moby, section)
        if images is not None:
            update[section] = [s.replace(i, image=full(i.image)) for i in images]
    return s.replace(moby, **update)


def dry_run(configs: Sequence[str], out: IO[bytes]) -> None:
    """``linuxkit build --dry-run``: load and merge ``configs`` and print them as upstream does. No
    ``source:`` file is read, so one that does not exist yet is only a warning (as upstream)."""
    with log.step("Loading configuration"):
        loaded = load_configs(configs, sources_must_exist=False)
    out.write(dump_yaml(loaded.moby) + b"\n")
    out.flush()


def metadata_file(moby: s.Moby, kind: Literal["yaml", "json"] | str) -> bytes:
    """The contents of a ``files`` entry with ``metadata: yaml|json``."""
    expanded = with_expanded_images(moby)
    if kind == "yaml":
        return marshal_yaml(to_go(expanded), v3=False)
    if kind == "json":
        return dump_json(expanded)
    raise UserError(f"unsupported metadata type: {kind}", hint="use metadata: yaml or metadata: json")
