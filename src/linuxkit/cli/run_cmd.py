"""``linuxkit run qemu PATH``: boot a built image under qemu (upstream's flags)."""

from __future__ import annotations

import argparse

from ..run.disks import parse_disk
from ..run.qemu import RunOptions, run_qemu
from .common import CommonOptions


def run_qemu_cmd(args: argparse.Namespace, common: CommonOptions) -> int:
    opts = RunOptions(
        path=args.path,
        cpus=args.cpus,
        mem=args.mem,
        disks=tuple(parse_disk(d) for d in args.disk),
        kernel=args.kernel,
        iso=args.iso,
        uefi=args.uefi,
        squashfs=args.squashfs,
        state=args.state,
        data=args.data,
        data_file=args.data_file,
        publish=tuple(args.publish),
        networking=args.networking,
        accel=args.accel,
        fw=args.fw,
        secure_boot=args.secure_boot,
        secure_boot_cert=args.secure_boot_cert,
        qemu=args.qemu,
        arch=args.arch,
        gui=args.gui,
        detached=args.detached,
        cmdline=args.cmdline,
        usb=args.usb,
        devices=tuple(args.device),
        metadata=args.metadata,
        ssh_keys=tuple(args.ssh_key),
        hostname=args.hostname,
    )
    return run_qemu(opts)
