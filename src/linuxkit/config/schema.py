"""The LinuxKit YAML schema, declared once: what a config may hold and how upstream's Go prints it.

Each object of the YAML is one :class:`Model` class below; its fields are the YAML keys, in the order of
upstream's Go struct. From this one declaration come:

* validation (:func:`check`): every object forbids unknown keys, scalars are strictly typed (no
  ``"1"`` for ``1``, no ``yes`` for ``true``), every optional field defaults to ``None`` so that "not
  set" and "set to empty" stay distinct (upstream uses pointers for that). All the problems are
  collected as :class:`Issue` (path + what was expected) and ``validate`` locates them at
  FILE:LINE:COL; the model returned alongside keeps what is valid;
* the Go view of the config (``dump``: ``--dry-run`` and ``metadata: yaml|json``), from each
  field's :class:`Go` (JSON key, lower-cased go-yaml key of runtime-spec structs, pointer or value,
  ``omitempty``) and the class's :class:`GoOnly` fields (Go fields YAML cannot set);
* defaults (``None``, or a field's ``default_factory``);
* the JSON Schema of ``linuxkit schema`` (:mod:`.jsonschema`), for editors.

It mirrors upstream's JSON schema (``moby/schema.go``) key for key. Python names are snake_case;
the YAML key is ``f(key=...)`` when it differs. ``packages.buildyml`` declares ``build.yml`` the same way.

Why plain classes and a small table-driven checker: measured with ``benchmarks/bench_schema.py
--old-rev REV`` on a 2-CPU machine (medians of 20 fresh interpreters, after the modules the CLI
has loaded anyway; the machine was shared, so +-10 %):

==============================================  ==========  =========================================
mechanism                                       import      checking examples/linuxkit.yml
==============================================  ==========  =========================================
pydantic 2.14 models (bb0f600)                  120 ms      0.12 ms first, 0.03 ms then (compiled)
msgspec 0.23 ``Struct`` (prototype, same keys)  14 ms       stops at the first error ("Object
                                                            contains unknown field"): one diagnostic
                                                            per run instead of all of them
``@dataclass`` + :func:`check` (22262e6)        17.5 ms     0.8 ms first (reads the declaration),
                                                            0.13 ms then
:class:`Model` + :func:`check` (now)            7.6 ms      the same (same run as the line above)
==============================================  ==========  =========================================

``@dataclass`` generates and compiles three methods per class at import; :class:`Model` has one
generic ``__init__``/``__eq__``/``__repr__`` and reads each class's fields in
``__init_subclass__``. pydantic's ``defer_build`` was not kept: every verb that loads the schema
validates a config at once, so the 95 ms of model building would only move. pydantic is no longer
a dependency.
"""

import types
from collections.abc import Callable
from typing import (
    Any,
    ClassVar,
    Literal,
    NamedTuple,
    TypeVar,
    Union,
    dataclass_transform,
    get_args,
    get_origin,
    get_type_hints,
)

# ---------------------------------------------------------------------------- the declaration kit


class Go(NamedTuple):
    """How upstream's Go struct prints one field.

    ``key``: the Go JSON key (default: the YAML key); ``lower``: a runtime-spec struct, which
    go-yaml prints under the lower-cased Go field name (``uidmappings``, ``kerneltcp``); ``ptr``: a
    Go pointer, nil when not set (else the zero value); ``omit``: ``omitempty`` in ``"both"``
    encodings, only in ``"json"`` (runtime-spec tags, which go-yaml ignores) or never (``""``);
    ``string``: a Go string holding the number; ``skip``: not in the Go struct at all.
    """

    key: str | None = None
    lower: bool = False
    ptr: bool = False
    omit: Literal["", "json", "both"] = ""
    string: bool = False
    skip: bool = False


V = Go()  # a Go value, always printed
VO = Go(omit="both")  # a Go value, omitempty
P = Go(ptr=True, omit="both")  # a Go pointer, omitempty
OCI = Go(lower=True, omit="json")  # runtime-spec value, omitempty in JSON
OCIP = Go(lower=True, omit="json", ptr=True)  # runtime-spec pointer, omitempty in JSON
OCIV = Go(lower=True)  # runtime-spec value, always printed


class GoOnly(NamedTuple):
    """A field of upstream's Go struct that the YAML cannot set: always nil (a nil map with ``nil_map``)."""

    key: str
    after: str | None  # the YAML key it follows; None: at the end
    go: Go
    nil_map: bool = False


class _Declared(NamedTuple):
    """What ``f()`` returns: a field's YAML key, Go printing and default (read by :class:`Model`)."""

    key: str | None
    go: Go
    default_factory: Callable[[], Any] | None


def f(key: str | None = None, go: Go = V, *, default_factory: Callable[[], Any] | None = None) -> Any:
    """A field: its YAML key (default: the Python name) and Go printing; default ``None``."""
    return _Declared(key, go, default_factory)


class _Slot(NamedTuple):
    """One field of a :class:`Model` class, in declaration order (base class fields first)."""

    name: str
    default: Any  # _REQUIRED when the field has none
    default_factory: Callable[[], Any] | None
    key: str
    go: Go


_REQUIRED: Any = object()
M = TypeVar("M", bound="Model")


@dataclass_transform(kw_only_default=True)
class Model:
    """Base of the schema classes: each subclass's annotated attributes are its fields, set by
    keyword (``Kernel(image="...")``), with ``= f(...)`` (default ``None``), a plain default, or no
    default (required). Equality and ``repr`` as a dataclass's.

    Why not ``@dataclass``: it generates and compiles each class's ``__init__``, ``__eq__`` and
    ``__repr__`` at import, 10 ms for the ~30 classes here and in ``build.yml``, paid by every
    ``build --dry-run`` and ``pkg show-tag``; these generic methods cost nothing at import, and a
    config has tens of objects, not thousands. Type checkers see dataclass semantics
    (``dataclass_transform``).
    """

    #: Go fields that the YAML cannot set
    GO_ONLY: ClassVar[tuple[GoOnly, ...]] = ()
    #: go-yaml (not JSON) prints these fields inside one embedded struct of this name
    GO_EMBED: ClassVar[tuple[str, tuple[str, ...]] | None] = None
    #: the Go struct is this class's own fields, then the base class's inlined (``Image``)
    GO_BASE_LAST: ClassVar[bool] = False
    #: the fields, base class's first
    SLOTS: ClassVar[tuple[_Slot, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        slots = {slot.name: slot for slot in cls.SLOTS}
        for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063 (inspect costs 6 ms of start-up)
            if _is_class_var(annotation):
                continue
            value = cls.__dict__.get(name, _REQUIRED)
            if isinstance(value, _Declared):
                default = None if value.default_factory is None else _REQUIRED
                slots[name] = _Slot(name, default, value.default_factory, value.key or name, value.go)
            else:
                slots[name] = _Slot(name, value, None, name, V)
            if name in cls.__dict__:
                delattr(cls, name)  # instances hold every field
        cls.SLOTS = tuple(slots.values())

    def __init__(self, **values: Any) -> None:
        for slot in self.SLOTS:
            if slot.name in values:
                value = values.pop(slot.name)
            elif slot.default_factory is not None:
                value = slot.default_factory()
            elif slot.default is _REQUIRED:
                raise TypeError(f"{type(self).__name__}() missing required keyword argument: {slot.name!r}")
            else:
                value = slot.default
            setattr(self, slot.name, value)
        if values:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword arguments: {', '.join(values)}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, s.name) == getattr(other, s.name) for s in self.SLOTS)

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value: as a dataclass

    def __repr__(self) -> str:
        fields = ", ".join(f"{s.name}={getattr(self, s.name)!r}" for s in self.SLOTS)
        return f"{type(self).__qualname__}({fields})"


def _is_class_var(annotation: Any) -> bool:
    if isinstance(annotation, str):  # ``from __future__ import annotations``
        return annotation.startswith(("ClassVar", "typing.ClassVar"))
    return annotation is ClassVar or get_origin(annotation) is ClassVar


def replace(obj: M, **changes: Any) -> M:
    """A copy of ``obj`` with ``changes`` (as ``dataclasses.replace``)."""
    values = {slot.name: getattr(obj, slot.name) for slot in obj.SLOTS}
    values.update(changes)
    return type(obj)(**values)


# ---------------------------------------------------------------------------- OCI pieces


class IDMapping(Model):
    container_id: int | None = f("containerID", OCIV)
    host_id: int | None = f("hostID", OCIV)
    size: int | None = f(go=OCIV)


class Mount(Model):
    destination: str | None = f(go=OCIV)
    type: str | None = f(go=OCI)
    source: str | None = f(go=OCI)
    options: list[str] | None = f(go=OCI)
    uid_mappings: list[IDMapping] | None = f("uidmappings", Go(key="uidMappings", lower=True, omit="json"))
    gid_mappings: list[IDMapping] | None = f("gidmappings", Go(key="gidMappings", lower=True, omit="json"))


class Device(Model):
    path: str | None = f()
    type: str | None = f()
    major: int | None = f()
    minor: int | None = f()
    mode: str | None = f(go=VO)


class DeviceCgroup(Model):
    allow: bool | None = f()
    type: str | None = f(go=OCI)
    major: int | None = f(go=OCIP)
    minor: int | None = f(go=OCIP)
    access: str | None = f(go=OCI)


class Memory(Model):
    limit: int | None = f(go=OCIP)
    reservation: int | None = f(go=OCIP)
    swap: int | None = f(go=OCIP)
    kernel: int | None = f(go=OCIP)
    kernel_tcp: int | None = f("kernelTCP", OCIP)
    swappiness: int | None = f(go=OCIP)
    disable_oom_killer: bool | None = f("disableOOMKiller", OCIP)
    GO_ONLY = (GoOnly("useHierarchy", None, OCIP), GoOnly("checkBeforeUpdate", None, OCIP))


class CPU(Model):
    shares: int | None = f(go=OCIP)
    quota: int | None = f(go=OCIP)
    period: int | None = f(go=OCIP)
    realtime_runtime: int | None = f("realtimeRuntime", OCIP)
    realtime_period: int | None = f("realtimePeriod", OCIP)
    cpus: str | None = f(go=OCI)
    mems: str | None = f(go=OCI)
    GO_ONLY = (GoOnly("burst", "quota", OCIP), GoOnly("idle", None, OCIP))


class Pids(Model):
    limit: int | None = f()


class WeightDevice(Model):
    major: int | None = f()
    minor: int | None = f()
    weight: int | None = f(go=OCIP)
    leaf_weight: int | None = f("leafWeight", OCIP)
    GO_EMBED = ("linuxblockiodevice", ("major", "minor"))


class ThrottleDevice(Model):
    major: int | None = f()
    minor: int | None = f()
    rate: int | None = f()
    GO_EMBED = ("linuxblockiodevice", ("major", "minor"))


class BlockIO(Model):
    weight: int | None = f(go=OCIP)
    leaf_weight: int | None = f("leafWeight", OCIP)
    weight_device: list[WeightDevice] | None = f("weightDevice", OCI)
    throttle_read_bps_device: list[ThrottleDevice] | None = f("throttleReadBpsDevice", OCI)
    throttle_write_bps_device: list[ThrottleDevice] | None = f("throttleWriteBpsDevice", OCI)
    throttle_read_iops_device: list[ThrottleDevice] | None = f("throttleReadIOPSDevice", OCI)
    throttle_write_iops_device: list[ThrottleDevice] | None = f("throttleWriteIOPSDevice", OCI)


class HugepageLimit(Model):
    page_size: int | None = f("pageSize", Go(lower=True, string=True))
    limit: int | None = f()


class InterfacePriority(Model):
    name: str | None = f()
    priority: int | None = f()


class Network(Model):
    class_id: int | None = f("classID", OCIP)
    priorities: list[InterfacePriority] | None = f(go=OCI)


class Resources(Model):
    devices: list[DeviceCgroup] | None = f(go=OCI)
    memory: Memory | None = f(go=OCIP)
    cpu: CPU | None = f(go=OCIP)
    pids: Pids | None = f(go=OCIP)
    blockio: BlockIO | None = f(go=Go(key="blockIO", lower=True, omit="json", ptr=True))
    hugepage_limits: list[HugepageLimit] | None = f("hugepageLimits", OCI)
    network: Network | None = f(go=OCIP)
    GO_ONLY = (GoOnly("rdma", None, OCI, nil_map=True), GoOnly("unified", None, OCI, nil_map=True))


# ---------------------------------------------------------------------------- LinuxKit runtime


class Interface(Model):
    name: str | None = f(go=VO)
    add: str | None = f(go=VO)
    peer: str | None = f(go=VO)
    create_in_root: bool | None = f("createInRoot")


class Namespaces(Model):
    cgroup: str | None = f(go=P)
    ipc: str | None = f(go=P)
    mnt: str | None = f(go=P)
    net: str | None = f(go=P)
    pid: str | None = f(go=P)
    user: str | None = f(go=P)
    uts: str | None = f(go=P)


class Runtime(Model):
    cgroups: list[str] | None = f(go=P)
    mounts: list[Mount] | None = f(go=P)
    mkdir: list[str] | None = f(go=P)
    interfaces: list[Interface] | None = f(go=P)
    bind_ns: Namespaces | None = f("bindNS", VO)
    namespace: str | None = f(go=P)


# ---------------------------------------------------------------------------- images

IntOrStr = int | str


class ImageConfig(Model):
    """The part of an image entry that may also come from the ``org.mobyproject.config`` label."""

    capabilities: list[str] | None = f(go=P)
    capabilities_add: list[str] | None = f("capabilities.add", P)
    ambient: list[str] | None = f(go=P)
    mounts: list[Mount] | None = f(go=P)
    binds: list[str] | None = f(go=P)
    binds_add: list[str] | None = f("binds.add", P)
    devices: list[Device] | None = f(go=P)
    tmpfs: list[str] | None = f(go=P)
    command: list[str] | None = f(go=P)
    env: list[str] | None = f(go=P)
    cwd: str | None = f(go=VO)
    net: str | None = f(go=VO)
    pid: str | None = f(go=VO)
    ipc: str | None = f(go=VO)
    uts: str | None = f(go=VO)
    userns: str | None = f(go=VO)
    hostname: str | None = f(go=VO)
    readonly: bool | None = f(go=P)
    masked_paths: list[str] | None = f("maskedPaths", P)
    readonly_paths: list[str] | None = f("readonlyPaths", P)
    uid: IntOrStr | None = f(go=P)
    gid: IntOrStr | None = f(go=P)
    additional_gids: list[IntOrStr] | None = f("additionalGids", P)
    no_new_privileges: bool | None = f("noNewPrivileges", P)
    oom_score_adj: int | None = f("oomScoreAdj", P)
    rootfs_propagation: str | None = f("rootfsPropagation", P)
    cgroups_path: str | None = f("cgroupsPath", P)
    resources: Resources | None = f(go=P)
    sysctl: dict[str, str] | None = f(go=P)
    rlimits: list[str] | None = f(go=P)
    uid_mappings: list[IDMapping] | None = f("uidMappings", P)
    gid_mappings: list[IDMapping] | None = f("gidMappings", P)
    annotations: dict[str, str] | None = f(go=P)
    runtime: Runtime | None = f(go=P)


class Image(ImageConfig):
    """One ``onboot``/``onshutdown``/``services`` entry."""

    name: str
    image: str
    GO_BASE_LAST = True


# ---------------------------------------------------------------------------- top level


class Kernel(Model):
    """The kernel image and its command line."""

    image: str | None = f()
    cmdline: str | None = f(go=VO)
    binary: str | None = f(go=VO)
    tar: str | None = f(go=P)
    ucode: str | None = f(go=P)


class File(Model):
    """A file, directory or symlink added to the image."""

    path: str | None = f()
    directory: bool | None = f()
    symlink: str | None = f(go=VO)
    contents: str | None = f(go=P)
    source: str | None = f(go=VO)
    metadata: str | None = f(go=VO)
    optional: bool | None = f()
    mode: str | None = f(go=VO)
    uid: IntOrStr | None = f(go=P)
    gid: IntOrStr | None = f(go=P)


class Volume(Model):
    """A volume made from an image, shared by containers through ``binds``."""

    name: str | None = f()
    image: str | None = f(go=VO)
    readonly: bool | None = f(go=VO)
    format: Literal["oci", "filesystem"] | None = f(go=VO)
    platforms: list[str] | None = f(go=VO)


class Trust(Model):
    image: list[str] | None = f()
    org: list[str] | None = f()


class Moby(Model):
    """A whole LinuxKit config (one file, or several merged)."""

    kernel: Kernel | None = f()
    init: list[str] | None = f()
    onboot: list[Image] | None = f()
    onshutdown: list[Image] | None = f()
    services: list[Image] | None = f()
    trust: Trust | None = f(go=Go(skip=True))
    files: list[File] | None = f()
    volumes: list[Volume] | None = f()


# ---------------------------------------------------------------------------- reading the declaration


class Type(NamedTuple):
    """A field's type: ``kind`` is str, int, bool, enum (``values``), union (``members``), list
    (``item``), map (string keys, ``item`` values) or object (``cls``)."""

    kind: Literal["str", "int", "bool", "enum", "union", "list", "map", "object"]
    item: "Type | None" = None
    members: tuple["Type", ...] = ()
    values: tuple[str, ...] = ()
    cls: type[Model] | None = None


class FieldSpec(NamedTuple):
    """One YAML key of a schema class."""

    attr: str
    key: str
    type: Type
    nullable: bool
    required: bool
    go: Go
    default_factory: Any = None


_SCALARS: dict[Any, Type] = {str: Type("str"), int: Type("int"), bool: Type("bool")}


def _type(tp: Any) -> tuple[Type, bool]:
    """The :class:`Type` of an annotation and whether it admits ``None``."""
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = [a for a in get_args(tp) if a is not type(None)]
        nullable = len(args) < len(get_args(tp))
        if len(args) == 1:
            return _type(args[0])[0], nullable
        return Type("union", members=tuple(_type(a)[0] for a in args)), nullable
    if origin is Literal:
        return Type("enum", values=get_args(tp)), False
    if origin is list:
        return Type("list", item=_type(get_args(tp)[0])[0]), False
    if origin is dict:
        return Type("map", item=_type(get_args(tp)[1])[0]), False
    if tp in _SCALARS:
        return _SCALARS[tp], False
    if isinstance(tp, type) and issubclass(tp, Model):
        return Type("object", cls=tp), False
    raise TypeError(f"unsupported schema type {tp!r}")


_FIELDS: dict[type[Model], tuple[FieldSpec, ...]] = {}
_ALLOWED: dict[type[Model], tuple[str, ...]] = {}


def fields_of(cls: type[Model]) -> tuple[FieldSpec, ...]:
    """The YAML keys of ``cls`` in declaration order (read once per class, on first use)."""
    cached = _FIELDS.get(cls)
    if cached is not None:
        return cached
    out = []
    hints = get_type_hints(cls)  # annotations may be strings (``from __future__ import annotations``)
    for slot in cls.SLOTS:
        tp, nullable = _type(hints[slot.name])
        required = slot.default is _REQUIRED and slot.default_factory is None
        out.append(FieldSpec(slot.name, slot.key, tp, nullable, required, slot.go, slot.default_factory))
    _FIELDS[cls] = done = tuple(out)
    _ALLOWED[cls] = tuple(spec.key for spec in done)
    return done


# ---------------------------------------------------------------------------- checking


class Issue(NamedTuple):
    """One schema problem: at ``path``, an ``unknown`` key (``allowed``: the keys there), a
    ``missing`` required key, a value of the wrong ``type`` (``expected``: "a string", ...) or not
    one of the ``enum`` values (``expected``)."""

    path: tuple[str | int, ...]
    kind: Literal["unknown", "missing", "type", "enum"]
    expected: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()


class SchemaError(ValueError):
    """A value does not fit the schema (:func:`parse`)."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, i.path))}: {i.kind} {' or '.join(i.expected)}" for i in issues))
        self.issues = issues


_NAMES = {"str": "a string", "int": "an integer", "bool": "true or false", "list": "a list", "map": "a mapping"}
_INVALID = object()


def _expected(t: Type) -> tuple[str, ...]:
    if t.kind == "union":
        return tuple(sorted({n for m in t.members for n in _expected(m)}))
    return (_NAMES.get(t.kind, "a mapping"),)


def _check(t: Type, value: Any, path: tuple[str | int, ...], issues: list[Issue]) -> Any:
    """``value`` as type ``t`` (objects with their broken parts left out), or ``_INVALID``."""
    kind = t.kind
    if kind == "str":
        ok = isinstance(value, str)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "enum":
        if isinstance(value, str) and value in t.values:
            return value
        issues.append(Issue(path, "enum", tuple(repr(v) for v in t.values)))
        return _INVALID
    elif kind == "union":
        ok = any(_check(m, value, path, []) is not _INVALID for m in t.members)
    elif kind == "list":
        if not isinstance(value, list):
            ok = False
        else:
            assert t.item is not None
            items = [_check(t.item, v, (*path, i), issues) for i, v in enumerate(value)]
            return [_blank(t.item) if v is _INVALID else v for v in items]
    elif kind == "map":
        if not isinstance(value, dict):
            ok = False
        else:
            assert t.item is not None
            out = {}
            for k, v in value.items():
                if not isinstance(k, str):
                    issues.append(Issue((*path, k), "type", ("a string",)))
                    continue
                checked = _check(t.item, v, (*path, k), issues)
                if checked is not _INVALID:
                    out[k] = checked
            return out
    else:
        assert t.cls is not None
        if not isinstance(value, dict):
            ok = False
        else:
            return _object(t.cls, value, path, issues)
    if ok:
        return value
    issues.append(Issue(path, "type", _expected(t)))
    return _INVALID


def _blank(t: Type) -> Any:
    """What stands for a broken list item, so that the other items keep their index."""
    if t.kind == "object":
        assert t.cls is not None
        return _object(t.cls, {}, (), [])
    return ""


def _object(cls: type[M], value: dict[Any, Any], path: tuple[str | int, ...], issues: list[Issue]) -> M:
    specs = fields_of(cls)
    kwargs: dict[str, Any] = {}
    for spec in specs:
        where = (*path, spec.key)
        if spec.key not in value:
            if spec.required:
                issues.append(Issue(where, "missing"))
                kwargs[spec.attr] = ""
            continue
        item = value[spec.key]
        if item is None and spec.nullable:
            continue
        checked = _check(spec.type, item, where, issues)
        if checked is not _INVALID:
            kwargs[spec.attr] = checked
        elif spec.required:
            kwargs[spec.attr] = ""
    allowed = _ALLOWED[cls]
    for k in value:
        if k not in allowed:
            issues.append(Issue((*path, k), "unknown", allowed=allowed))
    return cls(**kwargs)


def check(cls: type[M], value: dict[Any, Any]) -> tuple[M, list[Issue]]:
    """``value`` (a mapping) as ``cls`` with the parts that do not fit left out, and every issue."""
    issues: list[Issue] = []
    return _object(cls, value, (), issues), issues


def parse(cls: type[M], value: Any) -> M:
    """``value`` as ``cls``; :class:`SchemaError` with every issue if it does not fit."""
    if not isinstance(value, dict):
        raise SchemaError([Issue((), "type", ("a mapping",))])
    model, issues = check(cls, value)
    if issues:
        raise SchemaError(issues)
    return model
