"""``linuxkit run vmware PREFIX``: upstream's flags; :mod:`linuxkit.run.vmware` plans and runs the VM."""

from __future__ import annotations

import argparse

from .common import CommonOptions
from .run_vbox_cmd import vm_flags


def flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "path", metavar="PREFIX", help="the image: PREFIX.vmdk (linuxkit build --format vmdk), or a disk image file"
    )
    vm_flags(p)
    p.add_argument("--state", default="", help="directory for the VM's state (default PREFIX-state)")
    p.set_defaults(run="run_vmware_cmd:run")


def run(args: argparse.Namespace, common: CommonOptions) -> int:
    from ..run.disks import parse_disk
    from ..run.vmware import VMwareOptions, run_vmware

    opts = VMwareOptions(
        path=args.path,
        cpus=args.cpus,
        mem=args.mem,
        disks=tuple(parse_disk(d) for d in args.disk),
        state=args.state,
    )
    return run_vmware(opts)
