"""DigitalOcean: the droplet metadata API."""

from __future__ import annotations

from typing import Any

from .answers import METHOD_NOT_ALLOWED, NOT_FOUND, Answer, Request, as_json, tree_get
from .instance import Instance
from .network import GATEWAY_IPV4, GUEST_IPV4


def digitalocean_json(inst: Instance) -> dict[str, Any]:
    return {
        "droplet_id": inst.number % 10**9,
        "hostname": inst.hostname,
        "user_data": (inst.userdata or b"").decode(errors="replace"),
        "vendor_data": "",
        "public_keys": list(inst.ssh_keys),
        "region": "ams3",
        "interfaces": {
            "public": [
                {
                    "ipv4": {"ip_address": GUEST_IPV4, "netmask": "255.255.0.0", "gateway": GATEWAY_IPV4},
                    "mac": inst.mac,
                    "type": "public",
                }
            ],
            "private": [],
        },
        "dns": {"nameservers": ["169.254.2.3"]},
        "features": {"dhcp_enabled": True},
    }


def digitalocean_answer(req: Request, inst: Instance) -> Answer:
    """``/metadata/v1.json`` and the ``/metadata/v1/`` tree (docs.digitalocean.com "Metadata API")."""
    if req.method not in ("GET", "HEAD"):
        return METHOD_NOT_ALLOWED
    if req.path == "/metadata/v1.json":
        return as_json(digitalocean_json(inst))
    if not (req.path.startswith("/metadata/v1/") or req.path == "/metadata/v1"):
        return NOT_FOUND
    tree: dict[str, Any] = {
        "id": str(inst.number % 10**9),
        "hostname": inst.hostname,
        "vendor-data": "",
        "public-keys": "\n".join(inst.ssh_keys),
        "region": "ams3",
        "interfaces": {
            "public": {
                "0": {
                    "mac": inst.mac,
                    "type": "public",
                    "ipv4": {"address": GUEST_IPV4, "netmask": "255.255.0.0", "gateway": GATEWAY_IPV4},
                }
            },
            "private": {},
        },
        "dns": {"nameservers": "169.254.2.3"},
    }
    if inst.userdata is not None:
        tree["user-data"] = inst.userdata
    return tree_get(tree, req.path[len("/metadata/v1") :] or "/")
