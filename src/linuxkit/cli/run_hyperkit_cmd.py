"""``linuxkit run hyperkit PREFIX``: upstream's flags (``run_hyperkit.go``); the plan and its execution are in
:mod:`linuxkit.run.hyperkit`, imported when the verb runs."""

from __future__ import annotations

import argparse
import sys

from .common import CommonOptions

DEFAULT_FW = "/Applications/Docker.app/Contents/Resources/uefi/UEFI.fd"  # Docker Desktop's, as upstream


def add_machine_flags(p: argparse.ArgumentParser) -> None:
    """``run``'s persistent flags in upstream (``run.go``): every backend takes them."""
    p.add_argument("--cpus", type=int, default=1, help="number of CPUs (default 1)")
    p.add_argument("--mem", type=int, default=1024, help="amount of memory in MB (default 1024)")
    p.add_argument(
        "--disk", action="append", default=[], help="disk config [file=]PATH[,size=1G] (repeatable; created if missing)"
    )


def flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PREFIX", help="the image: PREFIX-kernel/-initrd.img/-cmdline, or PREFIX.iso")
    add_machine_flags(p)
    p.add_argument("--hyperkit", default="", help="path to hyperkit binary (if not in default location)")
    p.add_argument(
        "--data", default="", help="string of metadata to pass to VM; error to specify both --data and --data-file"
    )
    p.add_argument(
        "--data-file",
        default="",
        help="path to file of metadata to pass to VM; error to specify both --data and --data-file",
    )
    p.add_argument("--ip", default="", help="preferred IPv4 address for the VM")
    p.add_argument("--state", default="", help="path to directory to keep VM state in (default PREFIX-state)")
    p.add_argument(
        "--vsock-ports",
        default="",
        help="list of vsock ports to forward from the guest on startup (comma separated); a Unix socket for each "
        "port is created in the state directory",
    )
    p.add_argument(
        "--networking",
        default="docker-for-mac",
        help="networking mode: default, docker-for-mac, vpnkit[,ETH-SOCKET[,PORT-SOCKET]], vmnet or none. "
        "docker-for-mac uses Docker Desktop's network; vpnkit connects to the given vpnkit sockets, or starts a "
        "vpnkit with vpnkit_eth.sock and vpnkit_port.sock in the state directory; vmnet uses Apple's vmnet "
        "framework (needs root); none disables networking (default docker-for-mac)",
    )
    p.add_argument(
        "--vpnkit-uuid",
        default="",
        help="UUID identifying the VM to vpnkit (overrides vpnkit.uuid in the state directory)",
    )
    p.add_argument("--vpnkit", default="", help="path to vpnkit binary (default: vpnkit on PATH)")
    p.add_argument("--publish", action="append", default=[], help="publish a VM's port(s) to the host (not supported)")
    p.add_argument("--uefi", action="store_true", help="use UEFI boot")
    p.add_argument("--iso", action="store_true", help="boot image is an ISO (needs --uefi)")
    p.add_argument("--squashfs", action="store_true", help="boot image is a kernel+squashfs+cmdline")
    p.add_argument(
        "--kernel", action="store_true", help="boot image is kernel+initrd+cmdline PREFIX-kernel/-initrd.img/-cmdline"
    )
    p.add_argument("--console-file", action="store_true", help="output the console to a tty file (STATE/tty)")
    p.add_argument("--fw", default=DEFAULT_FW, help=f"path to OVMF firmware for UEFI boot (default {DEFAULT_FW})")
    p.set_defaults(run="run_hyperkit_cmd:run")


def run(args: argparse.Namespace, common: CommonOptions) -> int:
    from ..errors import UserError

    if sys.platform != "darwin":
        raise UserError(
            f"run hyperkit needs macOS (hyperkit is a macOS hypervisor; this is {sys.platform})",
            hint="on Linux use `linuxkit run qemu`",
        )
    from ..run.disks import parse_disk
    from ..run.hyperkit import Host, HyperkitOptions, run_hyperkit

    opts = HyperkitOptions(
        path=args.path,
        cpus=args.cpus,
        mem=args.mem,
        disks=tuple(parse_disk(d) for d in args.disk),
        hyperkit=args.hyperkit,
        data=args.data,
        data_file=args.data_file,
        ip=args.ip,
        state=args.state,
        vsock_ports=args.vsock_ports,
        networking=args.networking,
        vpnkit_uuid=args.vpnkit_uuid,
        vpnkit=args.vpnkit,
        publish=tuple(args.publish),
        uefi=args.uefi,
        iso=args.iso,
        squashfs=args.squashfs,
        kernel=args.kernel,
        console_file=args.console_file,
        fw=args.fw,
    )
    return run_hyperkit(opts, Host())
