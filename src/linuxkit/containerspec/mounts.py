"""The ``mounts`` of a container's ``config.json`` and the mount objects of its ``runtime.json``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..config import schema
from ..errors import UserError
from .resources import id_mappings

#: Where a mount of a given type goes when the config names no destination.
DEFAULT_MOUNTPOINTS = {
    "proc": "/proc",
    "devpts": "/dev/pts",
    "sysfs": "/sys",
    "cgroup": "/sys/fs/cgroup",
    "mqueue": "/dev/mqueue",
}
#: Mount types that may be given only as the source.
_TYPE_FROM_SOURCE = frozenset({"mqueue", "devpts", "proc", "sysfs", "cgroup"})
BIND_DEFAULT_OPTIONS = ("rw", "rbind", "rshared")


def runtime_mount(destination: str, type: str, source: str, options: Sequence[str]) -> dict[str, Any]:
    """A runtime-spec ``Mount`` as a Go-ordered dict (empty type, source and options left out)."""
    out: dict[str, Any] = {"destination": destination}
    if type:
        out["type"] = type
    if source:
        out["source"] = source
    if options:
        out["options"] = list(options)
    return out


def mount_json(mount: schema.Mount, where: str) -> dict[str, Any]:
    """A configured mount as it appears in ``runtime.json`` (id mappings included)."""
    out = runtime_mount(mount.destination or "", mount.type or "", mount.source or "", mount.options or ())
    uid = id_mappings(mount.uid_mappings, f"{where}.uidmappings")
    gid = id_mappings(mount.gid_mappings, f"{where}.gidmappings")
    if uid:
        out["uidMappings"] = uid
    if gid:
        out["gidMappings"] = gid
    return out


def default_mounts(readonly: bool) -> dict[str, dict[str, Any]]:
    """The mounts every container gets (no ``/dev/shm`` or ``/dev/mqueue``), by destination."""
    ro = ["ro"] if readonly else []
    return {
        "/proc": runtime_mount("/proc", "proc", "proc", ["nosuid", "nodev", "noexec", "relatime"]),
        "/dev": runtime_mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k", *ro]),
        "/dev/pts": runtime_mount(
            "/dev/pts", "devpts", "devpts", ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
        ),
        "/sys": runtime_mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", *ro]),
        "/sys/fs/cgroup": runtime_mount(
            "/sys/fs/cgroup", "cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime", "ro"]
        ),
    }


def container_mounts(
    readonly: bool, tmpfs: Sequence[str], binds: Sequence[str], mounts: Sequence[schema.Mount]
) -> list[dict[str, Any]]:
    """``config.json`` mounts: defaults, then tmpfs, binds and mounts, each replacing an earlier mount
    at the same destination; sorted by destination so that ``/dev`` comes before ``/dev/pts``."""
    by_dest = default_mounts(readonly)
    for entry in tmpfs:
        parts = entry.split(":")
        if len(parts) > 2:
            raise UserError(f"cannot parse tmpfs {entry!r}: too many ':'", hint="a tmpfs is 'destination[:options]'")
        dest = parts[0]
        options = parts[1].split(",") if len(parts) == 2 else []
        by_dest[dest] = runtime_mount(dest, "tmpfs", "tmpfs", options)
    for entry in binds:
        parts = entry.split(":")
        if len(parts) < 2:
            raise UserError(
                f"cannot parse bind {entry!r}: missing ':'", hint="a bind is 'source:destination[:options]'"
            )
        if len(parts) > 3:
            raise UserError(
                f"cannot parse bind {entry!r}: too many ':'", hint="a bind is 'source:destination[:options]'"
            )
        source, dest = parts[0], parts[1]
        options = [*parts[2].split(","), "rbind"] if len(parts) == 3 else list(BIND_DEFAULT_OPTIONS)
        by_dest[dest] = runtime_mount(dest, "bind", source, options)
    for mount in mounts:
        mount_type = mount.type or ""
        source = mount.source or ""
        dest = mount.destination or ""
        if not mount_type and source in _TYPE_FROM_SOURCE:
            mount_type = source
        if not mount_type and dest == "/dev":
            mount_type = "tmpfs"
        if not mount_type:
            raise UserError(
                f"mount for destination {dest!r} is missing type",
                hint="set type (bind, tmpfs, proc, ...) or use a source of proc, sysfs, devpts, mqueue or cgroup",
            )
        source = source or mount_type
        dest = dest or DEFAULT_MOUNTPOINTS.get(mount_type, "")
        if not dest:
            raise UserError(f"mount of type {mount_type} is missing destination", hint="set destination")
        by_dest[dest] = runtime_mount(dest, mount_type, source, mount.options or ())
    return [by_dest[dest] for dest in sorted(by_dest, key=lambda d: d.encode("utf-8", "surrogatepass"))]
