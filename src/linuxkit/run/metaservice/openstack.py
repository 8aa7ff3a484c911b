"""OpenStack: the Nova metadata service (``openstack/`` and the EC2-compatible paths); its files are
also those of the ``openstack-configdrive`` CD."""

from __future__ import annotations

import json

from .answers import METHOD_NOT_ALLOWED, NOT_FOUND, Answer, Request, text
from .aws import ec2_get
from .instance import Instance

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
        "public_keys": dict(inst.named_keys),
        "keys": [{"name": name, "type": "ssh", "data": k} for name, k in inst.named_keys],
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
