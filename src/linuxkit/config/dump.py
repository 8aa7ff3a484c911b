"""Print a config the way upstream does: ``build --dry-run`` and ``files: [{metadata: yaml|json}]``.

Upstream marshals its Go ``Moby`` struct, so the output shows Go's view of the config: every
non-``omitempty`` field appears with its zero value (``image: ""``, ``onshutdown: []``,
``optional: false``), OCI structs from runtime-spec carry lower-cased Go field names in YAML
(``uidmappings``, ``kerneltcp``) and all their fields, and ``trust`` is gone.

* ``dump_yaml`` is ``build --dry-run``: go-yaml **v3** (4-space indent); ``print`` adds one more ``\\n``.
* ``metadata_file`` is the ``metadata:`` file: image references expanded first (``UpdateImages``),
  then go-yaml **v2** (2-space indent, indentless sequences, folding at 80 columns) for ``yaml``
  and ``json.MarshalIndent`` with 4 spaces for ``json``.

Difference: upstream silently drops camelCase keys inside ``resources`` and ``uidMappings``
entries (``kernelTCP``, ``hostID``…; go-yaml only matches the lower-cased Go field name), so it
prints them as ``null``/``0``; we keep and print the values given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from ..errors import UserError
from ..gocompat import json as gojson
from ..gocompat.values import Field, GoValue, NilMap, NilSlice, Ptr, Struct, to_plain
from ..gocompat.yaml import marshal_yaml
from ..oci import reference
from . import schema as s


def _ptr(value: GoValue) -> GoValue:
    return None if value is None else Ptr(value)


def _strs(values: Sequence[str] | None) -> GoValue:
    return NilSlice() if values is None else list(values)


def _pstrs(values: Sequence[str] | None) -> GoValue:
    return None if values is None else Ptr(list(values))


def _pmap(values: dict[str, str] | None) -> GoValue:
    return None if values is None else Ptr(dict(values))


def _slice(items: Sequence[object] | None, conv: object, j: bool) -> GoValue:
    if items is None:
        return NilSlice()
    return [conv(item, j) for item in items]  # type: ignore[operator]


def _pslice(items: Sequence[object] | None, conv: object, j: bool) -> GoValue:
    return None if items is None else Ptr(_slice(items, conv, j))


def _idmapping(m: s.IDMapping, j: bool) -> GoValue:
    if j:
        return Struct(
            [Field("containerID", m.container_id or 0), Field("hostID", m.host_id or 0), Field("size", m.size or 0)]
        )
    return Struct(
        [Field("containerid", m.container_id or 0), Field("hostid", m.host_id or 0), Field("size", m.size or 0)]
    )


def _mount(m: s.Mount, j: bool) -> GoValue:
    return Struct(
        [
            Field("destination", m.destination or ""),
            Field("type", m.type or "", j),
            Field("source", m.source or "", j),
            Field("options", _strs(m.options), j),
            Field("uidMappings" if j else "uidmappings", _slice(m.uid_mappings, _idmapping, j), j),
            Field("gidMappings" if j else "gidmappings", _slice(m.gid_mappings, _idmapping, j), j),
        ]
    )


def _device(d: s.Device, j: bool) -> GoValue:
    return Struct(
        [
            Field("path", d.path or ""),
            Field("type", d.type or ""),
            Field("major", d.major or 0),
            Field("minor", d.minor or 0),
            Field("mode", d.mode or "", True),
        ]
    )


def _opt(key_json: str, value: GoValue, j: bool) -> Field:
    """An OCI field: lower-cased Go name and no omitempty in YAML, its JSON tag with omitempty in JSON."""
    return Field(key_json if j else key_json.lower(), value, j)


def _device_cgroup(d: s.DeviceCgroup, j: bool) -> GoValue:
    return Struct(
        [
            Field("allow", bool(d.allow)),
            _opt("type", d.type or "", j),
            _opt("major", _ptr(d.major), j),
            _opt("minor", _ptr(d.minor), j),
            _opt("access", d.access or "", j),
        ]
    )


def _memory(m: s.Memory, j: bool) -> GoValue:
    return Struct(
        [
            _opt("limit", _ptr(m.limit), j),
            _opt("reservation", _ptr(m.reservation), j),
            _opt("swap", _ptr(m.swap), j),
            _opt("kernel", _ptr(m.kernel), j),
            _opt("kernelTCP", _ptr(m.kernel_tcp), j),
            _opt("swappiness", _ptr(m.swappiness), j),
            _opt("disableOOMKiller", _ptr(m.disable_oom_killer), j),
            _opt("useHierarchy", None, j),
            _opt("checkBeforeUpdate", None, j),
        ]
    )


def _cpu(c: s.CPU, j: bool) -> GoValue:
    return Struct(
        [
            _opt("shares", _ptr(c.shares), j),
            _opt("quota", _ptr(c.quota), j),
            _opt("burst", None, j),
            _opt("period", _ptr(c.period), j),
            _opt("realtimeRuntime", _ptr(c.realtime_runtime), j),
            _opt("realtimePeriod", _ptr(c.realtime_period), j),
            _opt("cpus", c.cpus or "", j),
            _opt("mems", c.mems or "", j),
            _opt("idle", None, j),
        ]
    )


def _blockio_device(major: int | None, minor: int | None, j: bool) -> list[Field]:
    fields = [Field("major", major or 0), Field("minor", minor or 0)]
    return fields if j else [Field("linuxblockiodevice", Struct(fields))]


def _weight_device(d: s.WeightDevice, j: bool) -> GoValue:
    return Struct(
        [
            *_blockio_device(d.major, d.minor, j),
            _opt("weight", _ptr(d.weight), j),
            _opt("leafWeight", _ptr(d.leaf_weight), j),
        ]
    )


def _throttle_device(d: s.ThrottleDevice, j: bool) -> GoValue:
    return Struct([*_blockio_device(d.major, d.minor, j), Field("rate", d.rate or 0)])


def _blockio(b: s.BlockIO, j: bool) -> GoValue:
    return Struct(
        [
            _opt("weight", _ptr(b.weight), j),
            _opt("leafWeight", _ptr(b.leaf_weight), j),
            _opt("weightDevice", _slice(b.weight_device, _weight_device, j), j),
            _opt("throttleReadBpsDevice", _slice(b.throttle_read_bps_device, _throttle_device, j), j),
            _opt("throttleWriteBpsDevice", _slice(b.throttle_write_bps_device, _throttle_device, j), j),
            _opt("throttleReadIOPSDevice", _slice(b.throttle_read_iops_device, _throttle_device, j), j),
            _opt("throttleWriteIOPSDevice", _slice(b.throttle_write_iops_device, _throttle_device, j), j),
        ]
    )


def _hugepage(h: s.HugepageLimit, j: bool) -> GoValue:
    page = "" if h.page_size is None else str(h.page_size)
    return Struct([Field("pageSize" if j else "pagesize", page), Field("limit", h.limit or 0)])


def _priority(p: s.InterfacePriority, j: bool) -> GoValue:
    return Struct([Field("name", p.name or ""), Field("priority", p.priority or 0)])


def _network(n: s.Network, j: bool) -> GoValue:
    return Struct([_opt("classID", _ptr(n.class_id), j), _opt("priorities", _slice(n.priorities, _priority, j), j)])


def _sub(value: object, conv: object, j: bool) -> GoValue:
    return None if value is None else Ptr(conv(value, j))  # type: ignore[operator]


def _resources(r: s.Resources, j: bool) -> GoValue:
    return Struct(
        [
            _opt("devices", _slice(r.devices, _device_cgroup, j), j),
            _opt("memory", _sub(r.memory, _memory, j), j),
            _opt("cpu", _sub(r.cpu, _cpu, j), j),
            _opt("pids", None if r.pids is None else Ptr(Struct([Field("limit", r.pids.limit or 0)])), j),
            _opt("blockIO", _sub(r.blockio, _blockio, j), j),
            _opt("hugepageLimits", _slice(r.hugepage_limits, _hugepage, j), j),
            _opt("network", _sub(r.network, _network, j), j),
            _opt("rdma", NilMap(), j),
            _opt("unified", NilMap(), j),
        ]
    )


def _interface(i: s.Interface, j: bool) -> GoValue:
    return Struct(
        [
            Field("name", i.name or "", True),
            Field("add", i.add or "", True),
            Field("peer", i.peer or "", True),
            Field("createInRoot", bool(i.create_in_root)),
        ]
    )


def _runtime(r: s.Runtime, j: bool) -> GoValue:
    ns = r.bind_ns or s.Namespaces()
    names = ("cgroup", "ipc", "mnt", "net", "pid", "user", "uts")
    bind_ns = Struct([Field(n, _ptr(getattr(ns, n)), True) for n in names])
    return Struct(
        [
            Field("cgroups", _pstrs(r.cgroups), True),
            Field("mounts", _pslice(r.mounts, _mount, j), True),
            Field("mkdir", _pstrs(r.mkdir), True),
            Field("interfaces", _pslice(r.interfaces, _interface, j), True),
            Field("bindNS", bind_ns, True),
            Field("namespace", _ptr(r.namespace), True),
        ]
    )


def _image_config_fields(i: s.ImageConfig, j: bool) -> list[Field]:
    def f(key: str, value: GoValue) -> Field:
        return Field(key, value, True)

    return [
        f("capabilities", _pstrs(i.capabilities)),
        f("capabilities.add", _pstrs(i.capabilities_add)),
        f("ambient", _pstrs(i.ambient)),
        f("mounts", _pslice(i.mounts, _mount, j)),
        f("binds", _pstrs(i.binds)),
        f("binds.add", _pstrs(i.binds_add)),
        f("devices", _pslice(i.devices, _device, j)),
        f("tmpfs", _pstrs(i.tmpfs)),
        f("command", _pstrs(i.command)),
        f("env", _pstrs(i.env)),
        f("cwd", i.cwd or ""),
        f("net", i.net or ""),
        f("pid", i.pid or ""),
        f("ipc", i.ipc or ""),
        f("uts", i.uts or ""),
        f("userns", i.userns or ""),
        f("hostname", i.hostname or ""),
        f("readonly", _ptr(i.readonly)),
        f("maskedPaths", _pstrs(i.masked_paths)),
        f("readonlyPaths", _pstrs(i.readonly_paths)),
        f("uid", _ptr(i.uid)),
        f("gid", _ptr(i.gid)),
        f("additionalGids", None if i.additional_gids is None else Ptr(list(i.additional_gids))),
        f("noNewPrivileges", _ptr(i.no_new_privileges)),
        f("oomScoreAdj", _ptr(i.oom_score_adj)),
        f("rootfsPropagation", _ptr(i.rootfs_propagation)),
        f("cgroupsPath", _ptr(i.cgroups_path)),
        f("resources", _sub(i.resources, _resources, j)),
        f("sysctl", _pmap(i.sysctl)),
        f("rlimits", _pstrs(i.rlimits)),
        f("uidMappings", _pslice(i.uid_mappings, _idmapping, j)),
        f("gidMappings", _pslice(i.gid_mappings, _idmapping, j)),
        f("annotations", _pmap(i.annotations)),
        f("runtime", _sub(i.runtime, _runtime, j)),
    ]


def _image(i: s.Image, j: bool) -> GoValue:
    return Struct([Field("name", i.name), Field("image", i.image), *_image_config_fields(i, j)])


def image_config_label(config: s.ImageConfig) -> str:
    """The ``org.mobyproject.config`` label for ``config``, as upstream's ``pkg build`` writes it
    (``json.Marshal`` of its ImageConfig: field order of the struct, empty fields left out)."""
    return gojson.marshal(to_plain(Struct(_image_config_fields(config, True)), json=True)).decode()


def _file(fl: s.File, j: bool) -> GoValue:
    return Struct(
        [
            Field("path", fl.path or ""),
            Field("directory", bool(fl.directory)),
            Field("symlink", fl.symlink or "", True),
            Field("contents", _ptr(fl.contents), True),
            Field("source", fl.source or "", True),
            Field("metadata", fl.metadata or "", True),
            Field("optional", bool(fl.optional)),
            Field("mode", fl.mode or "", True),
            Field("uid", _ptr(fl.uid), True),
            Field("gid", _ptr(fl.gid), True),
        ]
    )


def _volume(v: s.Volume, j: bool) -> GoValue:
    return Struct(
        [
            Field("name", v.name or ""),
            Field("image", v.image or "", True),
            Field("readonly", bool(v.readonly), True),
            Field("format", v.format or "", True),
            Field("platforms", _strs(v.platforms), True),
        ]
    )


def to_go(moby: s.Moby, *, json: bool = False) -> GoValue:
    """The Go value upstream would marshal for ``moby`` (field order, zero values, omitempty)."""
    k = moby.kernel or s.Kernel()
    kernel = Struct(
        [
            Field("image", k.image or ""),
            Field("cmdline", k.cmdline or "", True),
            Field("binary", k.binary or "", True),
            Field("tar", _ptr(k.tar), True),
            Field("ucode", _ptr(k.ucode), True),
        ]
    )
    return Struct(
        [
            Field("kernel", kernel),
            Field("init", _strs(moby.init)),
            Field("onboot", _slice(moby.onboot, _image, json)),
            Field("onshutdown", _slice(moby.onshutdown, _image, json)),
            Field("services", _slice(moby.services, _image, json)),
            Field("files", _slice(moby.files, _file, json)),
            Field("volumes", _slice(moby.volumes, _volume, json)),
        ]
    )


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

    update: dict[str, object] = {}
    if moby.kernel is not None and moby.kernel.image:
        update["kernel"] = moby.kernel.model_copy(update={"image": full(moby.kernel.image)})
    if moby.init is not None:
        update["init"] = [full(r) for r in moby.init]
    for section in ("onboot", "onshutdown", "services"):
        images: list[s.Image] | None = getattr(moby, section)
        if images is not None:
            update[section] = [i.model_copy(update={"image": full(i.image)}) for i in images]
    return moby.model_copy(update=update)


def metadata_file(moby: s.Moby, kind: Literal["yaml", "json"] | str) -> bytes:
    """The contents of a ``files`` entry with ``metadata: yaml|json``."""
    expanded = with_expanded_images(moby)
    if kind == "yaml":
        return marshal_yaml(to_go(expanded), v3=False)
    if kind == "json":
        return gojson.marshal_indent(to_plain(to_go(expanded, json=True), json=True))
    raise UserError(f"unsupported metadata type: {kind}", hint="use metadata: yaml or metadata: json")
