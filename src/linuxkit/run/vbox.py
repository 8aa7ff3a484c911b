"""``linuxkit run vbox PATH``: a VirtualBox VM made, booted and removed with ``VBoxManage``, as
upstream's ``run_vbox.go`` does, planned whole first (:func:`plan_vbox`, pure) then executed.

PATH is an ISO (``.iso`` or ``--iso``: a DVD on the IDE controller) or a disk image, copied to a
VDI in the state directory (``qemu-img convert``) and booted from the IDE controller; ``--disk``
images go on a SATA controller, one port each. The serial console (COM1) is a Unix socket in the
state directory that VirtualBox serves and we copy to our stdio until the VM powers off. At the end
the VM is powered off and (without ``--keep``) unregistered with its files, after the ``--disk``
images were detached so that VirtualBox cannot delete them.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from . import plan as P
from .desktop import absolute, check_socket_path, connect_unix, disk_format, image_name, pump_socket, state_dir
from .disks import DiskSpec

NETWORK_TYPES = ("null", "nat", "bridged", "intnet", "hostonly", "generic", "natnetwork")
NETWORK_HINT = "use --networking [type=]TYPE[,adapter=IFACE] with TYPE one of " + ", ".join(NETWORK_TYPES)
IDE = "IDE Controller"
SATA = "SATA"

#: ``--disk format=F`` → (``qemu-img`` format, file suffix) of the disks we create
_CREATE_FORMATS = {"": ("vdi", ".vdi"), "vdi": ("vdi", ".vdi"), "vmdk": ("vmdk", ".vmdk"), "vhd": ("vpc", ".vhd")}
_SUFFIX_FORMATS = {".vdi": "vdi", ".vmdk": "vmdk", ".vhd": "vhd"}


@dataclass(frozen=True)
class Network:
    type: str = ""
    adapter: str = ""


def parse_network(value: str) -> Network:
    """Upstream's ``--networking [type=]TYPE[,adapter=|bridgeadapter=|hostadapter=IFACE]``."""
    kind, adapter = "", ""
    for part in value.split(","):
        key, eq, val = part.partition("=")
        if not eq:
            kind = key
        elif key == "type":
            kind = val
        elif key in ("adapter", "bridgeadapter", "hostadapter"):
            adapter = val
        else:
            raise UserError(f"unknown network config: {key}", hint=NETWORK_HINT)
    if kind not in NETWORK_TYPES:
        raise UserError(f"--networking {value!r}: unknown network type {kind!r}", hint=NETWORK_HINT)
    if kind in ("bridged", "hostonly") and not adapter:
        raise UserError(
            f"--networking {value!r}: {kind} needs an adapter", hint=f"e.g. --networking {kind},adapter=..."
        )
    return Network(kind, adapter)


@dataclass(frozen=True)
class VBoxOptions:
    path: str
    cpus: int = 1
    mem: int = 1024
    disks: tuple[DiskSpec, ...] = ()
    name: str = ""
    state: str = ""
    iso: bool = False
    uefi: bool = False
    gui: bool = False
    keep: bool = False
    vboxmanage: str = "VBoxManage"
    networks: tuple[Network, ...] = ()


@dataclass(frozen=True)
class Attached:
    """A ``--disk`` as attached: its absolute path, and whether we create it first (its format)."""

    path: Path
    create_fmt: str | None
    size_mb: int


def resolve_disks(disks: Sequence[DiskSpec], state: Path) -> list[Attached]:
    """Each ``--disk``: an existing file is attached as it is; a missing one (or one with only a size,
    ``STATE/diskN.vdi``) is created, as a VDI unless ``format=vmdk|vhd``."""
    out = []
    for i, d in enumerate(disks):
        if d.format not in _CREATE_FORMATS and not (d.path and os.path.exists(d.path)):
            raise UserError(
                f"--disk format {d.format!r}: run vbox creates vdi, vmdk or vhd disks",
                hint="VirtualBox attaches a raw image only as a floppy; leave format out (VDI) or use format=vmdk",
            )
        # no format=: the name's suffix says it (x.vmdk, x.vhd), else VDI
        fmt, suffix = _CREATE_FORMATS.get(d.format or _SUFFIX_FORMATS.get(Path(d.path).suffix.lower(), ""), ("", ""))
        path = absolute(d.path) if d.path else state / f"disk{i}{suffix}"
        if path.exists():
            out.append(Attached(path, None, d.size_mb))
        elif not d.size_mb:
            raise UserError(f"disk {path} does not exist", hint="give a size to create it: --disk PATH,size=1G")
        else:
            out.append(Attached(path, fmt, d.size_mb))
    return out


def _cleanup(vbm: str, name: str, disks: Sequence[Attached]) -> list[tuple[str, ...]]:
    """Power off; take the ``--disk`` images off the VM (so that ``--delete`` cannot delete them) and
    out of VirtualBox's media registry; unregister the VM, deleting its own files."""
    steps: list[tuple[str, ...]] = [(vbm, "controlvm", name, "poweroff")]
    if disks:
        steps.append((vbm, "storagectl", name, "--name", SATA, "--remove"))
        steps.extend((vbm, "closemedium", "disk", str(d.path)) for d in disks)
    steps.append((vbm, "unregistervm", name, "--delete"))
    return steps


def _attach(name: str, controller: str, port: int, kind: str, medium: Path) -> tuple[str, ...]:
    """``storageattach`` of ``medium`` at ``port`` (device 0: a SATA port has only that one)."""
    return (
        "storageattach",
        name,
        "--storagectl",
        controller,
        "--port",
        str(port),
        "--device",
        "0",
        "--type",
        kind,
        "--medium",
        str(medium),
    )


def plan_vbox(opts: VBoxOptions) -> P.Plan:
    """The whole run as data: nothing is touched."""
    if opts.cpus < 1 or opts.mem < 1:
        raise UserError("--cpus and --mem must be positive")
    path = absolute(opts.path)
    iso = opts.iso or opts.path.endswith(".iso")
    if not iso and disk_format(path) is None:
        raise UserError(
            f"{opts.path}: run vbox boots an ISO or a disk image (.img, .raw, .qcow2, .vhd, .vmdk, .vdi)",
            hint="build one with linuxkit build --format iso-bios (or raw-bios, iso-efi with --uefi)",
        )
    if not path.is_file():
        raise UserError(f"{opts.path}: no such image", hint="build it first, e.g. linuxkit build --format iso-bios")
    name = opts.name or image_name(opts.path)
    if not name or name.startswith("-"):
        raise UserError(f"bad VM name {name!r}", hint="give one with --name (not starting with -)")
    state = state_dir(opts.state, opts.path)
    console = state / "console"
    check_socket_path(console)
    disks = resolve_disks(opts.disks, state)
    vbm = opts.vboxmanage

    def manage(*args: str, check: bool = True) -> P.Run:
        return P.Run((vbm, *args), check=check)

    plan = P.Plan(f"run vbox {name}")
    plan.add(P.MakeDir(state))
    # a VM of this name left by an earlier run (upstream removes it too)
    plan.add(*(P.Run(argv, check=False) for argv in _cleanup(vbm, name, disks)))
    # handlers run newest first: registered in reverse
    if opts.keep:  # kept: powered off at the end, removed only when a step fails
        first, *rest = _cleanup(vbm, name, disks)
        plan.add(*(P.RunOnFailure(argv) for argv in reversed(rest)), P.RunAtEnd(first))
    else:
        plan.add(*(P.RunAtEnd(argv) for argv in reversed(_cleanup(vbm, name, disks))))
    plan.add(
        manage("createvm", "--name", name, "--basefolder", str(state), "--register"),
        manage("modifyvm", name, "--acpi", "on"),
        manage("modifyvm", name, "--memory", str(opts.mem)),
        manage("modifyvm", name, "--cpus", str(opts.cpus)),
        manage("modifyvm", name, "--firmware", "efi" if opts.uefi else "bios"),
        manage("modifyvm", name, "--uart1", "0x3F8", "4"),
        manage("modifyvm", name, "--uartmode1", "server", str(console)),
        manage("storagectl", name, "--name", IDE, "--add", "ide"),
    )
    if iso:
        plan.add(
            manage(*_attach(name, IDE, 1, "dvddrive", path)),
            manage("modifyvm", name, "--boot1", "dvd"),
        )
    else:
        boot = state / f"{name}.vdi"
        plan.add(
            P.RemoveOnFailure(boot),
            P.ConvertDisk(path, boot, "vdi", disk_format(path)),
            manage(*_attach(name, IDE, 1, "hdd", boot)),
            manage("modifyvm", name, "--boot1", "disk"),
        )
    if disks:
        plan.add(manage("storagectl", name, "--name", SATA, "--add", "sata"))
    for port, d in enumerate(disks):
        if d.create_fmt is not None:
            plan.add(P.CreateDisk(d.path, d.create_fmt, d.size_mb))
        plan.add(manage(*_attach(name, SATA, port, "hdd", d.path)))
    for i, net in enumerate(opts.networks, 1):
        plan.add(manage("modifyvm", name, f"--nictype{i}", "virtio"), manage("modifyvm", name, f"--nic{i}", net.type))
        if net.type == "hostonly":
            plan.add(manage("modifyvm", name, f"--hostonlyadapter{i}", net.adapter))
        elif net.type == "bridged":
            plan.add(manage("modifyvm", name, f"--bridgeadapter{i}", net.adapter))
        plan.add(manage("modifyvm", name, f"--cableconnected{i}", "on"))
    plan.add(
        manage("startvm", name, "--type", "gui" if opts.gui else "headless"),
        P.Call("linuxkit.run.vbox:console", {"socket": str(console)}),
    )
    return plan


def console(data: P.Data) -> None:
    """The :class:`~linuxkit.run.plan.Call` step: the VM's serial console on our stdio."""
    assert isinstance(data, dict)
    sock = str(data["socket"])
    with connect_unix(Path(sock)) as conn:
        pump_socket(conn)


def run_vbox(opts: VBoxOptions) -> int:
    if sys.platform == "win32":
        raise UserError("run vbox is not supported on Windows yet (as upstream)", hint="use run hyperv")
    plan = plan_vbox(opts)
    if shutil.which(opts.vboxmanage) is None:
        raise UserError(
            f"cannot find the VirtualBox management program {opts.vboxmanage!r}",
            hint="install VirtualBox (https://www.virtualbox.org), or name the program with --vboxmanage",
        )
    P.execute(plan)
    return 0
