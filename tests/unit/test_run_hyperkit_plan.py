"""``run hyperkit``: the whole plan (state files, disks, vpnkit, the hyperkit command line) for upstream's main flag
combinations, compared with golden files (tests/unit/data/run_plans/hyperkit/*.txt; the README there says what
upstream's run_hyperkit.go and the hyperkit Go library run for the same flags); the checks before anything runs;
and the executor's wiring with a fake hyperkit and vpnkit (only that the steps reach the runner in order and a
failure cleans up: the disks and the user-data CD are made for real)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from linuxkit.errors import BuildError, UserError
from linuxkit.run.disks import parse_disk
from linuxkit.run.hyperkit import DEFAULT_FW, Host, HyperkitOptions, build_plan, run_hyperkit
from linuxkit.run.plan import Run, render

GOLDEN = Path(__file__).parent / "data" / "run_plans" / "hyperkit"
UPDATE = os.environ.get("LINUXKIT_UPDATE_RUN_PLANS") == "1"
VM_UUID = "11111111-2222-3333-4444-555555555555"
NEW_VPNKIT_UUID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
CMDLINE = "console=ttyS0 console=hvc0 page_poison=1"
TOOLS = {"hyperkit": "/usr/local/bin/hyperkit", "vpnkit": "/usr/local/bin/vpnkit"}


@pytest.fixture
def image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A built image's files (kernel+initrd, squashfs, ISO), Docker Desktop's sockets under a fake $HOME."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    (tmp_path / "vm-kernel").write_bytes(b"kernel")
    (tmp_path / "vm-initrd.img").write_bytes(b"initrd")
    (tmp_path / "vm-squashfs.img").write_bytes(b"squashfs")
    (tmp_path / "vm-cmdline").write_text(CMDLINE)
    (tmp_path / "vm-efi.iso").write_bytes(b"iso")
    (tmp_path / "UEFI.fd").write_bytes(b"firmware")
    docker = tmp_path / "home" / "Library/Containers/com.docker.docker/Data"
    docker.mkdir(parents=True)
    (docker / "vpnkit.eth.sock").touch()
    (docker / "vpnkit.port.sock").touch()
    return tmp_path


def _host(image: Path, *, terminal: bool = True) -> Host:
    return Host(
        which=TOOLS.get,
        home=str(image / "home"),
        stdout_is_terminal=terminal,
        vm_uuid=VM_UUID,
        new_vpnkit_uuid=NEW_VPNKIT_UUID,
    )


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text(), f"plan differs from {path} (LINUXKIT_UPDATE_RUN_PLANS=1 rewrites it)"


CASES: dict[str, tuple[dict[str, object], bool]] = {
    # name: (options besides path, stdout is a terminal)
    "kernel_docker_for_mac": ({}, True),
    "kernel_vpnkit_started": (
        {"networking": "vpnkit", "data": "user data", "vsock_ports": "2375,2376", "ip": "192.168.65.9"},
        False,
    ),
    "kernel_vpnkit_sockets": (
        {
            "networking": "vpnkit,/var/run/eth.sock,/var/run/port.sock",
            "vpnkit_uuid": "01234567-89ab-cdef-0123-456789abcdef",
        },
        True,
    ),
    "iso_efi": (
        {
            "path": "vm-efi.iso",
            "iso": True,
            "uefi": True,
            "fw": "UEFI.fd",
            "networking": "none",
            "state": "elsewhere",
            "cpus": 2,
            "mem": 2048,
        },
        True,
    ),
    "squashfs_vmnet_disks": (
        {
            "squashfs": True,
            "networking": "vmnet",
            "console_file": True,
            "disks": ("size=4G", "FILE/data.qcow2,size=512M", "file=FILE/old.img"),
        },
        True,
    ),
}


def _options(image: Path, extra: dict[str, object]) -> HyperkitOptions:
    values = {"path": str(image / "vm"), **extra}
    values["path"] = str(image / str(values["path"]))
    for key in ("fw", "state", "data_file"):
        if key in values:
            values[key] = str(image / str(values[key]))
    if "disks" in values:
        specs = values["disks"]
        assert isinstance(specs, tuple)
        values["disks"] = tuple(parse_disk(str(s).replace("FILE", str(image))) for s in specs)
    return HyperkitOptions(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(CASES))
def test_plan_matches_golden(image: Path, name: str) -> None:
    extra, terminal = CASES[name]
    (image / "old.img").write_bytes(b"\0" * 1024)  # an existing raw disk: used as it is
    planned = build_plan(_options(image, extra), _host(image, terminal=terminal))
    _check_golden(name, render(planned.plan, {image: "$DIR"}))


def test_argv_is_upstreams_for_a_kernel_boot(image: Path) -> None:
    """buildArgs of the hyperkit library for run_hyperkit.go's defaults (docker-for-mac networking, stdio console),
    written out by hand from hyperkit.go: the slots, Docker Desktop's vpnkit (no 9P share, no forwarded vsock port:
    run_hyperkit.go adds those for --networking vpnkit only), the kexec line."""
    planned = build_plan(_options(image, {}), _host(image))
    state, data = image / "vm-state", image / "home/Library/Containers/com.docker.docker/Data"
    assert list(planned.argv) == [
        "/usr/local/bin/hyperkit", "-A", "-u", "-F", f"{state}/hyperkit.pid", "-c", "1", "-m", "1024M",
        "-s", "0:0,hostbridge", "-s", "31,lpc",
        "-s", f"1:0,virtio-vpnkit,path={data}/vpnkit.eth.sock,uuid={NEW_VPNKIT_UUID}",
        "-U", VM_UUID,
        "-s", f"2,virtio-sock,guest_cid=3,path={state}",
        "-s", "3,virtio-rnd",
        "-l", f"com1,stdio,log={state}/console-ring",
        "-f", f"kexec,{image}/vm-kernel,{image}/vm-initrd.img,earlyprintk=serial {CMDLINE}",
    ]  # fmt: skip


def test_docker_desktops_old_socket_names_come_first(image: Path) -> None:
    data = image / "home/Library/Containers/com.docker.docker/Data"
    (data / "s50").touch()
    planned = build_plan(_options(image, {}), _host(image))
    assert f"1:0,virtio-vpnkit,path={data}/s50,uuid={NEW_VPNKIT_UUID}" in planned.argv


def test_a_kept_vpnkit_uuid_is_reused_and_not_rewritten(image: Path) -> None:
    (image / "vm-state").mkdir()
    (image / "vm-state" / "vpnkit.uuid").write_text("01234567-89ab-cdef-0123-456789abcdef")
    planned = build_plan(_options(image, {}), _host(image))
    assert "uuid=01234567-89ab-cdef-0123-456789abcdef" in " ".join(planned.argv)
    assert "vpnkit.uuid" not in render(planned.plan)


def test_an_existing_smaller_qcow2_is_grown(image: Path) -> None:
    disk = image / "small.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    planned = build_plan(_options(image, {"disks": (f"{disk},size=1G",)}), _host(image))
    assert f"run: qemu-img resize -q -f qcow2 {disk} 1024M" in render(planned.plan)
    same = build_plan(_options(image, {"disks": (f"{disk},size=64M",)}), _host(image))
    assert "resize" not in render(same.plan)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"iso": True}, "hyperkit requires --uefi to be set to boot an ISO"),
        ({"iso": True, "kernel": True}, "please specify only one boot method"),
        ({"squashfs": True, "iso": True}, "please specify only one boot method"),
        ({"path": "missing"}, "cannot find kernel file"),
        ({"path": "vm-efi.iso", "iso": True, "uefi": True, "fw": "missing.fd"}, "cannot open UEFI firmware file"),
        ({"data": "a", "data_file": "vm-cmdline"}, "cannot specify both --data and --data-file"),
        ({"networking": "bridge"}, "invalid networking mode: bridge"),
        ({"ip": "fe80::1"}, "unable to parse IPv4 address"),
        ({"vsock_ports": "22,x"}, "unable to parse vsock-ports"),
        ({"disks": ("format=raw",)}, "disk specified with no size or name"),
        ({"disks": ("FILE/none.img",)}, "does not exist"),
        ({"publish": ("8080:80",), "networking": "vmnet"}, 'requires "docker-for-mac" or "vpnkit"'),
        ({"publish": ("8080:80",), "networking": "vpnkit,/tmp/eth.sock"}, "VPNKit Port socket path is required"),
        ({"publish": ("8080:80",)}, "--publish is not supported"),
    ],
)
def test_checks_before_anything_runs(image: Path, extra: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace("+", r"\+")):
        build_plan(_options(image, extra), _host(image))
    assert not (image / "vm-state").exists()


def test_missing_programs_are_named(image: Path) -> None:
    with pytest.raises(UserError, match="could not find hyperkit executable") as exc:
        build_plan(_options(image, {}), Host(which=lambda _: None, home=str(image / "home")))
    assert "--hyperkit" in (exc.value.hint or "")
    no_vpnkit = Host(which=lambda n: TOOLS["hyperkit"] if n == "hyperkit" else None, home=str(image))
    with pytest.raises(UserError, match="unable to find vpnkit binary"):
        build_plan(_options(image, {"networking": "vpnkit"}), no_vpnkit)
    with pytest.raises(UserError, match="Docker for Mac network sockets"):
        build_plan(_options(image, {}), Host(which=TOOLS.get, home=str(image / "nohome")))


def test_the_cli_and_the_library_agree_on_the_firmware() -> None:
    from linuxkit.cli import run_hyperkit_cmd

    assert run_hyperkit_cmd.DEFAULT_FW == DEFAULT_FW


# --- the executor's wiring: fake hyperkit and vpnkit that record what they are given -------------------------

FAKE_HYPERKIT = """#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(["hyperkit", args]) + "\\n")
open(args[args.index("-F") + 1], "w").write(str(os.getpid()))
sys.exit(int(os.environ.get("FAKE_EXIT", "1")))
"""

FAKE_VPNKIT = """#!{python}
import json, os, signal, socket, sys, time
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(["vpnkit", args]) + "\\n")
socks = []
for flag in ("--ethernet", "--port"):
    s = socket.socket(socket.AF_UNIX)
    s.bind(args[args.index(flag) + 1])
    s.listen()
    socks.append(s)
def bye(*_):
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(json.dumps(["vpnkit", "terminated"]) + "\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
time.sleep(60)
"""


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("hyperkit", FAKE_HYPERKIT), ("vpnkit", FAKE_VPNKIT)):
        (bin_dir / name).write_text(text.format(python=sys.executable))
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "fake.log"
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return log


def _calls(log: Path) -> list[list[object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_executor_runs_the_steps_in_order(image: Path, fakes: Path) -> None:
    opts = _options(
        image,
        {"networking": "vpnkit", "data": "user data", "disks": ("size=1500M", "FILE/new.qcow2,size=256M")},
    )
    host = Host(which=shutil.which, home=str(image / "home"), stdout_is_terminal=True, vm_uuid=VM_UUID)
    planned = build_plan(opts, host)
    threads = threading.active_count()
    assert run_hyperkit(opts, host) == 0  # the fake exits 1: the guest powered off
    assert threading.active_count() == threads  # the state recorder has ended
    state = image / "vm-state"
    calls = _calls(fakes)
    # vpnkit first, then hyperkit with exactly the plan's argv; vpnkit terminated at the end
    assert [c[0] for c in calls] == ["vpnkit", "hyperkit", "vpnkit"]
    vpnkit_runs = [list(s.argv[1:]) for s in planned.plan.steps if isinstance(s, Run)]
    assert calls[0][1] == vpnkit_runs[0]
    assert calls[1][1] == list(planned.argv[1:])
    assert calls[2][1] == "terminated"
    # the steps before it, for real: the data CD, the vpnkit UUID, a raw disk grown in two steps, a qcow2 disk
    assert (state / "data.iso").read_bytes()[32769:32774] == b"CD001"
    assert (state / "vpnkit.uuid").stat().st_mode & 0o777 == 0o600
    assert (state / "disk.raw").stat().st_size == 1500 * 1024 * 1024
    assert (state / "disk.raw").stat().st_blocks == 0  # sparse
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(image / "new.qcow2")],
                                     capture_output=True, check=True).stdout)  # fmt: skip
    assert (info["format"], info["virtual-size"]) == ("qcow2", 256 * 1024 * 1024)
    record = json.loads((state / "hyperkit.json").read_text())
    assert record["pid"] == int((state / "hyperkit.pid").read_text())
    assert record["arguments"] == list(planned.argv[1:])
    assert list(record)[-3:] == ["pid", "arguments", "cmdline"]


def test_a_stale_console_link_is_removed_before_hyperkit_starts(image: Path, fakes: Path) -> None:
    (image / "vm-state").mkdir()
    (image / "vm-state" / "tty").symlink_to("/dev/null")  # the last run's pty
    host = Host(which=shutil.which, home=str(image / "home"), stdout_is_terminal=False)
    threads = threading.active_count()
    assert run_hyperkit(_options(image, {"networking": "none"}), host) == 0
    assert not (image / "vm-state" / "tty").is_symlink()
    assert threading.active_count() == threads  # the console copier gave up with hyperkit


def test_executor_failure_stops_vpnkit_and_says_why(image: Path, fakes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_EXIT", "3")  # a triple fault
    host = Host(which=shutil.which, home=str(image / "home"), stdout_is_terminal=True)
    with pytest.raises(BuildError, match="cannot run hyperkit: exit status 3"):
        run_hyperkit(_options(image, {"networking": "vpnkit"}), host)
    assert [c[0] for c in _calls(fakes)] == ["vpnkit", "hyperkit", "vpnkit"]
    assert _calls(fakes)[-1][1] == "terminated"


def test_cli_refuses_other_systems_and_has_help(tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "linuxkit", *args], capture_output=True, text=True, cwd=tmp_path)

    helped = cli("run", "hyperkit", "--help")
    assert helped.returncode == 0
    for flag in ("--vpnkit-uuid", "--vsock-ports", "--console-file", "--networking", "--fw", "--disk"):
        assert flag in helped.stdout
    if sys.platform != "darwin":
        refused = cli("run", "hyperkit", "--console-file=true", "vm")
        assert refused.returncode == 2
        assert "run hyperkit needs macOS" in refused.stderr and "Traceback" not in refused.stderr
