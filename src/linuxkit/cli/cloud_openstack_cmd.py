"""``linuxkit push openstack`` and ``linuxkit run openstack``: upstream's flags. The cloud and its credentials
come from ``$OS_CLOUD``/``clouds.yaml`` or the ``OS_*`` variables (read by openstacksdk, imported by
:mod:`linuxkit.cloud.openstack` when the verb runs, never here)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import CommonOptions

DEFAULT_FLAVOR = "m1.tiny"


def push_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH", help="disk file: .qcow2, .raw, .img, .vhd, .vhdx, .vmdk, .iso or .ami")
    p.add_argument("--img-name", default="", help="a name for the image (default: the file name without extension)")
    p.set_defaults(run="cloud_openstack_cmd:push")


def run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", metavar="NAME", help="name (or ID) of an image pushed with linuxkit push openstack")
    p.add_argument("--flavor", default=DEFAULT_FLAVOR, help=f"instance size (flavor), default {DEFAULT_FLAVOR}")
    p.add_argument("--instancename", default="", help="name of the instance (default: the image's name)")
    p.add_argument("--network", default="", help="ID of the network to attach the instance to")
    p.add_argument("--sec-groups", default="default", help="security group names, separated by commas")
    p.add_argument("--keyname", default="", help="name of the SSH key pair to associate with the instance")
    p.set_defaults(run="cloud_openstack_cmd:run")


def push(args: argparse.Namespace, common: CommonOptions) -> int:
    from ..cloud import openstack

    openstack.push(openstack.PushOptions(path=Path(args.path), name=args.img_name))
    return 0


def run(args: argparse.Namespace, common: CommonOptions) -> int:
    from ..cloud import openstack

    return openstack.run(
        openstack.RunOptions(
            image=args.image,
            flavor=args.flavor,
            name=args.instancename,
            network=args.network,
            security_groups=tuple(args.sec_groups.split(",")),
            key_name=args.keyname,
        )
    )
