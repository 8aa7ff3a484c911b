"""``linuxkit run qemu PATH``: boot a built image under qemu (upstream's flags)."""

from __future__ import annotations

import argparse

from .common import CommonOptions, add_verb


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = add_verb(verbs, "run", "run a VM image")
    backends = run.add_subparsers(dest="run_backend", metavar="BACKEND")
    backends.required = True
    p = add_verb(backends, "qemu", "launch a VM using qemu")
    p.add_argument("path", metavar="PATH", help="image prefix (PATH-kernel, ...), .iso, disk image or .efi")
    p.add_argument("--cpus", type=int, default=1, help="number of CPUs (default 1)")
    p.add_argument("--mem", type=int, default=1024, help="memory in MB (default 1024)")
    p.add_argument("--disk", action="append", default=[], help="disk [file=]PATH[,size=1G][,format=qcow2]")
    p.add_argument("--kernel", action="store_true", help="boot PATH-kernel, PATH-initrd.img, PATH-cmdline")
    p.add_argument("--iso", action="store_true", help="PATH is an ISO")
    p.add_argument("--uefi", action="store_true", help="boot with UEFI firmware (OVMF)")
    p.add_argument("--squashfs", action="store_true", help="boot PATH-kernel with PATH-squashfs.img as root")
    p.add_argument("--state", default="", help="directory for VM state (default PREFIX-state)")
    p.add_argument("--data", default=None, help="metadata string, passed to the VM as an ISO holding config")
    p.add_argument("--data-file", default=None, help="file of metadata, passed like --data")
    p.add_argument("--fw", default="", help="OVMF firmware for UEFI boot (default: found on the host)")
    p.add_argument("--accel", default=None, help="accelerator, e.g. kvm or tcg (default: KVM if it works)")
    p.add_argument("--arch", default="", help="x86_64, aarch64, s390x or riscv64 (default: the host's)")
    p.add_argument("--qemu", default="", help="qemu binary (default qemu-system-ARCH from PATH)")
    p.add_argument("--gui", action="store_true", help="show the VM's display instead of a serial console")
    p.add_argument("--detached", action="store_true", help="run in the background, console in STATE/console.log")
    p.add_argument("--networking", default="user", help="user, tap,IFACE, bridge,BRIDGE or none (default user)")
    p.add_argument("--publish", action="append", default=[], help="HOST:GUEST[/tcp|udp] (repeatable)")
    p.add_argument("--cmdline", default="", help="extra kernel command line")
    p.add_argument("--usb", action="store_true", help="enable a USB controller")
    p.add_argument("--device", action="append", default=[], help="extra qemu -device (repeatable)")
    p.set_defaults(func=run_qemu_cmd)


def run_qemu_cmd(args: argparse.Namespace, common: CommonOptions) -> int:
    from ..run.disks import parse_disk
    from ..run.qemu import RunOptions, run_qemu

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
        qemu=args.qemu,
        arch=args.arch,
        gui=args.gui,
        detached=args.detached,
        cmdline=args.cmdline,
        usb=args.usb,
        devices=tuple(args.device),
    )
    return run_qemu(opts)
