"""``linuxkit run hyperv PATH``: upstream's flags; :mod:`linuxkit.run.hyperv` plans and runs the VM."""

from __future__ import annotations

import argparse

from .common import CommonOptions
from .run_vbox_cmd import vm_flags


def flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH", help="the image: an EFI ISO (linuxkit build --format iso-efi) or EFI disk")
    vm_flags(p)
    p.add_argument("--keep", action="store_true", help="keep the VM after the run")
    p.add_argument("--name", default="", help="name of the Hyper-V VM (default: PATH's base name without -efi)")
    p.add_argument(
        "--switch",
        default="",
        help="Hyper-V switch to attach the VM to (default: 'Default Switch', else the first external switch)",
    )
    p.set_defaults(run="run_hyperv_cmd:run")


def run(args: argparse.Namespace, common: CommonOptions) -> int:
    from ..run.disks import parse_disk
    from ..run.hyperv import HyperVOptions, run_hyperv

    opts = HyperVOptions(
        path=args.path,
        cpus=args.cpus,
        mem=args.mem,
        disks=tuple(parse_disk(d) for d in args.disk),
        name=args.name,
        keep=args.keep,
        switch=args.switch,
    )
    return run_hyperv(opts)
