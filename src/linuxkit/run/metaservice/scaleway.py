"""Scaleway: the instance metadata service (on 169.254.42.42)."""

from __future__ import annotations

import base64
import hashlib

from .answers import METHOD_NOT_ALLOWED, NOT_FOUND, Answer, Request, as_json, text
from .instance import Instance
from .network import GUEST_IPV4


def _shell_value(value: str) -> str:
    return f"'{value}'" if any(c in value for c in " \t'\"$") else value


def scaleway_conf(inst: Instance) -> list[tuple[str, str]]:
    conf = [
        ("ID", inst.dashed_uuid),
        ("NAME", inst.hostname),
        ("HOSTNAME", inst.hostname),
        ("ORGANIZATION", inst.dashed_uuid),
        ("PROJECT", inst.dashed_uuid),
        ("COMMERCIAL_TYPE", "DEV1-S"),
        ("PUBLIC_IP_ADDRESS", GUEST_IPV4),
        ("PRIVATE_IP", GUEST_IPV4),
        ("LOCATION_ZONE_ID", "fr-par-1"),
        ("SSH_PUBLIC_KEYS", str(len(inst.ssh_keys))),
    ]
    for i, key in enumerate(inst.ssh_keys):
        conf.append((f"SSH_PUBLIC_KEYS_{i}_KEY", key))
        conf.append((f"SSH_PUBLIC_KEYS_{i}_FINGERPRINT", _ssh_fingerprint(key)))
    return conf


def _ssh_fingerprint(key: str) -> str:
    parts = key.split()
    try:
        blob = base64.b64decode(parts[1], validate=True) if len(parts) > 1 else b""
    except ValueError:
        blob = key.encode()
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"256 SHA256:{digest} {parts[2] if len(parts) > 2 else 'linuxkit'} ({parts[0].upper() if parts else 'KEY'})"


def scaleway_answer(req: Request, inst: Instance) -> Answer:
    """``/conf`` (shell ``KEY=VALUE`` lines; ``?format=json``) and ``/user_data/cloud-init`` on 169.254.42.42
    (scaleway.com "Instance metadata"; upstream's provider). The real service gives user data only to
    connections from a source port below 1024: that cannot be checked here (slirp hides the guest's port)."""
    if req.method not in ("GET", "HEAD"):
        return METHOD_NOT_ALLOWED
    conf = scaleway_conf(inst)
    if req.path == "/conf":
        if req.query.get("format") == "json":
            values = dict(conf)
            return as_json(
                {
                    "id": values["ID"],
                    "name": inst.hostname,
                    "hostname": inst.hostname,
                    "commercial_type": "DEV1-S",
                    "public_ip": {"address": GUEST_IPV4, "dynamic": False},
                    "private_ip": GUEST_IPV4,
                    "location": {"zone_id": "fr-par-1"},
                    "ssh_public_keys": [{"key": k, "fingerprint": _ssh_fingerprint(k)} for k in inst.ssh_keys],
                    "tags": [],
                }
            )
        return text("".join(f"{k}={_shell_value(v)}\n" for k, v in conf))
    if req.path in ("/user_data", "/user_data/"):
        return as_json({"user_data": ["cloud-init"] if inst.userdata is not None else []})
    if req.path == "/user_data/cloud-init":
        return NOT_FOUND if inst.userdata is None else text(inst.userdata)
    return NOT_FOUND
