"""The OCI pieces built from typed config values: resources, devices, id mappings and rlimits.

Every builder returns plain dicts in runtime-spec Go field order, leaving out what Go's ``omitempty``
leaves out, so :func:`linuxkit.gocompat.json.marshal_indent` renders them as upstream does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..config import schema
from ..errors import UserError

_RANGES = {
    "int32": (-(1 << 31), (1 << 31) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
    "uint16": (0, (1 << 16) - 1),
    "uint32": (0, (1 << 32) - 1),
    "uint64": (0, (1 << 64) - 1),
}
UNLIMITED = (1 << 64) - 1

#: The rlimit names upstream accepts (``RLIMIT_`` prefix optional in the config).
RLIMIT_NAMES: frozenset[str] = frozenset(
    {
        "RLIMIT_CPU",
        "RLIMIT_FSIZE",
        "RLIMIT_DATA",
        "RLIMIT_STACK",
        "RLIMIT_CORE",
        "RLIMIT_RSS",
        "RLIMIT_NPROC",
        "RLIMIT_NOFILE",
        "RLIMIT_MEMLOCK",
        "RLIMIT_AS",
        "RLIMIT_LOCKS",
        "RLIMIT_SIGPENDING",
        "RLIMIT_MSGQUEUE",
        "RLIMIT_NICE",
        "RLIMIT_RTPRIO",
        "RLIMIT_RTTIME",
    }
)
_DECIMAL = re.compile(r"[0-9]+")
_OCTAL = re.compile(r"[+-]?[0-7]+")


def checked(value: int, kind: str, where: str) -> int:
    """``value`` if it fits the Go integer type ``kind``; otherwise a :class:`UserError` naming ``where``."""
    low, high = _RANGES[kind]
    if not low <= value <= high:
        raise UserError(f"{where}: {value} does not fit in {kind}", hint=f"use a value from {low} to {high}")
    return value


def _put(out: dict[str, Any], key: str, value: int | None, kind: str, where: str) -> None:
    """Set an optional (pointer) number: present when set, even when zero."""
    if value is not None:
        out[key] = checked(value, kind, f"{where}.{key}")


def id_mapping(mapping: schema.IDMapping, where: str) -> dict[str, Any]:
    return {
        "containerID": checked(mapping.container_id or 0, "uint32", f"{where}.containerID"),
        "hostID": checked(mapping.host_id or 0, "uint32", f"{where}.hostID"),
        "size": checked(mapping.size or 0, "uint32", f"{where}.size"),
    }


def id_mappings(mappings: Sequence[schema.IDMapping] | None, where: str) -> list[dict[str, Any]]:
    return [id_mapping(m, f"{where}[{i}]") for i, m in enumerate(mappings or ())]


def device_cgroup(rule: schema.DeviceCgroup, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {"allow": bool(rule.allow)}
    if rule.type:
        out["type"] = rule.type
    _put(out, "major", rule.major, "int64", where)
    _put(out, "minor", rule.minor, "int64", where)
    if rule.access:
        out["access"] = rule.access
    return out


def _memory(memory: schema.Memory, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put(out, "limit", memory.limit, "int64", where)
    _put(out, "reservation", memory.reservation, "int64", where)
    _put(out, "swap", memory.swap, "int64", where)
    _put(out, "kernel", memory.kernel, "int64", where)
    _put(out, "kernelTCP", memory.kernel_tcp, "int64", where)
    _put(out, "swappiness", memory.swappiness, "uint64", where)
    if memory.disable_oom_killer is not None:
        out["disableOOMKiller"] = memory.disable_oom_killer
    return out


def _cpu(cpu: schema.CPU, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put(out, "shares", cpu.shares, "uint64", where)
    _put(out, "quota", cpu.quota, "int64", where)
    _put(out, "period", cpu.period, "uint64", where)
    _put(out, "realtimeRuntime", cpu.realtime_runtime, "int64", where)
    _put(out, "realtimePeriod", cpu.realtime_period, "uint64", where)
    if cpu.cpus:
        out["cpus"] = cpu.cpus
    if cpu.mems:
        out["mems"] = cpu.mems
    return out


def _throttle(devices: Sequence[schema.ThrottleDevice], where: str) -> list[dict[str, Any]]:
    return [
        {
            "major": checked(d.major or 0, "int64", f"{where}[{i}].major"),
            "minor": checked(d.minor or 0, "int64", f"{where}[{i}].minor"),
            "rate": checked(d.rate or 0, "uint64", f"{where}[{i}].rate"),
        }
        for i, d in enumerate(devices)
    ]


def _blockio(blockio: schema.BlockIO, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put(out, "weight", blockio.weight, "uint16", where)
    _put(out, "leafWeight", blockio.leaf_weight, "uint16", where)
    weight_devices = []
    for i, device in enumerate(blockio.weight_device or ()):
        at = f"{where}.weightDevice[{i}]"
        entry: dict[str, Any] = {
            "major": checked(device.major or 0, "int64", f"{at}.major"),
            "minor": checked(device.minor or 0, "int64", f"{at}.minor"),
        }
        _put(entry, "weight", device.weight, "uint16", at)
        _put(entry, "leafWeight", device.leaf_weight, "uint16", at)
        weight_devices.append(entry)
    if weight_devices:
        out["weightDevice"] = weight_devices
    for key, devices in (
        ("throttleReadBpsDevice", blockio.throttle_read_bps_device),
        ("throttleWriteBpsDevice", blockio.throttle_write_bps_device),
        ("throttleReadIOPSDevice", blockio.throttle_read_iops_device),
        ("throttleWriteIOPSDevice", blockio.throttle_write_iops_device),
    ):
        if devices:
            out[key] = _throttle(devices, f"{where}.{key}")
    return out


def hugepage_size(size: int) -> str:
    """A page size in bytes as the runtime spec spells it (``2MB``, ``1GB``, ``64KB``)."""
    for unit, shift in (("GB", 30), ("MB", 20), ("KB", 10)):
        if size > 0 and size % (1 << shift) == 0:
            return f"{size >> shift}{unit}"
    return f"{size}B"


def _network(network: schema.Network, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put(out, "classID", network.class_id, "uint32", where)
    priorities = [
        {"name": p.name or "", "priority": checked(p.priority or 0, "uint32", f"{where}.priorities[{i}].priority")}
        for i, p in enumerate(network.priorities or ())
    ]
    if priorities:
        out["priorities"] = priorities
    return out


def resources(res: schema.Resources | None, extra_devices: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``linux.resources``: the configured resources plus the device cgroup rules ``extra_devices``."""
    where = "resources"
    out: dict[str, Any] = {}
    res = res or schema.Resources()
    rules = [device_cgroup(rule, f"{where}.devices[{i}]") for i, rule in enumerate(res.devices or ())]
    rules.extend(extra_devices)
    if rules:
        out["devices"] = rules
    if res.memory is not None:
        out["memory"] = _memory(res.memory, f"{where}.memory")
    if res.cpu is not None:
        out["cpu"] = _cpu(res.cpu, f"{where}.cpu")
    if res.pids is not None:
        out["pids"] = {"limit": checked(res.pids.limit or 0, "int64", f"{where}.pids.limit")}
    if res.blockio is not None:
        out["blockIO"] = _blockio(res.blockio, f"{where}.blockio")
    hugepages = [
        {
            "pageSize": hugepage_size(checked(h.page_size or 0, "uint64", f"{where}.hugepageLimits[{i}].pageSize")),
            "limit": checked(h.limit or 0, "uint64", f"{where}.hugepageLimits[{i}].limit"),
        }
        for i, h in enumerate(res.hugepage_limits or ())
    ]
    if hugepages:
        out["hugepageLimits"] = hugepages
    if res.network is not None:
        out["network"] = _network(res.network, f"{where}.network")
    return out


def devices(devs: Sequence[schema.Device]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``linux.devices`` and the device cgroup rules that go with them.

    ``path: all`` only allows a whole class of devices (``type``) in the cgroup; any other entry is a
    device node (``mode`` is octal and required) that is also allowed in the cgroup.
    """
    nodes: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    for i, dev in enumerate(devs):
        dev_type = dev.type or ""
        if dev.path == "all":
            rule: dict[str, Any] = {"allow": True}
            if dev_type:
                rule["type"] = dev_type
            rule["access"] = "rwm"
            rules.append(rule)
            continue
        mode_text = dev.mode or ""
        if not _OCTAL.fullmatch(mode_text) or not -(1 << 31) <= int(mode_text, 8) < (1 << 31):
            raise UserError(
                f"devices[{i}] ({dev.path or ''}): cannot parse device mode {mode_text!r} as an octal value",
                hint='give the file mode as an octal string, e.g. mode: "0666"',
            )
        major = checked(dev.major or 0, "int64", f"devices[{i}].major")
        minor = checked(dev.minor or 0, "int64", f"devices[{i}].minor")
        nodes.append(
            {
                "path": dev.path or "",
                "type": dev_type,
                "major": major,
                "minor": minor,
                "fileMode": int(mode_text, 8) & 0xFFFFFFFF,
            }
        )
        rule = {"allow": True}
        if dev_type:
            rule["type"] = dev_type
        rule.update({"major": major, "minor": minor, "access": "rwm"})
        rules.append(rule)
    return nodes, rules


def _limit_value(text: str, entry: str) -> int:
    text = text.strip()
    if text.lower() == "unlimited":
        return UNLIMITED
    if not _DECIMAL.fullmatch(text) or int(text) > UNLIMITED:
        raise UserError(
            f"rlimit {entry!r}: cannot parse {text!r} as an unsigned 64-bit number",
            hint="use a non-negative number or 'unlimited'",
        )
    return int(text)


def rlimits(entries: Sequence[str]) -> list[dict[str, Any]]:
    """``process.rlimits`` from ``name,soft,hard`` strings (``RLIMIT_`` prefix optional, ``unlimited`` allowed)."""
    out: list[dict[str, Any]] = []
    for entry in entries:
        parts = entry.split(",", 2)
        if len(parts) != 3:
            raise UserError(
                f"cannot parse rlimit {entry!r}",
                hint="an rlimit is 'name,soft,hard', e.g. 'nofile,1024,4096' or 'RLIMIT_CORE,unlimited,unlimited'",
            )
        name = parts[0].strip().upper()
        if not name.startswith("RLIMIT_"):
            name = "RLIMIT_" + name
        soft = _limit_value(parts[1], entry)
        hard = _limit_value(parts[2], entry)
        if name not in RLIMIT_NAMES:
            known = ", ".join(sorted(n.removeprefix("RLIMIT_").lower() for n in RLIMIT_NAMES))
            raise UserError(f"unknown rlimit {parts[0].strip()!r} in {entry!r}", hint=f"known limits: {known}")
        out.append({"type": name, "hard": hard, "soft": soft})
    return out
