"""Azure: the Instance Metadata Service (IMDS)."""

from __future__ import annotations

import base64
from typing import Any

from .answers import METHOD_NOT_ALLOWED, NOT_FOUND, Answer, Request, as_json, text
from .instance import Instance
from .network import GUEST_IPV4

AZURE_API_VERSIONS = (
    "2017-03-01", "2017-04-02", "2017-08-01", "2017-10-01", "2017-12-01", "2018-02-01", "2018-04-02",
    "2018-10-01", "2019-02-01", "2019-03-11", "2019-04-30", "2019-06-01", "2019-06-04", "2019-08-01",
    "2019-08-15", "2019-11-01", "2020-06-01", "2020-07-15", "2020-09-01", "2020-10-01", "2020-12-01",
    "2021-01-01", "2021-02-01", "2021-03-01", "2021-05-01", "2021-08-01", "2021-10-01", "2021-11-01",
    "2021-11-15", "2021-12-13", "2022-02-01", "2022-03-01", "2022-07-01", "2022-08-01", "2022-09-01",
    "2023-07-01",
)  # fmt: skip


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
