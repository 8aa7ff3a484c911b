"""The providers served as a CD instead of over HTTP: ``openstack-configdrive``, ``cdrom`` and ``nocloud``."""

from __future__ import annotations

import json

from ...errors import UserError
from .answers import tree_json, yaml_scalar
from .aws import ec2_meta_data
from .instance import Instance
from .openstack import openstack_files
from .providers import PROVIDER_HINT


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
        meta = f"instance-id: {yaml_scalar('iid-' + inst.uuid[:16])}\nlocal-hostname: {yaml_scalar(inst.hostname)}\n"
        if inst.ssh_keys:
            meta += "public-keys:\n" + "".join(f"  - {yaml_scalar(k)}\n" for k in inst.ssh_keys)
        return "cidata", {"meta-data": meta.encode(), "user-data": inst.userdata or b""}
    raise UserError(f"{provider} is not served as a CD", hint=PROVIDER_HINT)
