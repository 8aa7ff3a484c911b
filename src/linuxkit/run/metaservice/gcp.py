"""GCP: the Compute Engine metadata server."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .answers import METHOD_NOT_ALLOWED, NOT_FOUND, Answer, Request, as_json, text, tree_json, tree_node
from .instance import Instance
from .network import GATEWAY_IPV4, GUEST_IPV4

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
    answer = _gcp_answer(req, inst)  # may be a shared answer (NOT_FOUND): the headers are a new dict
    return replace(answer, headers={**answer.headers, "Metadata-Flavor": "Google"})


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
    node = tree_node(gcp_tree(inst), rest)
    if node is None:
        return NOT_FOUND
    recursive = req.query.get("recursive", "").lower() == "true"
    if isinstance(node, Mapping):
        if recursive:
            return as_json(tree_json(node))
        if not req.path.endswith("/"):
            return Answer(301, b"", headers={"Location": req.path + "/"})
        return text("".join(k + "/\n" if isinstance(v, Mapping) else k + "\n" for k, v in node.items()))
    if req.query.get("alt") == "json":
        return as_json(node.decode(errors="replace") if isinstance(node, bytes) else node)
    return text(node, content_type="application/text")
