"""``linuxkit run vbox PATH``: upstream's flags; :mod:`linuxkit.run.vbox` plans and runs the VM."""

from __future__ import annotations

import argparse

from .common import CommonOptions


def vm_flags(p: argparse.ArgumentParser) -> None:
    """``run``'s persistent flags upstream (every backend has them)."""
    p.add_argument("--cpus", type=int, default=1, help="number of CPUs (default 1)")
    p.add_argument("--mem", type=int, default=1024, help="memory in MB (default 1024)")
    p.add_argument("--disk", action="append", default=[], help="disk [file=]PATH[,size=1G][,format=F] (repeatable)")


def flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH", help="the image: an ISO or a disk image (raw, qcow2, vhd, vmdk, vdi)")
    vm_flags(p)
    p.add_argument("--gui", action="store_true", help="show the VM's window")
    p.add_argument("--vboxmanage", default="VBoxManage", help="VBoxManage program to use (default VBoxManage)")
    p.add_argument("--keep", action="store_true", help="keep the VM (powered off) after the run")
    p.add_argument("--name", default="", help="name of the VirtualBox VM (default: PATH's base name)")
    p.add_argument("--state", default="", help="directory for the VM's state (default PATH-state, without extension)")
    p.add_argument("--iso", action="store_true", help="PATH is an ISO (implied by .iso)")
    p.add_argument("--uefi", action="store_true", help="boot with UEFI firmware")
    p.add_argument(
        "--networking",
        action="append",
        default=[],
        help="a network adapter, repeatable: [type=](null|nat|bridged|intnet|hostonly|generic|natnetwork)"
        "[,adapter=IFACE] (bridged and hostonly need the adapter)",
    )
    p.set_defaults(run="run_vbox_cmd:run")


def run(args: argparse.Namespace, common: CommonOptions) -> int:
    from ..run.disks import parse_disk
    from ..run.vbox import VBoxOptions, parse_network, run_vbox

    opts = VBoxOptions(
        path=args.path,
        cpus=args.cpus,
        mem=args.mem,
        disks=tuple(parse_disk(d) for d in args.disk),
        name=args.name,
        state=args.state,
        iso=args.iso,
        uefi=args.uefi,
        gui=args.gui,
        keep=args.keep,
        vboxmanage=args.vboxmanage,
        networks=tuple(parse_network(n) for n in args.networking),
    )
    return run_vbox(opts)
