"""The LinuxKit YAML schema as typed models: the one source of truth for what a config may hold.

It mirrors upstream's JSON schema (``moby/schema.go``) key for key: every object forbids unknown
keys, scalars are strictly typed (no ``"1"`` for ``1``), and every optional field defaults to
``None`` so that "not set" and "set to empty" stay distinct (upstream uses pointers for that).
Python names are snake_case; the YAML key is the alias.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        populate_by_name=True,
        serialize_by_alias=True,
    )

    def to_json_obj(self) -> dict[str, Any]:
        """The fields that are set, by YAML key, as plain JSON-able values."""
        return self.model_dump(by_alias=True, exclude_none=True)


# ---------------------------------------------------------------------------- OCI pieces


class IDMapping(Model):
    host_id: int | None = Field(None, alias="hostID")
    container_id: int | None = Field(None, alias="containerID")
    size: int | None = None


class Mount(Model):
    destination: str | None = None
    type: str | None = None
    source: str | None = None
    options: list[str] | None = None
    uid_mappings: list[IDMapping] | None = Field(None, alias="uidmappings")
    gid_mappings: list[IDMapping] | None = Field(None, alias="gidmappings")


class Device(Model):
    path: str | None = None
    type: str | None = None
    major: int | None = None
    minor: int | None = None
    mode: str | None = None


class DeviceCgroup(Model):
    allow: bool | None = None
    type: str | None = None
    major: int | None = None
    minor: int | None = None
    access: str | None = None


class Memory(Model):
    limit: int | None = None
    reservation: int | None = None
    swap: int | None = None
    kernel: int | None = None
    kernel_tcp: int | None = Field(None, alias="kernelTCP")
    swappiness: int | None = None
    disable_oom_killer: bool | None = Field(None, alias="disableOOMKiller")


class CPU(Model):
    shares: int | None = None
    quota: int | None = None
    period: int | None = None
    realtime_runtime: int | None = Field(None, alias="realtimeRuntime")
    realtime_period: int | None = Field(None, alias="realtimePeriod")
    cpus: str | None = None
    mems: str | None = None


class Pids(Model):
    limit: int | None = None


class WeightDevice(Model):
    major: int | None = None
    minor: int | None = None
    weight: int | None = None
    leaf_weight: int | None = Field(None, alias="leafWeight")


class ThrottleDevice(Model):
    major: int | None = None
    minor: int | None = None
    rate: int | None = None


class BlockIO(Model):
    weight: int | None = None
    leaf_weight: int | None = Field(None, alias="leafWeight")
    weight_device: list[WeightDevice] | None = Field(None, alias="weightDevice")
    throttle_read_bps_device: list[ThrottleDevice] | None = Field(None, alias="throttleReadBpsDevice")
    throttle_write_bps_device: list[ThrottleDevice] | None = Field(None, alias="throttleWriteBpsDevice")
    throttle_read_iops_device: list[ThrottleDevice] | None = Field(None, alias="throttleReadIOPSDevice")
    throttle_write_iops_device: list[ThrottleDevice] | None = Field(None, alias="throttleWriteIOPSDevice")


class HugepageLimit(Model):
    page_size: int | None = Field(None, alias="pageSize")
    limit: int | None = None


class InterfacePriority(Model):
    name: str | None = None
    priority: int | None = None


class Network(Model):
    class_id: int | None = Field(None, alias="classID")
    priorities: list[InterfacePriority] | None = None


class Resources(Model):
    devices: list[DeviceCgroup] | None = None
    memory: Memory | None = None
    cpu: CPU | None = None
    pids: Pids | None = None
    blockio: BlockIO | None = None
    hugepage_limits: list[HugepageLimit] | None = Field(None, alias="hugepageLimits")
    network: Network | None = None


# ---------------------------------------------------------------------------- LinuxKit runtime


class Interface(Model):
    name: str | None = None
    add: str | None = None
    peer: str | None = None
    create_in_root: bool | None = Field(None, alias="createInRoot")


class Namespaces(Model):
    cgroup: str | None = None
    ipc: str | None = None
    mnt: str | None = None
    net: str | None = None
    pid: str | None = None
    user: str | None = None
    uts: str | None = None


class Runtime(Model):
    cgroups: list[str] | None = None
    mounts: list[Mount] | None = None
    mkdir: list[str] | None = None
    interfaces: list[Interface] | None = None
    bind_ns: Namespaces | None = Field(None, alias="bindNS")
    namespace: str | None = None


# ---------------------------------------------------------------------------- images

IntOrStr = int | str


class ImageConfig(Model):
    """The part of an image entry that may also come from the ``org.mobyproject.config`` label."""

    capabilities: list[str] | None = None
    capabilities_add: list[str] | None = Field(None, alias="capabilities.add")
    ambient: list[str] | None = None
    mounts: list[Mount] | None = None
    binds: list[str] | None = None
    binds_add: list[str] | None = Field(None, alias="binds.add")
    devices: list[Device] | None = None
    tmpfs: list[str] | None = None
    command: list[str] | None = None
    env: list[str] | None = None
    cwd: str | None = None
    net: str | None = None
    pid: str | None = None
    ipc: str | None = None
    uts: str | None = None
    userns: str | None = None
    hostname: str | None = None
    readonly: bool | None = None
    masked_paths: list[str] | None = Field(None, alias="maskedPaths")
    readonly_paths: list[str] | None = Field(None, alias="readonlyPaths")
    uid: IntOrStr | None = None
    gid: IntOrStr | None = None
    additional_gids: list[IntOrStr] | None = Field(None, alias="additionalGids")
    no_new_privileges: bool | None = Field(None, alias="noNewPrivileges")
    oom_score_adj: int | None = Field(None, alias="oomScoreAdj")
    rootfs_propagation: str | None = Field(None, alias="rootfsPropagation")
    cgroups_path: str | None = Field(None, alias="cgroupsPath")
    resources: Resources | None = None
    sysctl: dict[str, str] | None = None
    rlimits: list[str] | None = None
    uid_mappings: list[IDMapping] | None = Field(None, alias="uidMappings")
    gid_mappings: list[IDMapping] | None = Field(None, alias="gidMappings")
    annotations: dict[str, str] | None = None
    runtime: Runtime | None = None


class Image(ImageConfig):
    """One ``onboot``/``onshutdown``/``services`` entry."""

    name: str
    image: str


# ---------------------------------------------------------------------------- top level


class Kernel(Model):
    image: str | None = None
    cmdline: str | None = None
    binary: str | None = None
    tar: str | None = None
    ucode: str | None = None


class File(Model):
    path: str | None = None
    directory: bool | None = None
    symlink: str | None = None
    contents: str | None = None
    source: str | None = None
    metadata: str | None = None
    optional: bool | None = None
    mode: str | None = None
    uid: IntOrStr | None = None
    gid: IntOrStr | None = None


class Volume(Model):
    name: str | None = None
    image: str | None = None
    readonly: bool | None = None
    format: Literal["oci", "filesystem"] | None = None
    platforms: list[str] | None = None


class Trust(Model):
    image: list[str] | None = None
    org: list[str] | None = None


class Moby(Model):
    """A whole LinuxKit config (one file, or several merged)."""

    kernel: Kernel | None = None
    init: list[str] | None = None
    onboot: list[Image] | None = None
    onshutdown: list[Image] | None = None
    services: list[Image] | None = None
    trust: Trust | None = None
    files: list[File] | None = None
    volumes: list[Volume] | None = None
