"""``run hyperkit``: the whole run as a :class:`~linuxkit.run.plan.Plan` first (state directory, user-data
CD, vpnkit UUID, disks, vpnkit, the hyperkit command line as upstream's ``run_hyperkit.go`` and the
``github.com/moby/hyperkit/go`` library build it), then executed; only the last step needs hyperkit.

The plan is built from the options and a :class:`Host` (where the programs are, ``$HOME``, whether stdout
is a terminal, the UUIDs this run uses), so the same inputs give the same plan (golden tests)."""

from __future__ import annotations

import ipaddress
import os
import shlex
import shutil
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import log
from ..errors import BuildError, UserError
from ..gocompat.json import marshal
from ..runner import run
from .disks import DISK_HINT, DiskSpec
from .macos import HYPERKIT_GROW_STEP_MB, data_iso, read_cmdline, user_data
from .plan import Call, CreateDisk, Data, MakeDir, Plan, Run, WriteFile, execute, render

DEFAULT_FW = "/Applications/Docker.app/Contents/Resources/uefi/UEFI.fd"
NETWORKING = ("default", "docker-for-mac", "vpnkit", "vmnet", "none")
NETWORKING_HINT = "use --networking docker-for-mac, vpnkit[,ETH-SOCKET[,PORT-SOCKET]], vmnet or none"
#: where the hyperkit library looks when --hyperkit is not given (``defaultHyperKits``)
DEFAULT_HYPERKITS = (
    "hyperkit",
    "com.docker.hyperkit",
    "/usr/local/bin/hyperkit",
    "/Applications/Docker.app/Contents/Resources/bin/hyperkit",
    "/Applications/Docker.app/Contents/MacOS/com.docker.hyperkit",
)
DOCKER_DATA = "Library/Containers/com.docker.docker/Data"
#: the guest's vsock port vpnkit forwards host connections to
VPNKIT_VSOCK_PORT = 62373
VSOCK_GUEST_CID = 3
#: seconds to wait for a vpnkit we started to bind its sockets
VPNKIT_START_TIMEOUT = 10


@dataclass(frozen=True)
class HyperkitOptions:
    path: str
    cpus: int = 1
    mem: int = 1024
    disks: tuple[DiskSpec, ...] = ()
    hyperkit: str = ""
    data: str = ""
    data_file: str = ""
    ip: str = ""
    state: str = ""
    vsock_ports: str = ""
    networking: str = "docker-for-mac"
    vpnkit_uuid: str = ""
    vpnkit: str = ""
    publish: tuple[str, ...] = ()
    uefi: bool = False
    iso: bool = False
    squashfs: bool = False
    kernel: bool = False
    console_file: bool = False
    fw: str = DEFAULT_FW


@dataclass(frozen=True)
class Host:
    """What the plan reads from the machine, in one place (tests give their own)."""

    which: Callable[[str], str | None] = shutil.which
    home: str = field(default_factory=lambda: os.environ.get("HOME", ""))
    stdout_is_terminal: bool = field(default_factory=lambda: os.isatty(1))
    #: the VM's DMI UUID (new for every run, as upstream) and the vpnkit UUID used if none is kept yet
    vm_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    new_vpnkit_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True)
class HyperkitPlan:
    plan: Plan
    state: Path
    argv: tuple[str, ...]
    #: upstream's ``hyperkit.json`` (the library's ``HyperKit`` struct) without the pid, added once it runs
    config: dict[str, Data]


def find_hyperkit(flag: str, which: Callable[[str], str | None]) -> str:
    """The hyperkit library's ``checkHyperKit``: ``--hyperkit`` looked up, else the default places."""
    for name in (flag,) if flag else DEFAULT_HYPERKITS:
        found = which(name)
        if found:
            return found
    raise UserError(
        f"could not find hyperkit executable{' ' + flag if flag else ''}",
        hint="install it (brew install hyperkit, or Docker Desktop's) or give its path with --hyperkit",
    )


@dataclass(frozen=True)
class _Boot:
    kind: str  # kernel, squashfs, iso
    prefix: str
    isos: tuple[str, ...]


def _boot(opts: HyperkitOptions) -> _Boot:
    path = opts.path
    has_kernel = os.path.exists(path + "-kernel")
    if opts.squashfs:
        if opts.kernel or opts.iso:
            raise UserError("please specify only one boot method")
        if not has_kernel:
            raise UserError(f"booting a SquashFS root filesystem requires a kernel at {path}-kernel")
        if not os.path.exists(path + "-squashfs.img"):
            raise UserError(f"cannot find SquashFS image ({path}-squashfs.img)")
        return _Boot("squashfs", path, ())
    if opts.iso:
        if opts.kernel:
            raise UserError("please specify only one boot method")
        if not opts.uefi:
            raise UserError("hyperkit requires --uefi to be set to boot an ISO")
        iso = path if path.endswith(".iso") else path + ".iso"
        if not os.path.exists(iso):
            raise UserError(f"cannot find ISO image ({iso})", hint="build it with `linuxkit build --format iso-efi`")
        return _Boot("iso", path.removesuffix(".iso"), (iso,))
    if not has_kernel:
        raise UserError(f"cannot find kernel file: {path}-kernel", hint="build it with --format kernel+initrd")
    if not os.path.exists(path + "-initrd.img"):
        raise UserError(f"cannot find initrd file ({path}-initrd.img)", hint="build it with --format kernel+initrd")
    return _Boot("kernel", path, ())


def _vpnkit_uuid(opts: HyperkitOptions, state: Path, host: Host, plan: Plan) -> str:
    """``--vpnkit-uuid``, else the one kept in ``STATE/vpnkit.uuid`` (vpnkit gives an IP per UUID), else a new
    one written there."""
    if opts.vpnkit_uuid:
        return opts.vpnkit_uuid
    kept = state / "vpnkit.uuid"
    if not kept.exists():
        plan.add(WriteFile(kept, host.new_vpnkit_uuid.encode(), mode=0o600))
        return host.new_vpnkit_uuid
    try:
        return str(uuid.UUID(kept.read_text().strip()))
    except (OSError, ValueError) as exc:
        raise UserError(f"unable to parse VPNKit UUID from {kept}: {exc}", hint="remove it to get a new one") from exc


def _qcow2_size_mb(path: str) -> int:
    """The virtual size of a qcow2 image (its header, bytes 24..32, big-endian), in MiB."""
    with open(path, "rb") as f:
        head = f.read(32)
    if len(head) < 32 or head[:4] != b"QFI\xfb":
        raise UserError(f"{path} is not a qcow2 image", hint=DISK_HINT)
    return int(struct.unpack(">Q", head[24:32])[0] // (1024 * 1024))


def _disk(i: int, d: DiskSpec, state: Path, plan: Plan) -> dict[str, Data]:
    """One ``--disk``: the library's ``NewDisk`` (format by extension: ``.qcow2`` is qcow2, the rest raw) and
    ``Ensure`` (create, or grow a smaller one) as plan steps; its JSON record (``path``, ``size``, ...)."""
    path = d.path
    if d.size_mb and not path:
        path = str(state / f"disk{i or ''}.raw")
    if not path:
        raise UserError("disk specified with no size or name", hint=DISK_HINT)
    exists = os.path.exists(path)
    if not exists and not d.size_mb:
        raise UserError(f"disk {path} does not exist", hint="give a size to create it: --disk PATH,size=1G")
    if os.path.splitext(path)[1] == ".qcow2":
        if not exists:
            plan.add(CreateDisk(Path(path), "qcow2", d.size_mb))
        elif _qcow2_size_mb(path) < d.size_mb:
            plan.add(Run(("qemu-img", "resize", "-q", "-f", "qcow2", path, f"{d.size_mb}M")))
        return {"path": path, "size": d.size_mb, "format": "", "trim": False, "qcow": True}
    if d.size_mb:
        plan.add(
            Call(
                "linuxkit.run.macos:ensure_raw_disk",
                {"path": path, "size_mb": d.size_mb, "step_mb": HYPERKIT_GROW_STEP_MB},
            )
        )
    return {"path": path, "size": d.size_mb, "format": "", "trim": True}


def _disk_argument(disk: dict[str, Data]) -> str:
    """``AsArgument``: raw images on ``ahci-hd`` (TRIM works there), the squashfs root and qcow2 images on
    ``virtio-blk``."""
    driver = "ahci-hd" if disk["trim"] else "virtio-blk"
    if disk.get("qcow"):
        return (
            f"{driver},file://{disk['path']}?sync=&buffered=1,format=qcow,"
            "qcow-config=discard=false;compact_after_unmaps=0;keep_erased=0;runtime_asserts=false"
        )
    return f"{driver},{disk['path']}"


def _ports(text: str) -> list[int]:
    if not text:
        return []
    try:
        return [int(p) for p in text.split(",")]
    except ValueError:
        raise UserError(
            f"unable to parse vsock-ports: {text!r}", hint="comma-separated numbers, e.g. 2375,2376"
        ) from None


@dataclass
class _Net:
    vpnkit_sock: str = ""
    port_sock: str = ""
    vmnet: bool = False
    sockets_9p: list[dict[str, Data]] = field(default_factory=list)
    extra_vsock_ports: list[int] = field(default_factory=list)


def _networking(opts: HyperkitOptions, state: Path, host: Host, plan: Plan) -> _Net:
    mode = opts.networking if opts.networking not in ("", "default") else "docker-for-mac"
    parts = mode.split(",", 2)
    net = _Net()
    if parts[0] == "docker-for-mac":
        data = Path(host.home, DOCKER_DATA)
        if (data / "s50").exists():
            net.vpnkit_sock, net.port_sock = str(data / "s50"), str(data / "s51")
        elif (data / "vpnkit.eth.sock").exists():
            net.vpnkit_sock, net.port_sock = str(data / "vpnkit.eth.sock"), str(data / "vpnkit.port.sock")
        else:
            raise UserError(
                "cannot find Docker for Mac network sockets. Install Docker or use a different network mode",
                hint=NETWORKING_HINT,
            )
    elif parts[0] == "vpnkit":
        if len(parts) > 1:
            net.vpnkit_sock = parts[1]
            net.port_sock = parts[2] if len(parts) > 2 else ""
        else:
            net.vpnkit_sock, net.port_sock = str(state / "vpnkit_eth.sock"), str(state / "vpnkit_port.sock")
            vpnkit = host.which(opts.vpnkit or "vpnkit")
            if not vpnkit:
                raise UserError(
                    "unable to start vpnkit: unable to find vpnkit binary",
                    hint="install vpnkit or give its path with --vpnkit",
                )
            sockets: list[Data] = [net.vpnkit_sock, net.port_sock]
            plan.add(
                Call("linuxkit.run.macos:remove_sockets", {"paths": sockets}),
                Run(
                    (vpnkit, "--ethernet", net.vpnkit_sock, "--vsock-path", str(state / "connect"),
                     "--port", net.port_sock),
                    background=True,
                    output=state / "vpnkit.log",
                ),
                Call("linuxkit.run.macos:wait_for_sockets", {"paths": sockets, "timeout": VPNKIT_START_TIMEOUT}),
            )  # fmt: skip
        # the guest configures port forwards through this 9P share; vpnkit forwards host->guest on a vsock port
        if net.port_sock:
            net.sockets_9p = [{"path": net.port_sock, "tag": "port"}]
        net.extra_vsock_ports = [VPNKIT_VSOCK_PORT]
    elif parts[0] == "vmnet":
        net.vmnet = True
    elif parts[0] != "none":
        raise UserError(f"invalid networking mode: {parts[0]}", hint=NETWORKING_HINT)
    return net


def _preferred_ip(text: str) -> str:
    if not text:
        return ""
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise UserError(f"unable to parse IPv4 address: {text}") from None


def _publish_check(opts: HyperkitOptions, net: _Net) -> None:
    if not opts.publish:
        return
    mode = (opts.networking or "default").split(",")[0]
    if mode not in ("default", "docker-for-mac", "vpnkit"):
        raise UserError('port publishing requires "docker-for-mac" or "vpnkit" networking mode', hint=NETWORKING_HINT)
    if not net.port_sock:
        raise UserError("the VPNKit Port socket path is required to publish ports", hint=NETWORKING_HINT)
    raise UserError(
        "--publish is not supported by this linuxkit's run hyperkit: it needs vpnkit's vmnet and port-forwarding "
        "protocols (docs/platform-macos.md)",
        hint="forward the port inside Docker Desktop, or use `linuxkit run qemu --publish`",
    )


def build_plan(opts: HyperkitOptions, host: Host) -> HyperkitPlan:
    """Everything ``run hyperkit`` will do, checked and decided before anything runs."""
    if opts.cpus < 1 or opts.mem < 1:
        raise UserError("--cpus and --mem must be at least 1")
    data = user_data(opts.data, opts.data_file)
    boot = _boot(opts)
    if opts.uefi and not os.path.exists(opts.fw):
        raise UserError(f"cannot open UEFI firmware file ({opts.fw})", hint="give the OVMF firmware with --fw")
    hyperkit = find_hyperkit(opts.hyperkit, host.which)
    state = Path(opts.state or boot.prefix + "-state")
    plan = Plan(f"linuxkit run hyperkit {opts.path}")
    plan.add(MakeDir(state))
    isos = list(boot.isos)
    if data is not None:
        plan.add(data_iso(state, data))
        isos.append(str(state / "data.iso"))
    vpnkit_uuid = _vpnkit_uuid(opts, state, host, plan)
    cmdline = read_cmdline(boot.prefix) if boot.kind != "iso" else ""

    disks: list[dict[str, Data]] = []
    kernel = initrd = bootrom = ""
    if boot.kind == "kernel":
        kernel, initrd = boot.prefix + "-kernel", boot.prefix + "-initrd.img"
    elif boot.kind == "squashfs":
        kernel = boot.prefix + "-kernel"
        disks.append({"path": boot.prefix + "-squashfs.img", "size": 0, "format": "", "trim": False})
        cmdline += " root=/dev/vda"
    else:
        bootrom = opts.fw
    for i, d in enumerate(opts.disks):
        disks.append(_disk(i, d, state, plan))

    vsock_ports = _ports(opts.vsock_ports)
    net = _networking(opts, state, host, plan)
    vsock_ports += net.extra_vsock_ports
    preferred = _preferred_ip(opts.ip)
    _publish_check(opts, net)

    # buildArgs: fixed slots first, then one PCI slot per device in the library's order
    argv = [hyperkit, "-A", "-u", "-F", str(state / "hyperkit.pid"), "-c", str(opts.cpus), "-m", f"{opts.mem}M"]
    argv += ["-s", "0:0,hostbridge", "-s", "31,lpc"]
    slot = 1
    if net.vpnkit_sock:
        extra = f",uuid={vpnkit_uuid}" + (f",preferred_ipv4={preferred}" if preferred else "")
        argv += ["-s", f"{slot}:0,virtio-vpnkit,path={net.vpnkit_sock}{extra}"]
        slot += 1
    if net.vmnet:
        argv += ["-s", f"{slot}:0,virtio-net"]
        slot += 1
    argv += ["-U", host.vm_uuid]
    for disk in disks:
        argv += ["-s", f"{slot}:0,{_disk_argument(disk)}"]
        slot += 1
    vsock = f"{slot},virtio-sock,guest_cid={VSOCK_GUEST_CID},path={state}"
    if vsock_ports:
        vsock += ",guest_forwards=" + ";".join(str(p) for p in vsock_ports)
    argv += ["-s", vsock]
    slot += 1
    for iso in isos:
        argv += ["-s", f"{slot},ahci-cd,{iso}"]
        slot += 1
    argv += ["-s", f"{slot},virtio-rnd"]
    slot += 1
    for share in net.sockets_9p:
        argv += ["-s", f"{slot},virtio-9p,path={share['path']},tag={share['tag']}"]
        slot += 1
    stdio = not opts.console_file and host.stdout_is_terminal
    argv += ["-l", "com1," + ("stdio" if stdio else f"autopty={state}/tty") + f",log={state}/console-ring"]
    if bootrom:
        argv += ["-f", f"bootrom,{bootrom},,"]
    else:
        argv += ["-f", f"kexec,{kernel},{initrd},earlyprintk=serial {cmdline}"]

    config: dict[str, Data] = {
        "hyperkit": hyperkit,
        "argv0": "",
        "state_dir": str(state),
        "vpnkit_sock": net.vpnkit_sock,
        "vpnkit_uuid": vpnkit_uuid,
        "vpnkit_preferred_ipv4": preferred,
        "uuid": host.vm_uuid,
        "disks": [{k: v for k, v in d.items() if k != "qcow"} for d in disks] or None,
        "iso": isos or None,
        "vsock": True,
        "vsock_dir": str(state),
        "vsock_ports": vsock_ports,
        "vsock_guest_cid": VSOCK_GUEST_CID,
        "vmnet": net.vmnet,
        "9p_sockets": net.sockets_9p or None,
        "kernel": kernel,
        "initrd": initrd,
        "bootrom": bootrom,
        "cpus": opts.cpus,
        "memory": opts.mem,
        "console": 1 if opts.console_file else 0,
    }
    console_tty = str(state / "tty") if not opts.console_file and not host.stdout_is_terminal else None
    plan.add(
        Call(
            "linuxkit.run.hyperkit:run_vm",
            {"argv": list(argv), "state": str(state), "console_tty": console_tty, "state_record": config},
        )
    )
    return HyperkitPlan(plan, state, tuple(argv), config)


# --- the last step: hyperkit itself ---------------------------------------------------------------

#: how long the state recorder waits for hyperkit's pid file; how long its threads get to end after hyperkit
PID_WAIT = 60.0
THREAD_GRACE = 2.0
#: hyperkit's exit codes for the ways a guest ends (bhyve's vmexit_suspend); others are failures
GUEST_ENDS = {0: "reset", 1: "powered off", 2: "halted"}


def _record_state(state: str, record: dict[str, Data], argv: list[str], ended: threading.Event) -> threading.Thread:
    """Remove a stale ``hyperkit.pid``, then (in a thread) wait for hyperkit to write its new one and record
    ``STATE/hyperkit.json`` with that pid, as the library's ``writeState`` does; gives up once ``ended``."""
    pidfile = Path(state, "hyperkit.pid")
    pidfile.unlink(missing_ok=True)

    def wait_and_write() -> None:
        deadline = time.monotonic() + PID_WAIT
        while True:
            try:
                pid = int(pidfile.read_text().strip())
            except (OSError, ValueError):
                if ended.is_set() or time.monotonic() > deadline:
                    log.warn(f"hyperkit wrote no {pidfile}: {state}/hyperkit.json not written")
                    return
                ended.wait(0.05)
                continue
            full = {**record, "pid": pid, "arguments": argv[1:], "cmdline": " ".join(argv)}
            execute(Plan("hyperkit state", [WriteFile(Path(state, "hyperkit.json"), marshal(full))]))
            return

    thread = threading.Thread(target=wait_and_write, name="hyperkit-state", daemon=True)
    thread.start()
    return thread


def _copy_console(tty: str, ended: threading.Event) -> threading.Thread:
    """Copy the VM's console pty (made by hyperkit once it runs) to our stdout, from a thread that ends with the
    pty (or once ``ended`` if hyperkit never made one)."""

    def copy() -> None:
        while True:
            try:
                fd = os.open(tty, os.O_RDONLY | os.O_NOCTTY)
                break
            except OSError:
                if ended.wait(0.01):
                    return
        try:
            while chunk := os.read(fd, 65536):
                os.write(1, chunk)
        except OSError:
            pass  # the pty is gone when hyperkit exits
        finally:
            os.close(fd)

    thread = threading.Thread(target=copy, name="hyperkit-console", daemon=True)
    thread.start()
    return thread


def run_vm(data: Data) -> None:
    """Plan step ``{"argv", "state", "console_tty", "state_record"}``: run hyperkit in the foreground (our
    terminal is its console, or ``console_tty`` is copied to our stdout), ``STATE/hyperkit.json`` written once
    it runs; a guest that powers off, halts or resets is a normal end."""
    assert isinstance(data, dict)
    argv, state, tty, record = data["argv"], data["state"], data["console_tty"], data["state_record"]
    assert isinstance(argv, list) and isinstance(state, str) and isinstance(record, dict)
    command = [str(a) for a in argv]
    ended = threading.Event()
    threads = [_record_state(state, record, command, ended)]
    if isinstance(tty, str):
        Path(tty).unlink(missing_ok=True)  # a link to the last run's pty: another program may own that pty now
        threads.append(_copy_console(tty, ended))
    try:
        code = run(command, check=False).returncode
    finally:
        ended.set()
        for thread in threads:
            thread.join(THREAD_GRACE)
    if code not in GUEST_ENDS:
        raise BuildError(f"cannot run hyperkit: exit status {code}", hint="command: " + shlex.join(command))
    log.debug(f"hyperkit: the guest {GUEST_ENDS[code]}")


def run_hyperkit(opts: HyperkitOptions, host: Host) -> int:
    """Build the plan and run it: hyperkit in the foreground; vpnkit (if this run started one) stopped after."""
    planned = build_plan(opts, host)
    log.debug("hyperkit plan:\n" + render(planned.plan))
    done = execute(planned.plan)
    for proc in done.background:
        proc.terminate()
    return 0
