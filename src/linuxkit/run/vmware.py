"""``linuxkit run vmware PREFIX``: a ``.vmx`` written to the state directory and started with
``vmrun``, as upstream's ``run_vmware.go`` does, planned whole first (:func:`plan_vmware`, pure).

The boot disk is ``PREFIX.vmdk`` (``linuxkit build --format vmdk``) as upstream, or PATH itself when
it names a ``.vmdk``; another disk image (``.img``, ``.raw``, ``.qcow2``, ``.vhd``, ``.vdi``) is
converted to a VMDK in the state directory first. At most one ``--disk`` (upstream's limit), created
when missing as a growable single-file VMDK for an LSI Logic adapter (``qemu-img``, where upstream
runs ``vmware-vdiskmanager -t 0 -a lsilogic``: the same kind of file). ``vmrun start`` opens
VMware's own console window and returns, as upstream: there is no serial console.
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
from .desktop import absolute, disk_format, state_dir
from .disks import DiskSpec

#: where VMware keeps ``vmrun`` and the ``-T`` host type, by platform (upstream's table)
VMRUN = {
    "win32": ("C:\\Program Files (x86)\\VMware\\VMware Workstation\\vmrun.exe", "ws"),
    "darwin": ("/Applications/VMware Fusion.app/Contents/Library/vmrun", "fusion"),
}
VMRUN_DEFAULT = ("vmrun", "ws")
VMRUN_HINT = "install VMware Workstation or Player (Windows, Linux) or Fusion (macOS)"


@dataclass(frozen=True)
class VMwareOptions:
    path: str
    cpus: int = 1
    mem: int = 1024
    disks: tuple[DiskSpec, ...] = ()
    state: str = ""
    platform: str = sys.platform


def vmx_value(text: str) -> str:
    """A ``.vmx`` string value: VMware writes ``|`` and ``"`` (and control characters) as ``|XX`` hex."""
    return "".join(f"|{ord(c):02X}" if c in '|"' or ord(c) < 32 else c for c in text)


def build_vmx(name: str, cpus: int, mem: int, boot: Path, disk: Path | None) -> str:
    """The ``.vmx`` upstream writes (config version 8, hardware version 12: Workstation 12, Fusion 8):
    an LSI Logic SCSI controller with the boot disk at 0:0 and the ``--disk`` at 0:1, PCIe root ports,
    an e1000 NIC on NAT, a 64-bit Linux guest."""
    lines = [
        ("config.version", "8"),
        ("virtualHW.version", "12"),
        ("vmci0.present", "TRUE"),
        ("floppy0.present", "FALSE"),
        ("displayName", name),
        ("numvcpus", str(cpus)),
        ("memsize", str(mem)),
        ("scsi0.present", "TRUE"),
        ("scsi0.sharedBus", "none"),
        ("scsi0.virtualDev", "lsilogic"),
    ]
    for unit, path in ((0, boot), (1, disk)):
        if path is not None:
            lines += [
                (f"scsi0:{unit}.present", "TRUE"),
                (f"scsi0:{unit}.fileName", str(path)),
                (f"scsi0:{unit}.deviceType", "scsi-hardDisk"),
            ]
    lines.append(("pciBridge0.present", "TRUE"))
    for bridge in (4, 5, 6, 7):
        lines += [
            (f"pciBridge{bridge}.present", "TRUE"),
            (f"pciBridge{bridge}.virtualDev", "pcieRootPort"),
            (f"pciBridge{bridge}.functions", "8"),
        ]
    lines += [
        ("ethernet0.pciSlotNumber", "32"),
        ("ethernet0.present", "TRUE"),
        ("ethernet0.virtualDev", "e1000"),
        ("ethernet0.networkName", "Inside"),
        ("ethernet0.generatedAddressOffset", "0"),
        ("guestOS", "other3xlinux-64"),
    ]
    return "".join(f'{key} = "{vmx_value(value)}"\n' for key, value in lines)


def _boot_image(path: str) -> tuple[Path, str | None]:
    """The boot image and its ``qemu-img`` format when it must be converted (``None``: a VMDK)."""
    given = absolute(path)
    fmt = disk_format(given)
    if fmt == "vmdk" or (fmt is None and given.suffix.lower() != ".iso"):
        vmdk = given if fmt == "vmdk" else absolute(path + ".vmdk")
        if not vmdk.is_file():
            raise UserError(f"{vmdk} does not exist", hint="build it with linuxkit build --format vmdk")
        return vmdk, None
    if fmt is None:
        raise UserError(f"{path}: run vmware boots a disk image, not an ISO", hint="linuxkit build --format vmdk")
    if not given.is_file():
        raise UserError(f"{path}: no such image", hint="build it with linuxkit build --format vmdk")
    return given, fmt


def _disk(disks: Sequence[DiskSpec], state: Path) -> tuple[Path, int] | None:
    """The one ``--disk`` (its path, and its size when it must be created)."""
    if len(disks) > 1:
        raise UserError("run vmware supports a single --disk (as upstream)")
    if not disks:
        return None
    d = disks[0]
    if d.format not in ("", "vmdk"):
        raise UserError(f"--disk format {d.format!r}: run vmware supports only vmdk disks")
    if not d.path and not d.size_mb:
        raise UserError("disk specified with no size or name", hint="--disk PATH.vmdk or --disk size=1G")
    path = absolute(d.path) if d.path else state / "disk.vmdk"
    if path.exists():
        return path, 0
    if not d.size_mb:
        raise UserError(f"disk {path} does not exist", hint="give a size to create it: --disk PATH,size=1G")
    return path, d.size_mb


def plan_vmware(opts: VMwareOptions) -> P.Plan:
    """The whole run as data: nothing is touched."""
    if opts.cpus < 1 or opts.mem < 1:
        raise UserError("--cpus and --mem must be positive")
    # upstream: PREFIX-state; PATH naming an image file: its name without the extension, -state
    state = state_dir(opts.state, opts.path) if disk_format(opts.path) else absolute(opts.state or opts.path + "-state")
    source, source_fmt = _boot_image(opts.path)
    disk = _disk(opts.disks, state)
    vmrun, host_type = VMRUN.get(opts.platform, VMRUN_DEFAULT)
    plan = P.Plan(f"run vmware {opts.path}")
    plan.add(P.MakeDir(state))
    boot = source
    if source_fmt is not None:
        boot = state / (Path(source).stem + ".vmdk")
        plan.add(
            P.RemoveOnFailure(boot),
            P.ConvertDisk(source, boot, "vmdk", source_fmt, ("adapter_type=lsilogic", "subformat=monolithicSparse")),
        )
    if disk is not None and disk[1]:
        plan.add(P.CreateDisk(disk[0], "vmdk", disk[1], ("adapter_type=lsilogic", "subformat=monolithicSparse")))
    vmx = state / "linuxkit.vmx"
    plan.add(
        P.WriteFile(vmx, build_vmx(opts.path, opts.cpus, opts.mem, boot, disk[0] if disk else None).encode()),
        P.Run((vmrun, "-T", host_type, "start", str(vmx))),
    )
    return plan


def run_vmware(opts: VMwareOptions) -> int:
    plan = plan_vmware(opts)
    vmrun = VMRUN.get(opts.platform, VMRUN_DEFAULT)[0]
    if not (os.path.isfile(vmrun) if os.sep in vmrun or "\\" in vmrun else shutil.which(vmrun)):
        raise UserError(f"VMware's {vmrun} cannot be found", hint=VMRUN_HINT)
    P.execute(plan)
    return 0
