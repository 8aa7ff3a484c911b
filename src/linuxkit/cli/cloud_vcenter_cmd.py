"""``linuxkit push vcenter`` and ``linuxkit run vcenter``: upstream's flags and environment variables (``VCURL``,
``VCDATACENTER``, ``VCDATASTORE``, ``VCHOST``, ``VCNETWORK``). pyVmomi is imported by
:mod:`linuxkit.cloud.vcenter` when the verb runs, never here."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .common import CommonOptions


def _target_flags(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--url",
        default=os.environ.get("VCURL", ""),
        help="URL of VMware vCenter in the format of https://username:password@VCaddress/sdk (default $VCURL)",
    )
    p.add_argument(
        "--datacenter",
        default=os.environ.get("VCDATACENTER", ""),
        help=f"the name of the Datacenter to host the {what} (default $VCDATACENTER; empty: the only one)",
    )
    p.add_argument(
        "--datastore",
        default=os.environ.get("VCDATASTORE", ""),
        help=f"the name of the DataStore to host the {what} (default $VCDATASTORE; empty: the only one)",
    )


def push_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH.iso", help="the ISO image to upload")
    _target_flags(p, "image")
    p.add_argument(
        "--hostname",
        default=os.environ.get("VCHOST", ""),
        help="the server that will host the image (default $VCHOST; not used by the upload, as upstream)",
    )
    p.add_argument(
        "--folder", default="", help="a folder on the datastore to push the image to (default: the ISO's name)"
    )
    p.set_defaults(run="cloud_vcenter_cmd:push")


def run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH.iso", help="the ISO pushed with linuxkit push vcenter")
    _target_flags(p, "VM")
    p.add_argument(
        "--network",
        default=os.environ.get("VCNETWORK", ""),
        help="the network label the VM will use (default $VCNETWORK; empty: no network card)",
    )
    p.add_argument(
        "--hostname",
        default=os.environ.get("VCHOST", ""),
        help="the server that will run the VM (default $VCHOST; empty: any host)",
    )
    p.add_argument(
        "--vmfolder",
        default="",
        help="a name for the VM, also the datastore folder holding the ISO (default: the ISO's name)",
    )
    p.add_argument("--cpus", type=int, default=1, help="number of CPUs (default 1)")
    p.add_argument("--mem", type=int, default=1024, help="memory in MB (default 1024)")
    p.add_argument(
        "--persistentSize",
        dest="persistent_size",
        default="",
        help="size of a persistent disk to add, e.g. 512M or 4G (a bare number is GB, as upstream)",
    )
    p.add_argument("--powerOn", dest="power_on", action="store_true", help="power on the new VM once it is created")
    p.add_argument(
        "--waitForIP",
        dest="wait_for_ip",
        action="store_true",
        help="wait for the VM to power on and print the guest IP (needs open-vm-tools in the image and --powerOn)",
    )
    p.set_defaults(run="cloud_vcenter_cmd:run")


def push(args: argparse.Namespace, common: CommonOptions) -> int:
    from ..cloud import vcenter

    target = vcenter.Target(url=args.url, datacenter=args.datacenter, datastore=args.datastore)
    vcenter.push(vcenter.PushOptions(path=Path(args.path), target=target, folder=args.folder))
    return 0


def run(args: argparse.Namespace, common: CommonOptions) -> int:
    from ..cloud import vcenter, vcenter_spec
    from ..errors import UserError

    if args.cpus < 1 or args.mem < 1:
        raise UserError("--cpus and --mem must be at least 1")
    target = vcenter.Target(
        url=args.url,
        datacenter=args.datacenter,
        datastore=args.datastore,
        hostname=args.hostname,
        network=args.network,
    )
    return vcenter.run(
        vcenter.RunOptions(
            path=args.path,
            target=target,
            name=args.vmfolder,
            cpus=args.cpus,
            mem_mb=args.mem,
            persistent_mb=vcenter_spec.disk_size_mb(args.persistent_size) if args.persistent_size else 0,
            power_on=args.power_on,
            wait_for_ip=args.wait_for_ip,
        )
    )
