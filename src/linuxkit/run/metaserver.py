"""``run qemu --metadata PROVIDER``: an emulated cloud metadata service for the guest.

The HTTP providers are served by :class:`MetadataServer`, a standard-library HTTP server on a Unix socket
in a private temporary directory, run in a thread of ``run qemu`` for the life of the VM (with ``--detached``:
of :mod:`linuxkit.run.mdhost`, which runs qemu in the background). qemu's user
network is given the link-local network ``169.254.0.0/16`` (the guest's DHCP lease: 169.254.2.15, gateway
169.254.2.2) and a ``guestfwd`` rule per metadata address: for each TCP connection the guest opens to
169.254.169.254:80 (169.254.42.42:80 for Scaleway), slirp runs :mod:`linuxkit.run.mdrelay`, which copies the
connection to the server's socket; the metadata addresses not served lead to no service (else slirp takes
them out to the host's network). A ``guestfwd`` to a socket *chardev* carries only the guest's first
connection (qemu 7.2, Debian 12); with the relay a request costs the guest ~150 ms under TCG, 14 ms of it the
relay's start.

Each provider answers the paths and enforces the headers its documentation gives; requests missing a
required header are refused as the real service refuses them (GCP without ``Metadata-Flavor: Google``: 403,
Azure without ``Metadata: true`` or ``api-version``: 400, AWS with tokens required and none given: 401).
The answers come from :class:`Instance`: the user data (``--data``/``--data-file``), the hostname, an
instance id kept in the state directory and the SSH keys of ``--ssh-key``; the rest (zone, instance type,
addresses) are fixed plausible values. ``openstack-configdrive`` and ``cdrom`` (NoCloud) are ISO images
(:func:`iso_files`) attached as a CD instead.

Every request is appended to ``STATE/metadata.log`` (method, target, status, the notable headers), so a
user can see what the guest asked.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import secrets
import shutil
import socketserver
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union
from urllib.parse import parse_qs, urlsplit

from ..errors import UserError

#: qemu's user network for a metadata boot and the addresses slirp gives in it (net + 2.2, 2.3, 2.15)
NETWORK = "169.254.0.0/16"
GUEST_IPV4 = "169.254.2.15"
GATEWAY_IPV4 = "169.254.2.2"
METADATA_IPV4 = "169.254.169.254"
SCALEWAY_IPV4 = "169.254.42.42"
#: every address a provider's service answers at (port 80)
METADATA_ADDRESSES = (METADATA_IPV4, SCALEWAY_IPV4)

#: provider → how it is served (``http``: the server below; ``iso``: a CD), in the order of ``--help``
PROVIDERS: dict[str, str] = {
    "aws": "http",  # IMDSv2 tokens and IMDSv1 (EC2's HttpTokens=optional)
    "aws-v2": "http",  # tokens required (HttpTokens=required): IMDSv1 requests get 401
    "aws-v1": "http",  # an EC2-compatible service without tokens: PUT /latest/api/token gets 405
    "gcp": "http",
    "azure": "http",
    "openstack": "http",
    "hetzner": "http",
    "digitalocean": "http",
    "vultr": "http",
    "scaleway": "http",
    "openstack-configdrive": "iso",
    "cdrom": "iso",
    "nocloud": "iso",
}
PROVIDER_HINT = "providers: " + ", ".join(PROVIDERS)

AWS_TOKEN_TTL_MAX = 21600
AZURE_API_VERSIONS = (
    "2017-03-01", "2017-04-02", "2017-08-01", "2017-10-01", "2017-12-01", "2018-02-01", "2018-04-02",
    "2018-10-01", "2019-02-01", "2019-03-11", "2019-04-30", "2019-06-01", "2019-06-04", "2019-08-01",
    "2019-08-15", "2019-11-01", "2020-06-01", "2020-07-15", "2020-09-01", "2020-10-01", "2020-12-01",
    "2021-01-01", "2021-02-01", "2021-03-01", "2021-05-01", "2021-08-01", "2021-10-01", "2021-11-01",
    "2021-11-15", "2021-12-13", "2022-02-01", "2022-03-01", "2022-07-01", "2022-08-01", "2022-09-01",
    "2023-07-01",
)  # fmt: skip


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
    def dashed_uuid(self) -> str:
        u = self.uuid
        return f"{u[:8]}-{u[8:12]}-{u[12:16]}-{u[16:20]}-{u[20:32]}"


# --- requests and answers -------------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    target: str
    headers: Mapping[str, str]  # names lower case
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parts = urlsplit(self.target)
        self.path = parts.path or "/"
        self.query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "text/plain"
    headers: dict[str, str] = field(default_factory=dict)


def text(body: str | bytes, status: int = 200, content_type: str = "text/plain") -> Answer:
    return Answer(status, body.encode() if isinstance(body, str) else body, content_type)


def as_json(value: object, status: int = 200) -> Answer:
    return Answer(status, json.dumps(value, indent=2).encode(), "application/json")


NOT_FOUND = Answer(404, b"Not Found\n")
METHOD_NOT_ALLOWED = Answer(405, b"Method Not Allowed\n")

Tree = Mapping[str, Union["Tree", str, bytes]]


def tree_get(tree: Tree, path: str) -> Answer:
    """An EC2-style tree: a directory lists its entries one a line (directories with ``/``), a leaf is its
    value. ``path`` is relative to the tree ("" or ending in ``/``: the directory itself)."""
    node: Tree | str | bytes = tree
    for part in [p for p in path.split("/") if p]:
        if not isinstance(node, Mapping) or part not in node:
            return NOT_FOUND
        node = node[part]
    if isinstance(node, Mapping):
        return text("\n".join(k + "/" if isinstance(v, Mapping) else k for k, v in node.items()))
    if path.endswith("/"):
        return NOT_FOUND
    return text(node)


def tree_json(tree: Tree | str | bytes) -> Any:
    if isinstance(tree, Mapping):
        return {k: tree_json(v) for k, v in tree.items()}
    return tree.decode(errors="replace") if isinstance(tree, bytes) else tree


# --- AWS (EC2 instance metadata service) ------------------------------------------------------------------


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
        tree["public-keys"] = {
            f"{i}={'linuxkit' if i == 0 else f'linuxkit-{i}'}": {"openssh-key": key}
            for i, key in enumerate(inst.ssh_keys)
        }
    return tree


def _ec2_public_keys(inst: Instance, rest: str) -> Answer | None:
    """``public-keys/0/openssh-key``: the listing says ``0=name`` but the path uses the index."""
    if not rest.startswith("public-keys") or not inst.ssh_keys:
        return None
    if rest in ("public-keys", "public-keys/"):
        return text("\n".join(f"{i}={'linuxkit' if i == 0 else f'linuxkit-{i}'}" for i in range(len(inst.ssh_keys))))
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


# --- GCP (Compute Engine metadata server) -----------------------------------------------------------------

GCP_PROJECT = "linuxkit-local"


def gcp_tree(inst: Instance) -> dict[str, Any]:
    number = str(inst.number)
    project_number = str(inst.number % 10**12)
    keys = "".join(f"root:{key}\n" for key in inst.ssh_keys)
    attributes: dict[str, Any] = {}
    if inst.userdata is not None:
        attributes["user-data"] = inst.userdata
    if keys:
        attributes["ssh-keys"] = keys
    return {
        "instance": {
            "attributes": attributes,
            "hostname": f"{inst.hostname}.us-central1-a.c.{GCP_PROJECT}.internal",
            "id": number,
            "machine-type": f"projects/{project_number}/machineTypes/e2-small",
            "name": inst.hostname,
            "network-interfaces": {"0": {"ip": GUEST_IPV4, "mac": inst.mac, "gateway": GATEWAY_IPV4}},
            "zone": f"projects/{project_number}/zones/us-central1-a",
        },
        "project": {
            "attributes": {"ssh-keys": keys} if keys else {},
            "numeric-project-id": project_number,
            "project-id": GCP_PROJECT,
        },
    }


def gcp_answer(req: Request, inst: Instance) -> Answer:
    """``/computeMetadata/v1/...`` (cloud.google.com "About VM metadata"): ``Metadata-Flavor: Google``
    required (403 without it, or with ``X-Forwarded-For``); ``?recursive=true`` and ``?alt=json`` give JSON;
    a directory named without its ``/`` is redirected; every answer carries ``Metadata-Flavor: Google``."""
    answer = _gcp_answer(req, inst)
    answer.headers["Metadata-Flavor"] = "Google"
    return answer


def _gcp_answer(req: Request, inst: Instance) -> Answer:
    flavor = req.header("Metadata-Flavor")
    legacy = req.header("X-Google-Metadata-Request")
    if req.header("X-Forwarded-For") is not None or not (flavor == "Google" or (legacy or "").lower() == "true"):
        return text(
            "Your client does not have permission to get URL "
            f"{req.path} from this server. Missing Metadata-Flavor:Google header.\n",
            403,
        )
    if req.method not in ("GET", "HEAD"):
        return METHOD_NOT_ALLOWED
    prefix = "/computeMetadata/v1"
    if req.path in ("/", "/computeMetadata", "/computeMetadata/"):
        return text("v1/\n" if req.path.endswith("/") else "computeMetadata/\n")
    if not (req.path == prefix or req.path.startswith(prefix + "/")):
        return NOT_FOUND
    rest = req.path[len(prefix) :].lstrip("/")
    node: Any = gcp_tree(inst)
    for part in [p for p in rest.split("/") if p]:
        if not isinstance(node, Mapping) or part not in node:
            return NOT_FOUND
        node = node[part]
    recursive = req.query.get("recursive", "").lower() == "true"
    if isinstance(node, Mapping):
        if recursive:
            return as_json(tree_json(node))
        if not req.path.endswith("/"):
            answer = Answer(301, b"")
            answer.headers["Location"] = req.path + "/"
            return answer
        return text("".join(k + "/\n" if isinstance(v, Mapping) else k + "\n" for k, v in node.items()))
    if req.query.get("alt") == "json":
        return as_json(node.decode(errors="replace") if isinstance(node, bytes) else node)
    return text(node, content_type="application/text")


# --- Azure (Instance Metadata Service) ---------------------------------------------------------------------


def azure_instance(inst: Instance) -> dict[str, Any]:
    userdata = base64.b64encode(inst.userdata or b"").decode()
    return {
        "compute": {
            "azEnvironment": "AzurePublicCloud",
            "location": "westeurope",
            "name": inst.hostname,
            "osProfile": {
                "adminUsername": "azureuser",
                "computerName": inst.hostname,
                "disablePasswordAuthentication": "true",
            },
            "osType": "Linux",
            "publicKeys": [{"keyData": k, "path": "/home/azureuser/.ssh/authorized_keys"} for k in inst.ssh_keys],
            "resourceGroupName": "linuxkit",
            "subscriptionId": inst.dashed_uuid,
            "userData": userdata,
            "vmId": inst.dashed_uuid,
            "vmSize": "Standard_B1s",
            "zone": "",
        },
        "network": {
            "interface": [
                {
                    "ipv4": {
                        "ipAddress": [{"privateIpAddress": GUEST_IPV4, "publicIpAddress": ""}],
                        "subnet": [{"address": "169.254.0.0", "prefix": "16"}],
                    },
                    "ipv6": {"ipAddress": []},
                    "macAddress": inst.mac.replace(":", "").upper(),
                }
            ]
        },
    }


def _azure_error(message: str, *, newest: bool = False) -> Answer:
    body: dict[str, object] = {"error": message}
    if newest:
        body["newest-versions"] = list(AZURE_API_VERSIONS[-3:][::-1])
    return as_json(body, 400)


def azure_answer(req: Request, inst: Instance) -> Answer:
    """``/metadata/instance[/...]?api-version=V[&format=text]`` (learn.microsoft.com "Azure Instance Metadata
    Service"): ``Metadata: true`` required (400), ``api-version`` required (400 with the newest versions),
    requests with ``X-Forwarded-For`` refused (400), GET only (405); ``compute/userData`` is base64."""
    if req.header("Metadata") != "true":
        return _azure_error("Bad request. Required metadata header not specified")
    if req.header("X-Forwarded-For") is not None:
        return _azure_error("Bad request. Requests with X-Forwarded-For header are not supported")
    if req.method != "GET":
        return METHOD_NOT_ALLOWED
    if req.path.rstrip("/") == "/metadata/versions":
        return as_json({"apiVersions": list(AZURE_API_VERSIONS)})
    if not (req.path == "/metadata/instance" or req.path.startswith("/metadata/instance/")):
        return NOT_FOUND
    version = req.query.get("api-version")
    if version is None:
        return _azure_error(
            "Bad request. api-version was not specified in the request. For more information refer to aka.ms/azureimds",
            newest=True,
        )
    if version not in AZURE_API_VERSIONS:
        return _azure_error(
            "Bad request. api-version is invalid or was not specified in the request. For more information refer "
            "to aka.ms/azureimds",
            newest=True,
        )
    node: Any = azure_instance(inst)
    for part in [p for p in req.path[len("/metadata/instance") :].split("/") if p]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return NOT_FOUND
    fmt = req.query.get("format", "json")
    if fmt == "text":
        if isinstance(node, (dict, list)):
            return _azure_error("Bad request. The format text is not supported for non-leaf nodes")
        return text(str(node))
    if fmt != "json":
        return _azure_error("Bad request. Unsupported format")
    return as_json(node)


# --- OpenStack (Nova metadata service: openstack/ and EC2-compatible paths) ----------------------------------

OPENSTACK_VERSIONS = ("2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15", "2016-06-30", "2018-08-27", "latest")


def openstack_files(inst: Instance) -> dict[str, bytes]:
    """The files of ``openstack/VERSION/`` (docs.openstack.org "Metadata service" / "Config drives")."""
    meta = {
        "uuid": inst.dashed_uuid,
        "name": inst.hostname,
        "hostname": inst.hostname,
        "launch_index": 0,
        "availability_zone": "nova",
        "project_id": inst.uuid,
        "public_keys": {("linuxkit" if i == 0 else f"linuxkit-{i}"): k for i, k in enumerate(inst.ssh_keys)},
        "keys": [
            {"name": "linuxkit" if i == 0 else f"linuxkit-{i}", "type": "ssh", "data": k}
            for i, k in enumerate(inst.ssh_keys)
        ],
        "meta": {},
        "devices": [],
    }
    files = {
        "meta_data.json": json.dumps(meta).encode(),
        "network_data.json": json.dumps({"links": [], "networks": [], "services": []}).encode(),
        "vendor_data.json": b"{}",
        "vendor_data2.json": b"{}",
    }
    if inst.userdata is not None:
        files["user_data"] = inst.userdata
    return files


def openstack_answer(req: Request, inst: Instance) -> Answer:
    if req.method not in ("GET", "HEAD"):
        return METHOD_NOT_ALLOWED
    path = req.path
    if path in ("/openstack", "/openstack/"):
        return text("\n".join(OPENSTACK_VERSIONS))
    if path.startswith("/openstack/"):
        version, _, name = path[len("/openstack/") :].partition("/")
        if version not in OPENSTACK_VERSIONS:
            return NOT_FOUND
        files = openstack_files(inst)
        if name == "":
            return text("\n".join(files))
        body = files.get(name)
        if body is None:
            return NOT_FOUND
        return text(body, content_type="application/json" if name.endswith(".json") else "text/plain")
    if path == "/":
        return text("\n".join(["1.0", "2007-01-19", "2009-04-04", "latest"]))
    return ec2_get(inst, path)


# --- Hetzner Cloud ------------------------------------------------------------------------------------------


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


def _yaml_scalar(value: str) -> str:
    return json.dumps(value)  # a JSON string is a YAML double-quoted scalar


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
                    lines.append(f"{key}:" + ("".join(f"\n- {_yaml_scalar(v)}" for v in value) if value else " []"))
                else:
                    lines.append(f"{key}: {_yaml_scalar(value)}")
            return text("\n".join(lines) + "\n", content_type="text/yaml")
        if path in (base, base + "/"):
            return text("\n".join(md))
        if path.startswith(base + "/"):
            value = md.get(path[len(base) + 1 :])
            if value is None:
                return NOT_FOUND
            return as_json(value) if isinstance(value, list) else text(value)
    return NOT_FOUND


# --- DigitalOcean --------------------------------------------------------------------------------------------


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


# --- Vultr ------------------------------------------------------------------------------------------------------


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


# --- Scaleway -------------------------------------------------------------------------------------------------


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


# --- the server ---------------------------------------------------------------------------------------------------


def make_answerer(provider: str, inst: Instance) -> Callable[[Request], Answer]:
    """The function that answers one request for ``provider`` (keeps the IMDSv2 tokens it issued)."""
    if provider.startswith("aws"):
        tokens = AwsTokens()
        mode = {"aws": "optional", "aws-v2": "required", "aws-v1": "none"}[provider]
        return lambda req: aws_answer(req, inst, tokens, mode)
    answerers: dict[str, Callable[[Request, Instance], Answer]] = {
        "gcp": gcp_answer,
        "azure": azure_answer,
        "openstack": openstack_answer,
        "hetzner": hetzner_answer,
        "digitalocean": digitalocean_answer,
        "vultr": vultr_answer,
        "scaleway": scaleway_answer,
    }
    if provider not in answerers:
        raise UserError(f"{provider} is not served over HTTP", hint=PROVIDER_HINT)
    one = answerers[provider]
    return lambda req: one(req, inst)


def guest_addresses(provider: str) -> tuple[str, ...]:
    """The IPv4 addresses (port 80) the guest reaches the service at."""
    return (SCALEWAY_IPV4,) if provider == "scaleway" else (METADATA_IPV4,)


#: notable request headers, written to the access log (values of tokens are not)
_LOGGED_HEADERS = (
    "X-aws-ec2-metadata-token",
    "X-aws-ec2-metadata-token-ttl-seconds",
    "Metadata-Flavor",
    "Metadata",
    "X-Forwarded-For",
)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request a connection: each connection is one relay process
    server_version = "linuxkit-metadata"

    def _serve(self) -> None:
        server = self.server
        assert isinstance(server, _UnixHTTPServer)
        headers = {k.lower(): v for k, v in self.headers.items()}
        length = headers.get("content-length", "0").strip()
        if length.isdigit() and int(length) > 0:
            self.rfile.read(min(int(length), 1 << 20))  # a body is read (and ignored) before the answer
        req = Request(self.command, self.path, headers)
        try:
            answer = server.answer(req)
        except Exception as exc:  # a bug here must not take the VM's metadata down: answer 500 and log it
            answer = Answer(500, f"internal error: {exc}\n".encode())
        server.log_request_line(req, answer)
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # our own access log instead (log_request_line)

    def address_string(self) -> str:
        return "guest"


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, answer: Callable[[Request], Answer], log_path: Path | None) -> None:
        self.answer = answer
        self._log_path = log_path
        self._log_lock = threading.Lock()
        if log_path is not None:
            log_path.write_text("")  # this run's requests only
        super().__init__(path, _Handler)

    def log_request_line(self, req: Request, answer: Answer) -> None:
        if self._log_path is None:
            return
        notable = [h for h in _LOGGED_HEADERS if req.header(h) is not None]
        line = f"{req.method} {req.target} {answer.status}" + (" [" + " ".join(notable) + "]" if notable else "")
        with self._log_lock, open(self._log_path, "a") as fh:
            fh.write(line + "\n")


def socket_directory() -> str:
    """A new private directory (mode 0700: only this user reaches the socket) for the server's socket."""
    return tempfile.mkdtemp(prefix="linuxkit-md-")


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


class MetadataServer:
    """The HTTP metadata service of one provider on a Unix socket; :meth:`start` and :meth:`stop` (or a
    ``with`` block) bound its life."""

    def __init__(
        self, provider: str, inst: Instance, log_path: Path | None = None, directory: str | None = None
    ) -> None:
        """``directory``: an empty private directory for the socket (made by :func:`socket_directory`),
        removed by :meth:`stop`; default: a new one."""
        if PROVIDERS.get(provider) != "http":
            raise UserError(f"{provider} is not served over HTTP", hint=PROVIDER_HINT)
        self.provider = provider
        self._dir = directory or socket_directory()
        self.socket_path = os.path.join(self._dir, "http.sock")
        self._server = _UnixHTTPServer(self.socket_path, make_answerer(provider, inst), log_path)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="metadata", daemon=True
        )

    def start(self) -> MetadataServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> MetadataServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- the ISO providers ------------------------------------------------------------------------------------------------


def iso_files(provider: str, inst: Instance) -> tuple[str, dict[str, bytes]]:
    """The volume label and files of the CD for ``openstack-configdrive`` (label ``config-2``:
    ``openstack/{latest,2012-08-10}/meta_data.json``, ``user_data``, ...) or ``cdrom``/``nocloud`` (label
    ``cidata``: ``meta-data``, ``user-data``, as cloud-init's NoCloud reads them)."""
    if provider == "openstack-configdrive":
        files: dict[str, bytes] = {}
        for version in ("2012-08-10", "latest"):
            for name, body in openstack_files(inst).items():
                files[f"openstack/{version}/{name}"] = body
        ec2 = tree_json(ec2_meta_data(inst))
        files["ec2/latest/meta-data.json"] = json.dumps(ec2).encode()
        if inst.userdata is not None:
            files["ec2/latest/user-data"] = inst.userdata
        return "config-2", files
    if provider in ("cdrom", "nocloud"):
        meta = f"instance-id: {_yaml_scalar('iid-' + inst.uuid[:16])}\nlocal-hostname: {_yaml_scalar(inst.hostname)}\n"
        if inst.ssh_keys:
            meta += "public-keys:\n" + "".join(f"  - {_yaml_scalar(k)}\n" for k in inst.ssh_keys)
        return "cidata", {"meta-data": meta.encode(), "user-data": inst.userdata or b""}
    raise UserError(f"{provider} is not served as a CD", hint=PROVIDER_HINT)
