"""``linuxkit run hyperv PATH``: a Generation 2 Hyper-V VM made, booted and removed with PowerShell's
Hyper-V cmdlets, as upstream's ``run_hyperv.go`` does, planned whole first (:func:`plan_hyperv`,
pure: every cmdlet line is data, each run by its own ``powershell.exe -Command``) then executed.

PATH is an EFI ISO (``linuxkit build --format iso-efi``; upstream's only choice), or an EFI disk image
(``raw-efi``, ``qcow2-efi``; ours), which is converted to a dynamic VHDX in ``PATH-state`` and boots
first. The switch is ``--switch``, else ``Default Switch``, else the first external switch, chosen
by PowerShell when the VM is made. ``--disk``: VHDX files, made when missing (``New-VHD -Dynamic``),
by default ``NAME-diskN.vhdx`` in the current directory as upstream. The serial console (COM1) is
the named pipe ``\\\\.\\pipe\\NAME-com1``, copied to our stdio. At the end the VM is stopped and
removed (not with ``--keep``); its disk files stay.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from . import plan as P
from .desktop import absolute, disk_format, image_name, pump_pipe, state_dir
from .disks import DiskSpec

POWERSHELLS = ("powershell.exe", "pwsh.exe", "pwsh")
POWERSHELL_ARGS = ("-NoProfile", "-NonInteractive", "-Command")
DEFAULT_SWITCH = "Default Switch"

# PowerShell reads these as single quotes too (inside '...', each is escaped by doubling it)
_SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"


def ps_quote(text: str) -> str:
    """``text`` as a PowerShell single-quoted string (nothing in it is expanded)."""
    return "'" + "".join(c * 2 if c in _SINGLE_QUOTES else c for c in text) + "'"


@dataclass(frozen=True)
class HyperVOptions:
    path: str
    cpus: int = 1
    mem: int = 1024
    disks: tuple[DiskSpec, ...] = ()
    name: str = ""
    keep: bool = False
    switch: str = ""
    powershell: str = "powershell.exe"
    cwd: str = "."  # where unnamed --disk files go (upstream: the current directory)


def _switch_script(switch: str) -> str:
    """PowerShell setting ``$switch`` to the switch to use, or failing as upstream's ``hypervGetSwitch``."""
    if switch:
        return f"$switch = Get-VMSwitch -Name {ps_quote(switch)} -ErrorAction Stop"
    return (
        f"$switch = Get-VMSwitch -Name {ps_quote(DEFAULT_SWITCH)} -ErrorAction SilentlyContinue; "
        "if (-not $switch) { $switch = Get-VMSwitch -SwitchType External | Select-Object -First 1 }; "
        "if (-not $switch) { throw 'could not find an external switch: give one with --switch' }"
    )


def _disks(disks: Sequence[DiskSpec], name: str, cwd: Path) -> list[tuple[Path, int]]:
    """Each ``--disk``: its path and, when it must be made, its size in MB."""
    out = []
    for i, d in enumerate(disks):
        if d.format not in ("", "vhdx", "vhd"):
            raise UserError(f"--disk format {d.format!r}: Hyper-V takes vhdx (or vhd) disks")
        if not d.path and not d.size_mb:
            raise UserError("disk specified with no size or name", hint="--disk PATH.vhdx or --disk size=1G")
        path = Path(d.path) if d.path else Path(f"{name}-disk{i or ''}.vhdx")
        path = path if path.is_absolute() else cwd / path
        if path.exists():
            out.append((path, 0))
        elif not d.size_mb:
            raise UserError(f"disk {path} does not exist", hint="give a size to create it: --disk PATH,size=1G")
        else:
            out.append((path, d.size_mb))
    return out


def plan_hyperv(opts: HyperVOptions) -> P.Plan:
    """The whole run as data: nothing is touched."""
    if opts.cpus < 1 or opts.mem < 1:
        raise UserError("--cpus and --mem must be positive")
    path = absolute(opts.path)
    iso = opts.path.lower().endswith(".iso")
    source_fmt = None if iso else disk_format(path)
    if not iso and source_fmt is None:
        raise UserError(
            f"{opts.path}: run hyperv boots an EFI ISO or an EFI disk image",
            hint="build one with linuxkit build --format iso-efi (or raw-efi)",
        )
    if not path.is_file():
        raise UserError(f"{opts.path}: no such image", hint="build it with linuxkit build --format iso-efi")
    name = opts.name or image_name(opts.path, "-efi")
    vm = ps_quote(name)
    disks = _disks(opts.disks, name, absolute(opts.cwd))

    def posh(script: str, *, check: bool = True) -> P.Run:
        return P.Run((opts.powershell, *POWERSHELL_ARGS, script), check=check, script=True)

    def handler(script: str, *, at_end: bool) -> P.RunAtEnd | P.RunOnFailure:
        argv = (opts.powershell, *POWERSHELL_ARGS, script)
        return P.RunAtEnd(argv, script=True) if at_end else P.RunOnFailure(argv, script=True)

    plan = P.Plan(f"run hyperv {name}")
    role = "([Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent())"
    plan.add(
        posh(
            f"$me = {role}; "
            "if (-not ($me.IsInRole('Hyper-V Administrators') -or "
            "$me.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator))) "
            "{ throw 'run linuxkit from an elevated prompt, or as a member of Hyper-V Administrators' }"
        ),
        posh(
            "if ((Get-Command Get-VM -ErrorAction SilentlyContinue).ModuleName -ne 'Hyper-V') "
            "{ throw 'the Hyper-V PowerShell module is not installed' }"
        ),
        # Remove-VM at the end removes by name: never a VM that was there before us
        posh(
            f"if (Get-VM -Name {vm} -ErrorAction SilentlyContinue) {{ throw 'a VM named ' + {vm} + ' exists already' }}"
        ),
        # handlers run newest first: removed after it was stopped
        handler(f"Remove-VM -Name {vm} -Force", at_end=not opts.keep),
        handler(f"Stop-VM -Name {vm} -Force -TurnOff", at_end=not opts.keep),
        posh(f"{_switch_script(opts.switch)}; New-VM -Name {vm} -Generation 2 -NoVHD -SwitchName $switch.Name"),
        posh(
            f"Set-VM -Name {vm} -AutomaticStartAction Nothing -AutomaticStopAction ShutDown -CheckpointType Disabled "
            f"-MemoryStartupBytes {opts.mem}MB -StaticMemory -ProcessorCount {opts.cpus}"
        ),
    )
    if source_fmt is not None:
        boot = path
        if source_fmt != "vhdx":
            state = state_dir("", opts.path)
            boot = state / f"{name}.vhdx"
            plan.add(
                P.MakeDir(state),
                P.RemoveOnFailure(boot),
                P.ConvertDisk(path, boot, "vhdx", source_fmt, ("subformat=dynamic",)),
            )
        plan.add(posh(f"Add-VMHardDiskDrive -VMName {vm} -Path {ps_quote(str(boot))}"))
    for disk, size_mb in disks:
        if size_mb:
            plan.add(posh(f"New-VHD -Path {ps_quote(str(disk))} -SizeBytes {size_mb}MB -Dynamic"))
        plan.add(posh(f"Add-VMHardDiskDrive -VMName {vm} -Path {ps_quote(str(disk))}"))
    if iso:
        plan.add(
            posh(f"Add-VMDvdDrive -VMName {vm} -Path {ps_quote(str(path))}"),
            posh(f"Set-VMFirmware -VMName {vm} -EnableSecureBoot Off -FirstBootDevice (Get-VMDvdDrive -VMName {vm})"),
        )
    else:
        first = f"(Get-VMHardDiskDrive -VMName {vm} -ControllerLocation 0)"
        plan.add(posh(f"Set-VMFirmware -VMName {vm} -EnableSecureBoot Off -FirstBootDevice {first}"))
    pipe = f"\\\\.\\pipe\\{name}-com1"
    plan.add(
        posh(f"Set-VMComPort -VMName {vm} -Number 1 -Path {ps_quote(pipe)}"),
        posh(f"Start-VM -Name {vm}"),
        P.Call("linuxkit.run.hyperv:console", {"pipe": pipe}),
    )
    return plan


def console(data: P.Data) -> None:
    """The :class:`~linuxkit.run.plan.Call` step: the VM's COM1 pipe on our stdio."""
    assert isinstance(data, dict)
    pump_pipe(str(data["pipe"]))


def find_powershell() -> str:
    for name in POWERSHELLS:
        found = shutil.which(name)
        if found:
            return found
    raise UserError(
        "cannot find PowerShell (powershell.exe or pwsh)", hint="run hyperv needs Windows PowerShell or PowerShell 7"
    )


def run_hyperv(opts: HyperVOptions) -> int:
    if sys.platform != "win32":
        raise UserError(
            "run hyperv needs Windows with Hyper-V",
            hint="on Linux use linuxkit run qemu, on macOS run virtualization or hyperkit; vbox and vmware run on all",
        )
    from dataclasses import replace

    opts = replace(opts, powershell=find_powershell())
    P.execute(plan_hyperv(opts))
    return 0
