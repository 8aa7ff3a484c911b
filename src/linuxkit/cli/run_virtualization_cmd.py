"""``linuxkit run virtualization PREFIX``: upstream's flags (``run_virtualizationframework.go``) and ``--uefi``;
the plan is built by :mod:`linuxkit.run.virtualization` and its last step imports PyObjC, on macOS only."""

from __future__ import annotations

import argparse
import sys

from .common import CommonOptions
from .run_hyperkit_cmd import add_machine_flags


def flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "path", metavar="PREFIX", help="the image: PREFIX-kernel/-initrd.img/-cmdline (with --uefi: an EFI image file)"
    )
    add_machine_flags(p)
    p.add_argument(
        "--data", default="", help="string of metadata to pass to VM; error to specify both --data and --data-file"
    )
    p.add_argument(
        "--data-file",
        default="",
        help="path to file of metadata to pass to VM; error to specify both --data and --data-file",
    )
    p.add_argument("--state", default="", help="path to directory to keep VM state in (default PREFIX-state)")
    p.add_argument(
        "--networking",
        default="vmnet",
        help="networking mode: default, vmnet or none; vmnet is the framework's NAT, none disables networking "
        "(default vmnet)",
    )
    p.add_argument(
        "--kernel", action="store_true", help="boot image is kernel+initrd+cmdline PREFIX-kernel/-initrd.img/-cmdline"
    )
    p.add_argument(
        "--virtiofs", action="append", default=[], help="directory shared on virtiofs (repeatable; macOS 12+)"
    )
    p.add_argument(
        "--uefi",
        action="store_true",
        help="boot PREFIX, an EFI image (NAME-efi.iso, NAME-efi.img or NAME-efi.qcow2), with the framework's EFI "
        "loader (macOS 13+; not in upstream)",
    )
    p.set_defaults(run="run_virtualization_cmd:run")


def run(args: argparse.Namespace, common: CommonOptions) -> int:
    from ..errors import UserError

    if sys.platform != "darwin":
        raise UserError(
            f"run virtualization needs macOS 11+ (Apple's Virtualization framework); this is {sys.platform}",
            hint="on Linux use `linuxkit run qemu`",
        )
    from ..run.disks import parse_disk
    from ..run.virtualization import VirtualizationOptions, VzHost, run_virtualization

    opts = VirtualizationOptions(
        path=args.path,
        cpus=args.cpus,
        mem=args.mem,
        disks=tuple(parse_disk(d) for d in args.disk),
        data=args.data,
        data_file=args.data_file,
        state=args.state,
        networking=args.networking,
        kernel=args.kernel,
        virtiofs=tuple(args.virtiofs),
        uefi=args.uefi,
    )
    return run_virtualization(opts, VzHost())
