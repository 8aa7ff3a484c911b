"""AWS: the EC2 instance metadata service (IMDSv1 and IMDSv2 session tokens); its EC2-style tree is
also served by OpenStack and written to the config drive."""

from __future__ import annotations

import base64
import secrets
import threading
import time
from typing import Any

from .answers import METHOD_NOT_ALLOWED, NOT_FOUND, Answer, Request, as_json, text, tree_get
from .instance import Instance
from .network import GUEST_IPV4

AWS_TOKEN_TTL_MAX = 21600


def ec2_meta_data(inst: Instance) -> dict[str, Any]:
    """The ``meta-data`` tree (``docs.aws.amazon.com``: "Instance metadata categories")."""
    tree: dict[str, Any] = {
        "ami-id": "ami-0" + inst.uuid[:16],
        "hostname": inst.hostname,
        "instance-id": "i-0" + inst.uuid[:16],
        "instance-type": "t3.micro",
        "local-hostname": inst.hostname,
        "local-ipv4": GUEST_IPV4,
        "mac": inst.mac,
        "placement": {"availability-zone": "us-east-1a", "region": "us-east-1"},
    }
    if inst.ssh_keys:
        # public-keys/ lists "0=name"; public-keys/0/ lists "openssh-key"
        tree["public-keys"] = {f"{i}={name}": {"openssh-key": key} for i, (name, key) in enumerate(inst.named_keys)}
    return tree


def _ec2_public_keys(inst: Instance, rest: str) -> Answer | None:
    """``public-keys/0/openssh-key``: the listing says ``0=name`` but the path uses the index."""
    if not rest.startswith("public-keys") or not inst.ssh_keys:
        return None
    if rest in ("public-keys", "public-keys/"):
        return text("\n".join(f"{i}={name}" for i, (name, _) in enumerate(inst.named_keys)))
    parts = rest.split("/")
    if len(parts) >= 2 and parts[1].isdigit() and int(parts[1]) < len(inst.ssh_keys):
        return tree_get({"openssh-key": inst.ssh_keys[int(parts[1])]}, "/".join(parts[2:]) or "/")
    return None


def ec2_get(inst: Instance, path: str) -> Answer:
    """``/latest/...`` (and dated versions): meta-data, user-data, dynamic."""
    version, _, rest = path.lstrip("/").partition("/")
    if version != "latest" and not (len(version) == 10 and version[4] == "-"):
        return NOT_FOUND
    if rest in ("", "/"):
        return text("dynamic\nmeta-data\n" + ("user-data" if inst.userdata is not None else ""))
    if rest == "user-data":
        return NOT_FOUND if inst.userdata is None else text(inst.userdata, content_type="application/octet-stream")
    if rest.startswith("meta-data"):
        sub = rest[len("meta-data") :].lstrip("/")
        keys = _ec2_public_keys(inst, sub)
        if keys is not None:
            return keys
        return tree_get(ec2_meta_data(inst), sub if rest != "meta-data" else "/")
    if rest.startswith("dynamic"):
        document = {
            "accountId": "000000000000",
            "architecture": "x86_64",
            "availabilityZone": "us-east-1a",
            "imageId": "ami-0" + inst.uuid[:16],
            "instanceId": "i-0" + inst.uuid[:16],
            "instanceType": "t3.micro",
            "privateIp": GUEST_IPV4,
            "region": "us-east-1",
            "version": "2017-09-30",
        }
        sub = rest[len("dynamic") :].strip("/")
        if sub == "":
            return text("instance-identity/")
        if sub == "instance-identity":
            return text("document")
        if sub == "instance-identity/document":
            return as_json(document)
    return NOT_FOUND


class AwsTokens:
    """IMDSv2 session tokens: ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds``
    (1-21600) gives one; a request carrying ``X-aws-ec2-metadata-token`` must name a live one (else 401)."""

    def __init__(self) -> None:
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self, ttl: int) -> str:
        token = "AQAEA" + base64.urlsafe_b64encode(secrets.token_bytes(36)).decode().rstrip("=")
        with self._lock:
            self._tokens[token] = time.monotonic() + ttl
        return token

    def valid(self, token: str) -> bool:
        with self._lock:
            expiry = self._tokens.get(token)
        return expiry is not None and time.monotonic() < expiry


def aws_answer(req: Request, inst: Instance, tokens: AwsTokens, mode: str) -> Answer:
    """``mode``: ``optional`` (IMDSv2 and v1), ``required`` (v2 only), ``none`` (v1 only, no token API)."""
    if req.path == "/latest/api/token":
        if mode == "none" or req.method != "PUT":
            return METHOD_NOT_ALLOWED
        if req.header("X-Forwarded-For") is not None:
            return Answer(403, b"Forbidden\n")  # token requests through a proxy are refused
        ttl_text = req.header("X-aws-ec2-metadata-token-ttl-seconds")
        if ttl_text is None or not ttl_text.strip().isdigit() or not 1 <= int(ttl_text) <= AWS_TOKEN_TTL_MAX:
            return Answer(400, b"Bad Request\n")
        ttl = int(ttl_text)
        answer = text(tokens.issue(ttl))
        answer.headers["X-aws-ec2-metadata-token-ttl-seconds"] = str(ttl)
        return answer
    if req.method not in ("GET", "HEAD"):
        return METHOD_NOT_ALLOWED
    token = req.header("X-aws-ec2-metadata-token")
    if token is not None and mode != "none":
        if not tokens.valid(token.strip()):
            return Answer(401, b"Unauthorized\n")
    elif mode == "required":
        return Answer(401, b"Unauthorized\n")
    return ec2_get(inst, req.path)
