"""Hetzner Cloud: the server metadata service."""

from __future__ import annotations

from typing import Any

from .answers import METHOD_NOT_ALLOWED, NOT_FOUND, Answer, Request, as_json, text, yaml_scalar
from .instance import Instance
from .network import GUEST_IPV4


def hetzner_metadata(inst: Instance) -> dict[str, Any]:
    return {
        "hostname": inst.hostname,
        "instance-id": str(inst.number),
        "public-ipv4": GUEST_IPV4,
        "private-networks": [],
        "availability-zone": "fsn1-dc14",
        "region": "eu-central",
        "public-keys": list(inst.ssh_keys),
    }


def hetzner_answer(req: Request, inst: Instance) -> Answer:
    """``/hetzner/v1/metadata`` (YAML), ``/hetzner/v1/metadata/KEY``, ``/hetzner/v1/userdata`` (docs.hetzner.cloud
    "Server Metadata"; cloud-init's Hetzner datasource), and the same tree under the EC2-style
    ``/latest/meta-data/`` and ``/latest/user-data`` that upstream's provider reads (``public-keys``: a JSON
    array in both)."""
    if req.method not in ("GET", "HEAD"):
        return METHOD_NOT_ALLOWED
    md = hetzner_metadata(inst)
    path = req.path
    for base, userdata in (
        ("/hetzner/v1/metadata", "/hetzner/v1/userdata"),
        ("/latest/meta-data", "/latest/user-data"),
    ):
        if path == userdata:
            return NOT_FOUND if inst.userdata is None else text(inst.userdata)
        if path == base and base.startswith("/hetzner"):
            lines = []
            for key, value in md.items():
                if isinstance(value, list):
                    lines.append(f"{key}:" + ("".join(f"\n- {yaml_scalar(v)}" for v in value) if value else " []"))
                else:
                    lines.append(f"{key}: {yaml_scalar(value)}")
            return text("\n".join(lines) + "\n", content_type="text/yaml")
        if path in (base, base + "/"):
            return text("\n".join(md))
        if path.startswith(base + "/"):
            value = md.get(path[len(base) + 1 :])
            if value is None:
                return NOT_FOUND
            return as_json(value) if isinstance(value, list) else text(value)
    return NOT_FOUND
