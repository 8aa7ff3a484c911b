"""Vultr: the instance metadata service."""

from __future__ import annotations

from typing import Any

from .answers import METHOD_NOT_ALLOWED, NOT_FOUND, Answer, Request, as_json, text, tree_get
from .instance import Instance
from .network import GATEWAY_IPV4, GUEST_IPV4


def vultr_answer(req: Request, inst: Instance) -> Answer:
    """``/v1.json``, the ``/v1/`` tree upstream's provider reads, and ``/latest/user-data`` (vultr.com/metadata;
    cloud-init's Vultr helper)."""
    if req.method not in ("GET", "HEAD"):
        return METHOD_NOT_ALLOWED
    iface = {"address": GUEST_IPV4, "netmask": "255.255.0.0", "gateway": GATEWAY_IPV4}
    tree: dict[str, Any] = {
        "hostname": inst.hostname,
        "instanceid": inst.uuid[:8],
        "instance-v2-id": inst.dashed_uuid,
        "public-keys": "\n".join(inst.ssh_keys),
        "region": {"regioncode": "AMS"},
        "interfaces": {"0": {"mac": inst.mac, "network-type": "public", "ipv4": iface}},
    }
    if req.path == "/v1.json":
        v1 = {
            **{k: tree[k] for k in ("hostname", "instanceid", "instance-v2-id")},
            "public-keys": list(inst.ssh_keys),
            "region": {"regioncode": "AMS"},
            "interfaces": [
                {
                    "mac": inst.mac,
                    "network-type": "public",
                    "ipv4": {**iface, "additional": []},
                    "ipv6": {"additional": []},
                }
            ],
        }
        return as_json(v1)
    if req.path == "/v1" or req.path.startswith("/v1/"):
        return tree_get(tree, req.path[len("/v1") :] or "/")
    if req.path in ("/latest/user-data", "/user-data/user-data"):
        return NOT_FOUND if inst.userdata is None else text(inst.userdata)
    if req.path == "/latest/meta-data/hostname":
        return text(inst.hostname)
    return NOT_FOUND
