"""``run virtualization``: the whole run as a :class:`~linuxkit.run.plan.Plan` first (state directory,
user-data CD, kernel decompression, disk creation or conversion), ending in one :class:`~linuxkit.run.plan.Call`
whose plain data tree is the Virtualization framework configuration (boot loader, CPUs, memory, console,
network, storage, entropy, balloon, vsock, virtiofs shares), as upstream's
``run_virtualizationframework_darwin_cgo_enabled.go`` builds it. :mod:`linuxkit.run.vzmachine` turns that
tree into VZ objects through PyObjC when the step runs, on macOS only.

Beyond upstream, ``--uefi`` boots an EFI image (``iso-efi``, ``raw-efi``, ``qcow2-efi``) with
``VZEFIBootLoader`` and a variable store kept in the state directory (macOS 13+)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from .disks import DISK_HINT, DiskSpec
from .macos import data_iso, is_gzip, read_cmdline, user_data
from .plan import Call, ConvertDisk, Data, MakeDir, Plan

NETWORKING_HINT = "use --networking vmnet (NAT) or none"
#: the executor (imported only when its step runs)
START = "linuxkit.run.vzmachine:start_vm"
EFI_IMAGES = (".iso", ".img", ".raw", ".qcow2")  # --uefi: the state directory is NAME-efi-state for NAME-efi.EXT
CONSOLE = "console=hvc0"  # the Virtualization framework's console is the first virtio console


def random_mac() -> str:
    """A random locally administered unicast MAC address (``VZMACAddress.randomLocallyAdministeredAddress``)."""
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in raw)


@dataclass(frozen=True)
class VirtualizationOptions:
    path: str
    cpus: int = 1
    mem: int = 1024
    disks: tuple[DiskSpec, ...] = ()
    data: str = ""
    data_file: str = ""
    state: str = ""
    networking: str = "vmnet"
    kernel: bool = False
    virtiofs: tuple[str, ...] = ()
    uefi: bool = False


@dataclass(frozen=True)
class VzHost:
    """What the plan takes from the machine (tests give their own)."""

    mac: Callable[[], str] = field(default=random_mac)


def _qcow2(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"QFI\xfb"


def _linux_boot(prefix: str, state: Path, plan: Plan) -> dict[str, Data]:
    kernel, initrd = prefix + "-kernel", prefix + "-initrd.img"
    if not os.path.isfile(kernel):
        raise UserError(f"cannot find kernel file: {kernel}", hint="build it with --format kernel+initrd")
    if not os.path.isfile(initrd):
        raise UserError(f"cannot find initrd file ({initrd})", hint="build it with --format kernel+initrd")
    cmdline = read_cmdline(prefix)
    if is_gzip(kernel):  # VZLinuxBootLoader wants an uncompressed kernel (arm64 Image)
        uncompressed = str(state / "kernel-uncompressed")
        plan.add(Call("linuxkit.run.macos:gunzip", {"src": kernel, "dst": uncompressed}))
        kernel = uncompressed
    return {"type": "linux", "kernel": kernel, "initrd": initrd, "command_line": f"{cmdline} {CONSOLE}"}


def _efi_boot(path: str, state: Path, plan: Plan) -> tuple[dict[str, Data], dict[str, Data]]:
    """``--uefi``: the boot loader with its variable store, and the boot medium (an ISO on USB mass storage,
    a raw disk on virtio-blk; a qcow2 image converted to raw in the state directory first)."""
    if not os.path.isfile(path):
        raise UserError(
            f"cannot find EFI image {path}",
            hint="give the file: NAME-efi.iso, NAME-efi.img or NAME-efi.qcow2 (linuxkit build --format iso-efi ...)",
        )
    store = state / "efi-variable-store"
    loader: dict[str, Data] = {"type": "efi", "variable_store": str(store), "create_variable_store": not store.exists()}
    if path.endswith(".iso"):
        return loader, {"type": "usb-mass-storage", "path": path, "read_only": True}
    if _qcow2(path):
        raw = state / "boot.raw"
        plan.add(ConvertDisk(Path(path), raw, "raw", src_fmt="qcow2"))
        path = str(raw)
    return loader, {"type": "virtio-block", "path": path, "read_only": False}


def _disks(opts: VirtualizationOptions, state: Path, plan: Plan) -> list[dict[str, Data]]:
    out: list[dict[str, Data]] = []
    for i, d in enumerate(opts.disks):
        fmt = d.format or ("raw" if d.size_mb else "")
        if fmt not in ("", "raw"):
            raise UserError(
                f"the Virtualization framework can only use raw disks, not {fmt}",
                hint="convert it first: qemu-img convert -O raw DISK DISK.raw",
            )
        path = d.path or (str(state / f"disk{i or ''}.raw") if d.size_mb else "")
        if not path:
            raise UserError("disk specified with no size or name", hint=DISK_HINT)
        if not os.path.exists(path):
            if not d.size_mb:
                raise UserError(f"disk {path} does not exist", hint="give a size to create it: --disk PATH,size=1G")
            # vz.CreateDiskImage: one sparse file of the size
            plan.add(
                Call("linuxkit.run.macos:ensure_raw_disk", {"path": path, "size_mb": d.size_mb, "step_mb": d.size_mb})
            )
        elif _qcow2(path):
            raise UserError(
                f"{path} is a qcow2 image: the Virtualization framework can only use raw disks",
                hint=f"convert it first: qemu-img convert -O raw {path} {path}.raw",
            )
        out.append({"type": "virtio-block", "path": path, "read_only": False})
    return out


def build_plan(opts: VirtualizationOptions, host: VzHost) -> Plan:
    """Everything ``run virtualization`` will do, checked and decided before anything runs."""
    if opts.cpus < 1 or opts.mem < 1:
        raise UserError("--cpus and --mem must be at least 1")
    if opts.uefi and opts.kernel:
        raise UserError("please specify only one boot method", hint="--kernel boots PREFIX-kernel, --uefi an EFI image")
    data = user_data(opts.data, opts.data_file)
    prefix = os.path.splitext(opts.path)[0] if opts.uefi and opts.path.endswith(EFI_IMAGES) else opts.path
    state = Path(opts.state or prefix + "-state")
    plan = Plan(f"linuxkit run virtualization {opts.path}")
    plan.add(MakeDir(state))
    macos = 11
    storage: list[dict[str, Data]] = []
    if opts.uefi:
        loader, medium = _efi_boot(opts.path, state, plan)
        storage.append(medium)
        macos = 13
    else:
        loader = _linux_boot(prefix, state, plan)
    storage += _disks(opts, state, plan)
    if data is not None:
        plan.add(data_iso(state, data))
        storage.append({"type": "virtio-block", "path": str(state / "data.iso"), "read_only": True})

    mode = opts.networking if opts.networking not in ("", "default") else "vmnet"
    network: list[Data] = []
    if mode.split(",", 2)[0] == "vmnet":
        network.append({"type": "virtio-net", "attachment": "nat", "mac_address": host.mac()})
    elif mode.split(",", 2)[0] != "none":
        raise UserError(f"invalid networking mode: {mode.split(',', 2)[0]}", hint=NETWORKING_HINT)

    shares: list[Data] = []
    for idx, share in enumerate(opts.virtiofs):
        if not os.path.isdir(share):
            raise UserError(f"--virtiofs {share}: not a directory")
        shares.append(
            {"type": "virtio-fs", "tag": f"virtiofs{idx}", "path": os.path.abspath(share), "read_only": False}
        )
        macos = max(macos, 12)

    config: dict[str, Data] = {
        "minimum_macos": macos,
        "boot_loader": loader,
        "platform": "generic" if opts.uefi else None,
        "cpu_count": opts.cpus,
        "memory_size": opts.mem * 1024 * 1024,
        "serial_ports": [{"type": "virtio-console", "attachment": "stdio", "raw_stdin": True}],
        "network_devices": network,
        "entropy_devices": [{"type": "virtio-entropy"}],
        "storage_devices": list(storage),
        "memory_balloon_devices": [{"type": "virtio-traditional-memory-balloon"}],
        "socket_devices": [{"type": "virtio-socket"}],
        "directory_sharing_devices": shares,
    }
    plan.add(Call(START, config))
    return plan


def run_virtualization(opts: VirtualizationOptions, host: VzHost) -> int:
    from .plan import execute

    execute(build_plan(opts, host))
    return 0
