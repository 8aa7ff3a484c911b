"""A container's OCI ``config.json`` and LinuxKit ``runtime.json``, as upstream generates them.

Each setting comes from the first place that has it: the YAML image entry, then the image's
``org.mobyproject.config`` label, then the image config (``Entrypoint``+``Cmd``, ``Env``,
``WorkingDir``), then the default. Lists replace lists; only ``capabilities.add`` and ``binds.add``
of the YAML entry extend the *label's* ``capabilities``/``binds`` (and only when the YAML entry does
not set ``capabilities``/``binds`` itself). For plain strings (cwd, hostname, namespaces) an empty
value counts as unset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..config import schema
from ..config.paths import image_path_problems, name_problem
from ..config.validate import dotted
from ..errors import LinuxKitError, UserError
from ..gocompat.json import marshal_indent, sorted_map
from . import capabilities, mounts, resources
from .ids import resolve_id
from .label import check_label_paths, image_label
from .mounts import runtime_mount
from .volumes import with_volume_paths

__all__ = ["OCI_VERSION", "ContainerSpec", "container_spec", "runtime_json", "runtime_mount"]

#: The runtime-spec version upstream writes (``specs.Version`` of its vendored runtime-spec).
OCI_VERSION = "1.2.1"

T = TypeVar("T")


@dataclass(frozen=True)
class ContainerSpec:
    config_json: bytes
    """The exact bytes of the bundle's ``config.json``."""
    runtime: dict[str, Any]
    """The LinuxKit runtime settings (Go field order), before the bundle writer prepends rootfs mounts."""
    readonly: bool
    """``root.readonly``: the image is unpacked straight into ``rootfs/`` instead of an overlay."""


def _first(*values: T | None) -> T | None:
    """The first value that is set (not ``None``): YAML first, then label, then image."""
    return next((value for value in values if value is not None), None)


def _first_text(*values: str | None) -> str:
    """The first non-empty string."""
    return next((value for value in values if value), "")


def _namespaces(label: schema.ImageConfig, yaml: schema.Image) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(kind: str, path: str) -> None:
        out.append({"type": kind, "path": path} if path else {"type": kind})

    # net, ipc, uts and user stay in the host namespace unless asked; "new" (and for net "none") makes one
    for kind, value, empty in (
        ("network", _first_text(yaml.net, label.net), ("new", "none")),
        ("ipc", _first_text(yaml.ipc, label.ipc), ("new",)),
        ("uts", _first_text(yaml.uts, label.uts), ("new",)),
    ):
        if value and value not in ("host", "root"):
            add(kind, "" if value in empty else value)
    # a new pid namespace unless asked for the host's
    pid = _first_text(yaml.pid, label.pid)
    if pid not in ("host", "root"):
        add("pid", "" if pid == "new" else pid)
    userns = _first_text(yaml.userns, label.userns)
    if userns and userns not in ("host", "root"):
        add("user", "" if userns == "new" else userns)
    add("mount", "")
    return out


def _runtime(label: schema.Runtime | None, yaml: schema.Runtime | None) -> dict[str, Any]:
    low = label or schema.Runtime()
    high = yaml or schema.Runtime()
    low_ns = low.bind_ns or schema.Namespaces()
    high_ns = high.bind_ns or schema.Namespaces()
    bind_ns = {
        key: _first(getattr(high_ns, key), getattr(low_ns, key)) or ""
        for key in ("cgroup", "ipc", "mnt", "net", "pid", "user", "uts")
    }
    interfaces = []
    for iface in _first(high.interfaces, low.interfaces) or ():
        entry: dict[str, Any] = {
            key: value for key, value in (("name", iface.name), ("add", iface.add), ("peer", iface.peer)) if value
        }
        entry["createInRoot"] = bool(iface.create_in_root)
        interfaces.append(entry)
    mount_list = _first(high.mounts, low.mounts) or []
    return {
        "cgroups": list(_first(high.cgroups, low.cgroups) or ()),
        "mounts": [mounts.mount_json(m, f"runtime.mounts[{i}]") for i, m in enumerate(mount_list)],
        "mkdir": list(_first(high.mkdir, low.mkdir) or ()),
        "interfaces": interfaces,
        "bindNS": bind_ns,
        "namespace": _first(high.namespace, low.namespace) or "",
    }


def _put_list(out: dict[str, Any], key: str, value: Sequence[Any] | None) -> None:
    if value:
        out[key] = list(value)


def _build(yaml: schema.Image, image_config: dict[str, Any], ids: Mapping[str, int]) -> ContainerSpec:
    label = image_label(image_config, yaml.image)
    check_label_paths(label, yaml, yaml.image)
    inner: dict[str, Any] = image_config.get("config") or {}

    image_args = [*(inner.get("Entrypoint") or ()), *(inner.get("Cmd") or ())]
    args = _first(yaml.command, label.command, image_args)
    env = _first(yaml.env, label.env, inner.get("Env"))
    cwd = _first_text(yaml.cwd, label.cwd, inner.get("WorkingDir"), "/")
    readonly = bool(_first(yaml.readonly, label.readonly))

    tmpfs = _first(yaml.tmpfs, label.tmpfs) or []
    binds = _first(yaml.binds, [*(label.binds or ()), *(yaml.binds_add or ())])
    mount_list = mounts.container_mounts(readonly, tmpfs, binds or [], _first(yaml.mounts, label.mounts) or [])
    namespaces = _namespaces(label, yaml)

    caps = _first(yaml.capabilities, [*(label.capabilities or ()), *(yaml.capabilities_add or ())])
    cap_sets = capabilities.capability_sets(caps or [], _first(yaml.ambient, label.ambient) or [])
    rlimits = resources.rlimits(_first(yaml.rlimits, label.rlimits) or [])

    uid = resolve_id(yaml.uid if yaml.uid is not None else label.uid, ids)
    gid = resolve_id(yaml.gid if yaml.gid is not None else label.gid, ids)
    groups = [resolve_id(g, ids) for g in _first(yaml.additional_gids, label.additional_gids) or ()]

    user: dict[str, Any] = {"uid": uid, "gid": gid}
    _put_list(user, "additionalGids", groups)
    process: dict[str, Any] = {"user": user}
    _put_list(process, "args", args)
    _put_list(process, "env", env)
    process["cwd"] = cwd
    process["capabilities"] = cap_sets
    _put_list(process, "rlimits", rlimits)
    if _first(yaml.no_new_privileges, label.no_new_privileges):
        process["noNewPrivileges"] = True
    oom = _first(yaml.oom_score_adj, label.oom_score_adj)
    if oom is not None:
        process["oomScoreAdj"] = resources.checked(oom, "int64", "oomScoreAdj")

    root: dict[str, Any] = {"path": "rootfs"}
    if readonly:
        root["readonly"] = True

    device_nodes, device_rules = resources.devices(_first(yaml.devices, label.devices) or [])
    linux: dict[str, Any] = {}
    _put_list(linux, "uidMappings", resources.id_mappings(_first(yaml.uid_mappings, label.uid_mappings), "uidMappings"))
    _put_list(linux, "gidMappings", resources.id_mappings(_first(yaml.gid_mappings, label.gid_mappings), "gidMappings"))
    sysctl = _first(yaml.sysctl, label.sysctl)
    if sysctl:
        linux["sysctl"] = sorted_map(sysctl)
    linux["resources"] = resources.resources(_first(yaml.resources, label.resources), device_rules)
    cgroups_path = _first(yaml.cgroups_path, label.cgroups_path)
    if cgroups_path:
        linux["cgroupsPath"] = cgroups_path
    linux["namespaces"] = namespaces
    _put_list(linux, "devices", device_nodes)
    propagation = _first(yaml.rootfs_propagation, label.rootfs_propagation)
    if propagation:
        linux["rootfsPropagation"] = propagation
    _put_list(linux, "maskedPaths", _first(yaml.masked_paths, label.masked_paths))
    _put_list(linux, "readonlyPaths", _first(yaml.readonly_paths, label.readonly_paths))

    spec: dict[str, Any] = {"ociVersion": OCI_VERSION, "process": process, "root": root}
    hostname = _first_text(yaml.hostname, label.hostname)
    if hostname:
        spec["hostname"] = hostname
    spec["mounts"] = mount_list
    annotations = _first(yaml.annotations, label.annotations)
    if annotations:
        spec["annotations"] = sorted_map(annotations)
    spec["linux"] = linux

    return ContainerSpec(
        config_json=marshal_indent(spec),
        runtime=_runtime(label.runtime, yaml.runtime),
        readonly=readonly,
    )


def container_spec(
    image: schema.Image,
    image_config: dict[str, Any],
    ids: Mapping[str, int],
    volumes: Mapping[str, schema.Volume],
) -> ContainerSpec:
    """The ``config.json`` bytes and runtime settings of one onboot/onshutdown/service container.

    ``image_config`` is the whole OCI image config JSON of its image. Errors in the user's settings
    raise :class:`~linuxkit.errors.UserError`, an invalid image label :class:`~linuxkit.errors.BuildError`
    (a label's mount destination or runtime path that climbs out: :class:`~linuxkit.errors.UserError`);
    all name the container.
    """
    try:
        _check_yaml(image)
        return _build(with_volume_paths(image, volumes), image_config, ids)
    except LinuxKitError as error:
        prefix = f"{image.name} ({image.image}): "
        if not error.message.startswith(prefix):
            error.message = prefix + error.message
            error.args = (error.message,)
        raise


def _check_yaml(image: schema.Image) -> None:
    """The name and path rules that config loading reports with locations, again for callers that
    build specs from models made elsewhere."""
    if problem := name_problem(image.name):
        raise UserError(f"invalid container name {image.name!r}: it {problem}")
    for where, message, hint in image_path_problems(image):
        raise UserError(f"{dotted(where)}: {message}", hint=hint)


_RUNTIME_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("cgroups", []),
    ("mounts", []),
    ("mkdir", []),
    ("interfaces", []),
    ("bindNS", {"cgroup": "", "ipc": "", "mnt": "", "net": "", "pid": "", "user": "", "uts": ""}),
    ("namespace", ""),
)


def runtime_json(runtime: dict[str, Any]) -> bytes:
    """The bytes upstream writes as ``runtime.json`` for these runtime settings (missing keys get
    upstream's defaults: empty lists, empty bindNS paths, empty namespace)."""
    out: dict[str, Any] = {}
    for key, default in _RUNTIME_DEFAULTS:
        value = runtime.get(key)
        if key == "bindNS":
            value = {name: (value or {}).get(name) or "" for name in default}
        out[key] = default if value is None else value
    return marshal_indent(out)
