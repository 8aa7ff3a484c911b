"""``linuxkit run qemu PATH``: work out what PATH names, build qemu's command line as upstream
does (:func:`qemu_argv`, pure), then run qemu with the serial console on our stdio.

What PATH may name: ``PATH-kernel`` + ``PATH-initrd.img`` (+ ``PATH-cmdline``) when PATH itself
does not exist (with ``PATH-squashfs.img``, ``PATH-erofs.img`` or a ``PATH.iso`` without a boot
loader: a kernel+squashfs/erofs/iso boot, the root image on a virtio disk or a virtio-scsi CD and
``PATH-initrd.img``, when there, as the root loader); ``X.iso`` (``X-efi.iso``
boots under UEFI); a disk image (``.img``, ``.qcow2``, ``.raw``, ``.vhd``, ``.vmdk``; ``-efi.*``
boots under UEFI); a unified kernel image ``X.efi`` (booted by OVMF as ``-kernel``).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import shutil
import socket
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .. import log
from ..errors import UserError
from ..metadata.iso import write_files_iso, write_metadata_iso
from ..runner import DEVNULL, STDOUT, find_tool, run, start
from .accel import choose_accel, host_arch
from .disks import DiskSpec, create_missing, qemu_file, qemu_opt, resolve_disks
from .metaservice import (
    METADATA_ADDRESSES,
    NETWORK,
    PROVIDER_HINT,
    PROVIDERS,
    Instance,
    MetadataServer,
    guest_addresses,
    instance_to_json,
    iso_files,
    socket_directory,
)
from .secureboot import check_boot, firmware_for, vars_store

ARCHES = ("x86_64", "aarch64", "s390x", "riscv64")
OVMF_PATHS = (
    "/usr/share/ovmf/OVMF.fd",
    "/usr/share/qemu/OVMF.fd",
    "/usr/share/OVMF/OVMF.fd",
    "/usr/share/ovmf/bios.bin",  # upstream's default
)
#: aarch64's UEFI firmware as (code, variable store template) pairs: Debian's AAVMF (qemu-efi-aarch64),
#: then the edk2 build qemu installs; the code is mapped read-only, the variables from the VM's own copy
AAVMF_PATHS = (
    ("/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"),
    ("/usr/share/qemu/edk2-aarch64-code.fd", "/usr/share/qemu/edk2-arm-vars.fd"),
)
_DISK_FORMATS = {".qcow2": "qcow2", ".raw": "raw", ".img": "raw", ".vhd": "vpc", ".vmdk": "vmdk"}
PUBLISH_HINT = "use --publish HOSTPORT:GUESTPORT[/tcp|udp], e.g. --publish 8080:80"


@dataclass(frozen=True)
class PublishedPort:
    host: int
    guest: int
    protocol: str = "tcp"


def parse_publish(value: str) -> PublishedPort:
    """``HOST:GUEST[/tcp|udp]`` with upstream's checks."""
    parts = value.split(":")
    if len(parts) < 2:
        raise UserError(f"cannot parse --publish {value!r}", hint=PUBLISH_HINT)
    guest_text, _, proto = parts[1].partition("/")
    protocol = proto.strip().lower() if proto else "tcp"
    if protocol not in ("tcp", "udp"):
        raise UserError(f"--publish {value!r}: protocol must be tcp or udp", hint=PUBLISH_HINT)
    try:
        host, guest = int(parts[0]), int(guest_text)
    except ValueError:
        raise UserError(f"--publish {value!r}: ports must be numbers", hint=PUBLISH_HINT) from None
    for what, port in (("host", host), ("guest", guest)):
        if not 1 <= port <= 65535:
            raise UserError(f"--publish {value!r}: invalid {what} port {port}", hint=PUBLISH_HINT)
    return PublishedPort(host, guest, protocol)


def check_ports_free(ports: list[PublishedPort]) -> None:
    """Bind each host port as qemu will (all addresses) and release it: a busy port is the user's
    to fix, better said now than by qemu after it started."""
    for p in ports:
        kind = socket.SOCK_STREAM if p.protocol == "tcp" else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("", p.host))
            except OSError as exc:
                why = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
                raise UserError(
                    f"cannot publish {p.protocol} port {p.host}: {why}",
                    hint="choose another host port, or stop what listens on it (e.g. `ss -ltnp`)",
                ) from exc


@dataclass(frozen=True)
class Boot:
    """What to boot: ``kind`` is kernel, squashfs, erofs, kernel-iso, iso, disk or uki; ``prefix`` names
    the state dir; ``loader``: a root image boot with ``PATH-initrd.img`` (the root loader)."""

    kind: str
    path: str
    prefix: str
    uefi: bool = False
    loader: bool = False


#: kernel boots with a root image: kind → (file after PATH, root= with the loader, root= without)
ROOT_IMAGES = {
    "squashfs": ("-squashfs.img", "/dev/vda", "/dev/sda"),
    "erofs": ("-erofs.img", "/dev/vda", "/dev/vda"),
    "kernel-iso": (".iso", "/dev/sr0", "/dev/sr0"),
}


def iso_is_bootable(path: str) -> bool:
    """An El Torito boot record at sector 17: a boot CD, not a kernel+iso root image."""
    try:
        with open(path, "rb") as fh:
            fh.seek(17 * 2048)
            record = fh.read(40)
    except OSError:
        return False
    return record[:6] == b"\x00CD001" and record[7:30] == b"EL TORITO SPECIFICATION"


def _kernel_boot(path: str, uefi: bool, squashfs: bool) -> Boot:
    """A boot of ``PATH-kernel``: with a root image when one is there (or ``--squashfs`` says so)."""
    kind = "kernel"
    if squashfs or os.path.exists(path + "-squashfs.img"):
        kind = "squashfs"
    elif os.path.exists(path + "-erofs.img"):
        kind = "erofs"
    elif os.path.exists(path + ".iso") and not iso_is_bootable(path + ".iso"):
        kind = "kernel-iso"
    return Boot(kind, path, path, uefi, loader=kind in ROOT_IMAGES and os.path.exists(path + "-initrd.img"))


def detect_boot(path: str, *, kernel: bool, iso: bool, squashfs: bool, uefi: bool) -> Boot:
    """Upstream's detection, plus UEFI for ``-efi`` images and ``.efi`` unified kernel images."""
    if kernel or squashfs:
        return _kernel_boot(path, uefi, squashfs)
    if not os.path.exists(path):
        if os.path.exists(path + "-kernel"):
            return _kernel_boot(path, uefi, False)
        raise UserError(
            f"nothing to boot at {path}",
            hint=f"expected {path}-kernel + {path}-initrd.img (kernel+initrd), an .iso, a disk image or an .efi",
        )
    stem, ext = os.path.splitext(path)
    if iso or ext == ".iso":
        prefix = stem if ext == ".iso" else path
        return Boot("iso", path, prefix, uefi or stem.endswith("-efi"))
    if ext == ".efi":
        return Boot("uki", path, stem, True)
    return Boot("disk", path, stem if ext in _DISK_FORMATS else path, uefi or stem.endswith("-efi"))


def find_ovmf(explicit: str) -> str:
    if explicit:
        if not os.path.isfile(explicit):
            raise UserError(f"firmware {explicit} does not exist", hint="install OVMF (apt-get install ovmf)")
        return explicit
    for candidate in OVMF_PATHS:
        if os.path.isfile(candidate):
            return candidate
    raise UserError(
        "UEFI boot needs OVMF firmware and none was found",
        hint="install it with: apt-get install ovmf (or give --fw PATH)",
    )


def _vars_template(code: str) -> str:
    """The variable store to start from with firmware code ``code``: the one beside it (a known pair's,
    or ``..VARS..`` for a ``..CODE..`` file), else the first one installed."""
    folder, name = os.path.split(code)
    names = [os.path.basename(v) for c, v in AAVMF_PATHS if os.path.basename(c) == name]
    names.append(name.replace("CODE", "VARS").replace("code", "vars"))
    for beside in (os.path.join(folder, n) for n in names if n != name):
        if os.path.isfile(beside):
            return beside
    for _, template in AAVMF_PATHS:
        if os.path.isfile(template):
            return template
    raise UserError(
        f"no UEFI variable store to go with {code}",
        hint="install AAVMF (apt-get install qemu-efi-aarch64), or put a ..VARS.. file beside a ..CODE.. --fw",
    )


def find_aavmf(explicit: str) -> tuple[str, str]:
    """aarch64's UEFI firmware: ``(code, variable store template)`` (``--fw`` names the code)."""
    if explicit:
        if not os.path.isfile(explicit):
            raise UserError(
                f"firmware {explicit} does not exist", hint="install AAVMF (apt-get install qemu-efi-aarch64)"
            )
        return explicit, _vars_template(explicit)
    for code, template in AAVMF_PATHS:
        if os.path.isfile(code) and os.path.isfile(template):
            return code, template
    raise UserError(
        "UEFI boot on aarch64 needs AAVMF firmware and none was found",
        hint="install it with: apt-get install qemu-efi-aarch64 (or give --fw PATH to a ..CODE.. file)",
    )


def _firmware_copy(firmware: str, state: Path) -> str:
    """qemu writes UEFI variables into a writable pflash image: give it the VM's own copy in the
    state directory (upstream hands it the system's file)."""
    copy = state / ("fw-" + os.path.basename(firmware))
    if not copy.exists():
        shutil.copyfile(firmware, copy)
    return str(copy)


@dataclass
class QemuConfig:
    """Everything :func:`qemu_argv` needs; no I/O happens while building the command line."""

    boot: Boot
    state: Path
    cpus: int = 1
    mem: int = 1024
    arch: str = "x86_64"
    accel: str = "tcg"
    disks: list[DiskSpec] = field(default_factory=list)
    isos: list[str] = field(default_factory=list)
    firmware: str = ""
    #: with split firmware (aarch64's AAVMF): ``firmware`` is the code, mapped read-only, and this the
    #: VM's own variable store (both pflash units); "" = one pflash unit, ``firmware`` itself
    firmware_vars: str = ""
    #: UEFI Secure Boot enforced (``--secure-boot``): x86's q35 with SMM and a secure flash
    secure_boot: bool = False
    cmdline: str | None = None  # contents of PATH-cmdline (None: no -append)
    extra_cmdline: str = ""
    netdev: str = "user,id=t0"  # "" = no network
    mac: str = ""
    publish: list[PublishedPort] = field(default_factory=list)
    gui: bool = False
    usb: bool = False
    devices: list[str] = field(default_factory=list)
    vm_uuid: str = ""
    # --metadata PROVIDER served over HTTP: the server's Unix socket, the guest addresses (port 80) forwarded
    # to it through the relay run by this Python, and what the server answers; the other metadata addresses
    # (and all of them with a CD provider) lead to no service
    metadata_socket: str = ""
    metadata_addresses: tuple[str, ...] = ()
    metadata_blocked: tuple[str, ...] = ()
    python: str = sys.executable
    provider: str = ""
    instance: Instance | None = None


#: the relay qemu runs for each guest connection to the metadata service (see metaservice)
RELAY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mdrelay.py")
#: what the relay is pointed at for a blocked address: not a socket, so it closes the guest's connection
NO_SERVICE = os.devnull


def metadata_netdev(cfg: QemuConfig) -> str:
    """The ``-netdev user`` options of a metadata boot: the link-local network and one ``guestfwd`` per
    metadata address, whose command (split by slirp as a shell would, without a shell) is the relay.
    Without them slirp would take the guest's connections to 169.254.169.254 out to the host's network:
    on a cloud VM, to the host's own metadata service."""
    if not cfg.metadata_addresses and not cfg.metadata_blocked:
        return ""
    forwards = ""
    for addresses, target in ((cfg.metadata_addresses, cfg.metadata_socket), (cfg.metadata_blocked, NO_SERVICE)):
        command = shlex.join([cfg.python, "-I", "-S", RELAY, target])
        forwards += "".join(f",guestfwd=tcp:{addr}:80-cmd:{qemu_opt(command)}" for addr in addresses)
    return f",net={NETWORK}{forwards}"


def netdev_for(networking: str, publish: list[PublishedPort]) -> str:
    """``--networking`` → qemu's ``-netdev`` value ("" for none), with upstream's checks."""
    mode, _, arg = (networking or "user").partition(",")
    if mode in ("default", "user"):
        return "user,id=t0"
    if mode not in ("tap", "bridge", "none"):
        raise UserError(f"invalid networking mode: {mode}", hint="use user, tap,IFACE, bridge,BRIDGE or none")
    if publish:
        raise UserError('port publishing requires "user" networking mode')
    if mode == "none":
        return ""
    if not arg:
        raise UserError(f'not enough arguments for "{mode}" networking mode', hint=f"use --networking {mode},NAME")
    if mode == "tap":
        return f"tap,id=t0,ifname={qemu_opt(arg)},script=no,downscript=no"
    return f"bridge,id=t0,br={qemu_opt(arg)}"


def _machine(arch: str, accel: str, *, sata: bool = True, smm: bool = False) -> str:
    if arch == "s390x":
        base = "s390-ccw-virtio"
    elif arch == "aarch64":
        base = "virt,gic_version=host" if accel.startswith("kvm") else "virt"
    elif arch == "riscv64":
        base = "virt"
    else:
        base = "q35" if sata else "q35,sata=off"
        base += ",smm=on" if smm else ""
    return f"{base},accel={accel}" if accel else base


def qemu_argv(qemu: str, cfg: QemuConfig) -> list[str]:
    """qemu's command line, in upstream's order."""
    args = [qemu, "-smp", str(cfg.cpus), "-m", str(cfg.mem), "-uuid", cfg.vm_uuid]
    args += ["-pidfile", str(cfg.state / "qemu.pid")]
    if cfg.arch == "aarch64":
        # under TCG upstream's cortex-a57: examples/minimal.yml reaches its marker in ~3.2 s (cortex-a53 and
        # -a72 the same within noise), `max` in ~10.8 s (it emulates pointer authentication with QARMA),
        # `max,pauth-impdef=on` ~4.2 s, `max,pauth=off` ~3.6 s (docs/platform-arm64.md)
        args += ["-cpu", "host" if host_arch() == "aarch64" and cfg.accel.startswith("kvm") else "cortex-a57"]
    iso_boot = cfg.boot.kind == "iso"
    # q35's SATA controller serves only the boot ISO's -cdrom (and what a --device may attach): without them it
    # is left out, as a cloud VM has none. Present, a kernel with `ahci` (pkg/kernel-cloud) loads it and waits
    # for the probing of its six empty ports: ~0.6 s of every boot under emulation.
    # OVMF's Secure Boot build keeps its variables in SMM: q35 with SMM, its flash writable from SMM only
    smm = cfg.secure_boot and cfg.arch == "x86_64"
    args += ["-machine", _machine(cfg.arch, cfg.accel, sata=iso_boot or bool(cfg.devices), smm=smm)]
    if smm:
        args += ["-global", "driver=cfi.pflash01,property=secure,value=on"]
    rng = "virtio-rng-ccw" if cfg.arch == "s390x" else "virtio-rng-pci"
    args += ["-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", f"{rng},rng=rng0"]
    # Disks and metadata CDs are virtio devices: the kernels LinuxKit systems boot (Debian's cloud kernel
    # here) drive virtio, while the IDE/AHCI controller q35 would use needs drivers they lack. The boot
    # ISO stays a plain -cdrom (the firmware reads it; the kernel never needs to).
    for d in cfg.disks:
        fmt = f",format={qemu_opt(d.format)}" if d.format else ""
        args += ["-drive", f"file={qemu_opt(qemu_file(d.path))}{fmt},if=virtio,media=disk"]
    # aarch64's virt machine has no IDE controller for -cdrom: there the boot ISO is the first CD on
    # virtio-scsi, which the firmware boots from
    cdrom = iso_boot and cfg.arch != "aarch64"
    if cdrom:
        args += ["-boot", "d"]
    data_cds = cfg.isos[1:] if cdrom else cfg.isos
    if cdrom:
        args += ["-cdrom", qemu_file(cfg.isos[0])]  # taken whole: no option string, no escaping
    if data_cds:
        args += ["-device", "virtio-scsi-pci,id=scsi0"]
        for i, iso in enumerate(data_cds):
            args += ["-drive", f"file={qemu_opt(qemu_file(iso))},if=none,id=cd{i},media=cdrom,readonly=on"]
            args += ["-device", f"scsi-cd,drive=cd{i},bus=scsi0.0"]
    if cfg.boot.uefi and cfg.firmware_vars:
        args += ["-drive", f"if=pflash,format=raw,readonly=on,file={qemu_opt(qemu_file(cfg.firmware))}"]
        args += ["-drive", f"if=pflash,format=raw,file={qemu_opt(qemu_file(cfg.firmware_vars))}"]
    elif cfg.boot.uefi:
        args += ["-drive", f"if=pflash,format=raw,file={qemu_opt(qemu_file(cfg.firmware))}"]
    append = None
    if cfg.boot.kind == "kernel" or cfg.boot.kind in ROOT_IMAGES:
        args += ["-kernel", cfg.boot.path + "-kernel"]
        if cfg.boot.kind == "kernel" or cfg.boot.loader:
            args += ["-initrd", cfg.boot.path + "-initrd.img"]
        if cfg.cmdline is not None:
            append = cfg.cmdline
            if cfg.boot.kind in ROOT_IMAGES:
                _, with_loader, without = ROOT_IMAGES[cfg.boot.kind]
                append += f" root={with_loader if cfg.boot.loader else without}"
    elif cfg.boot.kind == "uki":
        args += ["-kernel", cfg.boot.path]
    if cfg.extra_cmdline:
        append = f"{append} {cfg.extra_cmdline}" if append else cfg.extra_cmdline
    if append is not None:
        args += ["-append", append]
    if not cfg.netdev:
        args += ["-net", "none"]
    else:
        nic = "virtio-net-ccw" if cfg.arch == "s390x" else "virtio-net-pci"
        args += ["-device", f"{nic},netdev=t0,mac={qemu_opt(cfg.mac)}"]
        forwards = "".join(f",hostfwd={p.protocol}::{p.host}-:{p.guest}" for p in cfg.publish)
        args += ["-netdev", cfg.netdev + forwards + metadata_netdev(cfg)]
    if not cfg.gui:
        args += ["-nographic"]
    if cfg.usb:
        args += ["-usb"]
    for device in cfg.devices:
        args += ["-device", device]
    return args


def generate_mac() -> str:
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & ~0x01) | 0x02  # unicast, locally administered
    return ":".join(f"{b:02x}" for b in raw)


def state_mac(state: Path) -> str:
    """The VM's MAC address, kept in ``STATE/mac-addr`` so it survives restarts."""
    path = state / "mac-addr"
    if path.exists():
        text = path.read_text().strip()
        parts = text.split(":")
        if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
            raise UserError(f"{path} does not hold a MAC address: {text!r}", hint="remove it to get a new one")
        return text.lower()
    mac = generate_mac()
    path.write_text(mac)
    return mac


@dataclass(frozen=True)
class RunOptions:
    path: str
    cpus: int = 1
    mem: int = 1024
    disks: tuple[DiskSpec, ...] = ()
    kernel: bool = False
    iso: bool = False
    uefi: bool = False
    squashfs: bool = False
    state: str = ""
    data: str | None = None
    data_file: str | None = None
    publish: tuple[str, ...] = ()
    networking: str = "user"
    accel: str | None = None
    fw: str = ""
    secure_boot: bool = False
    secure_boot_cert: str = ""
    qemu: str = ""
    arch: str = ""
    gui: bool = False
    detached: bool = False
    cmdline: str = ""
    usb: bool = False
    devices: tuple[str, ...] = ()
    metadata: str = ""
    ssh_keys: tuple[str, ...] = ()
    hostname: str = ""


def _check_boot_files(boot: Boot) -> str | None:
    """Check the files a boot needs; return the cmdline text (``None`` when there is no file)."""
    if boot.kind == "kernel" or boot.kind in ROOT_IMAGES:
        image = "-initrd.img" if boot.kind == "kernel" else ROOT_IMAGES[boot.kind][0]
        fmt = "kernel+initrd" if boot.kind == "kernel" else "kernel+" + boot.kind.removeprefix("kernel-")
        for f in (boot.path + "-kernel", boot.path + image):
            if not os.path.isfile(f):
                raise UserError(f"{f} does not exist", hint=f"build it with `linuxkit build --format {fmt}`")
        try:
            return Path(boot.path + "-cmdline").read_text(errors="surrogateescape")
        except OSError:
            log.warn(f"cannot read {boot.path}-cmdline: booting without a kernel command line")
            return None
    return None


_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")


def _hostname(opts: RunOptions, boot: Boot) -> str:
    """``--hostname``, else the image's name made a host name (``linuxkit`` when nothing is left)."""
    if opts.hostname:
        if not HOSTNAME.fullmatch(opts.hostname):
            raise UserError(f"--hostname {opts.hostname!r} is not a valid host name", hint="letters, digits, - and .")
        return opts.hostname
    name = re.sub(r"[^a-z0-9-]+", "-", os.path.basename(boot.prefix).lower()).strip("-")[:63].strip("-")
    return name or "linuxkit"


_PUBLIC_KEY = re.compile(r"(^|\s)(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+) [A-Za-z0-9+/]+=*(\s|$)")


def _ssh_keys(files: tuple[str, ...]) -> tuple[str, ...]:
    """The public keys of ``--ssh-key`` files (one a line; blank lines and comments skipped)."""
    keys: list[str] = []
    for path in files:
        try:
            lines = Path(path).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read SSH public key {path}: {getattr(exc, 'strerror', None) or exc}") from exc
        found = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        if not found or not all(_PUBLIC_KEY.search(k) for k in found):
            raise UserError(
                f"{path} does not hold SSH public keys", hint="give a .pub file, e.g. ~/.ssh/id_ed25519.pub"
            )
        keys += found
    return tuple(keys)


def state_instance_id(state: Path) -> str:
    """The VM's instance id (32 hex digits), kept in ``STATE/instance-id`` like its MAC address."""
    path = state / "instance-id"
    if path.exists():
        text = path.read_text().strip()
        if re.fullmatch(r"[0-9a-f]{32}", text):
            return text
        raise UserError(f"{path} does not hold an instance id: {text!r}", hint="remove it to get a new one")
    value = uuid.uuid4().hex
    path.write_text(value)
    return value


def prepare(opts: RunOptions) -> tuple[str, QemuConfig]:
    """Check everything and prepare the state directory; return the qemu binary and the config."""
    if opts.data is not None and opts.data_file is not None:
        raise UserError("cannot specify both --data and --data-file")
    if opts.metadata and opts.metadata not in PROVIDERS:
        raise UserError(f"unknown metadata provider {opts.metadata!r}", hint=PROVIDER_HINT)
    if (opts.ssh_keys or opts.hostname) and not opts.metadata:
        raise UserError("--ssh-key and --hostname are answered by --metadata PROVIDER", hint=PROVIDER_HINT)
    served = PROVIDERS.get(opts.metadata) == "http"
    arch = opts.arch or host_arch()
    if arch not in ARCHES:
        raise UserError(f"{arch} is an unsupported architecture", hint="use one of: " + ", ".join(ARCHES))
    if opts.cpus < 1 or opts.mem < 1:
        raise UserError("--cpus and --mem must be positive")
    publish = [parse_publish(p) for p in opts.publish]
    netdev = netdev_for(opts.networking, publish)
    if served and not netdev.startswith("user"):
        raise UserError(f"--metadata {opts.metadata} is served on qemu's user network", hint="use --networking user")
    ssh_keys = _ssh_keys(opts.ssh_keys)
    netdev_user = netdev.startswith("user")
    served_at = guest_addresses(opts.metadata) if served else ()
    boot = detect_boot(opts.path, kernel=opts.kernel, iso=opts.iso, squashfs=opts.squashfs, uefi=opts.uefi)
    cmdline = _check_boot_files(boot)
    firmware = firmware_vars = ""
    if opts.secure_boot_cert and not opts.secure_boot:
        raise UserError("--secure-boot-cert goes with --secure-boot", hint="add --secure-boot")
    if opts.secure_boot:
        check_boot(boot.kind, boot.uefi)
        secure = firmware_for(arch, opts.fw)
        firmware, firmware_vars = secure.code, secure.empty_vars
    elif boot.uefi and arch == "aarch64":
        firmware, firmware_vars = find_aavmf(opts.fw)
    elif boot.uefi:
        firmware = find_ovmf(opts.fw)
    qemu = opts.qemu or f"qemu-system-{arch}"
    qemu = qemu if os.sep in qemu else find_tool(qemu)
    if not os.access(qemu, os.X_OK):
        raise UserError(f"qemu binary {qemu} is not executable", hint="check --qemu")
    check_ports_free(publish)
    state = Path(opts.state or boot.prefix + "-state")
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"could not create state directory {state}: {exc.strerror}") from exc
    if opts.secure_boot:
        firmware_vars = vars_store(secure, opts.secure_boot_cert, state)
    elif firmware_vars:
        firmware_vars = _firmware_copy(firmware_vars, state)
    elif firmware:
        firmware = _firmware_copy(firmware, state)
    # a kernel+iso root image is the first CD on virtio-scsi (/dev/sr0), before any metadata CD
    isos = [boot.path] if boot.kind == "iso" else [boot.path + ".iso"] if boot.kind == "kernel-iso" else []
    data: bytes | None = None
    if opts.data is not None or opts.data_file is not None:
        if opts.data_file is not None:
            try:
                data = Path(opts.data_file).read_bytes()
            except OSError as exc:
                raise UserError(f"cannot read user data from path {opts.data_file}: {exc.strerror}") from exc
        else:
            data = (opts.data or "").encode()
    mac = state_mac(state) if netdev else ""
    instance = None
    if opts.metadata:
        instance = Instance(_hostname(opts, boot), state_instance_id(state), data, ssh_keys, mac or Instance.mac)
        if not served:  # a config drive / NoCloud CD instead of the data CD
            label, files = iso_files(opts.metadata, instance)
            write_files_iso(state / "metadata.iso", files, label)
            isos.append(str(state / "metadata.iso"))
    elif data is not None:
        write_metadata_iso(state / "data.iso", data)
        isos.append(str(state / "data.iso"))
    disks = resolve_disks(list(opts.disks), state)
    if boot.kind in ("disk", "squashfs", "erofs"):
        root = boot.path + ROOT_IMAGES[boot.kind][0] if boot.kind in ROOT_IMAGES else boot.path
        disks.insert(0, DiskSpec(path=root, format=_DISK_FORMATS.get(os.path.splitext(root)[1], "")))
    accel = choose_accel(opts.accel, qemu, arch)
    cfg = QemuConfig(
        boot=boot,
        state=state,
        cpus=opts.cpus,
        mem=opts.mem,
        arch=arch,
        accel=accel,
        disks=disks,
        isos=isos,
        firmware=firmware,
        firmware_vars=firmware_vars,
        secure_boot=opts.secure_boot,
        cmdline=cmdline,
        extra_cmdline=opts.cmdline,
        netdev=netdev,
        mac=mac,
        publish=publish,
        gui=opts.gui,
        usb=opts.usb,
        devices=list(opts.devices),
        vm_uuid=str(uuid.uuid4()),
        metadata_addresses=served_at,
        metadata_blocked=tuple(a for a in METADATA_ADDRESSES if a not in served_at)
        if opts.metadata and netdev_user
        else (),
        provider=opts.metadata if served else "",
        instance=instance,
    )
    return qemu, cfg


def run_qemu(opts: RunOptions) -> int:
    """Boot the image; return qemu's exit code (detached: 0 once qemu started)."""
    qemu, cfg = prepare(opts)
    create_missing(cfg.disks)
    if cfg.provider and cfg.instance is not None:
        addresses = ", ".join(f"{a}:80" for a in cfg.metadata_addresses)
        log.info(f"Serving {cfg.provider} metadata at {addresses} (requests in {cfg.state / 'metadata.log'})")
        if opts.detached:
            return _run_detached_with_metadata(qemu, cfg)
        server = MetadataServer(cfg.provider, cfg.instance, cfg.state / "metadata.log")
        cfg.metadata_socket = server.socket_path
        with server:
            return _run(qemu_argv(qemu, cfg), cfg, opts)
    return _run(qemu_argv(qemu, cfg), cfg, opts)


def _run_detached_with_metadata(qemu: str, cfg: QemuConfig) -> int:
    """``--detached`` with a served provider: a background ``python -m linuxkit.run.mdhost`` (its own session)
    serves the metadata and runs qemu as its child, and ends with it. What it needs is handed over in a
    file of the state directory (mode 0600: it holds the user data), which it removes on reading."""
    assert cfg.instance is not None
    directory = socket_directory()
    cfg.metadata_socket = os.path.join(directory, "http.sock")
    spec = {
        "argv": qemu_argv(qemu, cfg),
        "provider": cfg.provider,
        "instance": instance_to_json(cfg.instance),
        "log": str(cfg.state / "metadata.log"),
        "directory": directory,
    }
    spec_path = cfg.state / "metadata-run.json"
    fd = os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(spec, fh)
    console = cfg.state / "console.log"
    log.info(f"Running qemu ({cfg.boot.kind} boot, accelerator {cfg.accel})")
    with open(console, "wb") as out:
        proc = start(
            [cfg.python, "-m", "linuxkit.run.mdhost", str(spec_path)],
            stdin=DEVNULL,
            stdout=out,
            stderr=STDOUT,
            new_session=True,
        )
    log.info(
        f"qemu and the metadata service run in the background (pid {proc.pid}; qemu's in {cfg.state / 'qemu.pid'}); "
        f"console: {console}"
    )
    return 0


def _run(argv: list[str], cfg: QemuConfig, opts: RunOptions) -> int:
    log.info(f"Running qemu ({cfg.boot.kind} boot, accelerator {cfg.accel})")
    if opts.detached:
        console = cfg.state / "console.log"
        with open(console, "wb") as out:
            proc = start(argv, stdin=DEVNULL, stdout=out, stderr=STDOUT, new_session=True)
        log.info(f"qemu runs in the background (pid {proc.pid}); console: {console}")
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    # The serial console is qemu's stdio (-nographic): qemu inherits ours.
    done = run(argv, check=False, stdin=DEVNULL if cfg.gui else None)
    if done.returncode < 0:
        return 128 - done.returncode
    return done.returncode
