"""What the metadata service knows about the VM (:class:`Instance`) and its JSON form, which ``run qemu``
hands to :mod:`linuxkit.run.mdhost`."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Instance:
    """What the metadata service knows about the VM."""

    hostname: str
    uuid: str  # 32 hex digits, kept in STATE/instance-id
    userdata: bytes | None = None
    ssh_keys: tuple[str, ...] = ()
    mac: str = "52:54:00:12:34:56"

    @property
    def number(self) -> int:
        """A numeric id (GCP, Hetzner, DigitalOcean): 15 decimal digits from the uuid."""
        return int(self.uuid[:12], 16) % 10**15 + 10**14

    @property
    def named_keys(self) -> tuple[tuple[str, str], ...]:
        """The SSH keys with the names AWS and OpenStack give them: ``linuxkit``, ``linuxkit-1``, ..."""
        return tuple(("linuxkit" if i == 0 else f"linuxkit-{i}", key) for i, key in enumerate(self.ssh_keys))

    @property
    def dashed_uuid(self) -> str:
        u = self.uuid
        return f"{u[:8]}-{u[8:12]}-{u[12:16]}-{u[16:20]}-{u[20:32]}"


def instance_to_json(inst: Instance) -> dict[str, Any]:
    """``inst`` as JSON (the user data in base64), for :mod:`linuxkit.run.mdhost`."""
    return {
        "hostname": inst.hostname,
        "uuid": inst.uuid,
        "userdata": None if inst.userdata is None else base64.b64encode(inst.userdata).decode(),
        "ssh_keys": list(inst.ssh_keys),
        "mac": inst.mac,
    }


def instance_from_json(doc: Mapping[str, Any]) -> Instance:
    userdata = doc["userdata"]
    return Instance(
        str(doc["hostname"]),
        str(doc["uuid"]),
        None if userdata is None else base64.b64decode(userdata),
        tuple(str(k) for k in doc["ssh_keys"]),
        str(doc["mac"]),
    )
