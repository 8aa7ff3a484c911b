"""OCI bundle specs for onboot, onshutdown and service containers (``config.json`` and ``runtime.json``)."""

from __future__ import annotations

from .ids import IdMap, allocate_ids, resolve_id
from .oci import OCI_VERSION, ContainerSpec, container_spec, runtime_json, runtime_mount

__all__ = [
    "OCI_VERSION",
    "ContainerSpec",
    "IdMap",
    "allocate_ids",
    "container_spec",
    "resolve_id",
    "runtime_json",
    "runtime_mount",
]
