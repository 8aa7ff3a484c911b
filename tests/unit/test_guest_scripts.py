"""The guest's init and runc runner scripts, run on the host under busybox sh with a fake runc."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.guest_harness import BUSYBOX, INIT_FILES, RUNC_FILES, Guest, wait_for

pytestmark = pytest.mark.skipif(not BUSYBOX.exists(), reason="needs /bin/busybox (Debian package busybox-static)")

SERVICE = RUNC_FILES / "usr" / "bin" / "service"
ONBOOT = RUNC_FILES / "etc" / "init.d" / "010-onboot"
ONSHUTDOWN = RUNC_FILES / "etc" / "shutdown.d" / "010-onshutdown"
SERVICES_BOOT = RUNC_FILES / "etc" / "init.d" / "020-services"
SERVICES_SHUTDOWN = RUNC_FILES / "etc" / "shutdown.d" / "020-services"
RC_INIT = INIT_FILES / "bin" / "rc.init"
RC_SHUTDOWN = INIT_FILES / "bin" / "rc.shutdown"

EXECUTABLES = [
    INIT_FILES / "init",
    RC_INIT,
    RC_SHUTDOWN,
    INIT_FILES / "etc" / "init.d" / "000-issue",
    INIT_FILES / "etc" / "init.d" / "005-volumes",
    ONBOOT,
    SERVICES_BOOT,
    ONSHUTDOWN,
    SERVICES_SHUTDOWN,
    SERVICE,
    RUNC_FILES / "usr" / "libexec" / "linuxkit" / "run-bundles",
    RUNC_FILES / "usr" / "libexec" / "linuxkit" / "supervise",
]


@pytest.fixture
def guest(tmp_path: Path) -> Iterator[Guest]:
    g = Guest(tmp_path / "root")
    yield g
    g.kill_leftovers()


def shell_scripts() -> list[Path]:
    files = [p for base in (INIT_FILES, RUNC_FILES) for p in sorted(base.rglob("*")) if p.is_file()]
    return [p for p in files if p.read_bytes().startswith(b"#!") or p.suffix == ".sh"]


# --- static checks ---------------------------------------------------------------------------------------------


def test_every_script_parses_under_busybox_sh() -> None:
    scripts = shell_scripts()
    assert len(scripts) >= len(EXECUTABLES)
    for script in scripts:
        proc = subprocess.run([str(BUSYBOX), "sh", "-n", str(script)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"{script}: {proc.stderr}"


def test_entry_points_are_executable_and_use_sh() -> None:
    for script in EXECUTABLES:
        assert os.access(script, os.X_OK), f"{script} is not executable"
        first = script.read_text().splitlines()[0]
        assert first in ("#!/bin/sh", "#!/bin/busybox sh"), f"{script}: {first}"
        assert "bash" not in script.read_text(), f"{script} mentions bash"


def test_inittab_wires_rc_init_and_rc_shutdown() -> None:
    lines = [ln for ln in (INIT_FILES / "etc" / "inittab").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines == [
        "::sysinit:/bin/rc.init",
        "::ctrlaltdel:/bin/rc.shutdown reboot",
        "::shutdown:/bin/rc.shutdown noop",
    ]
    assert "Welcome to LinuxKit" in (INIT_FILES / "etc" / "issue").read_text()


# --- onboot / onshutdown ---------------------------------------------------------------------------------------


def test_onboot_runs_bundles_in_order_and_survives_a_failure(guest: Guest) -> None:
    guest.bundle("onboot", "001-second", plan="3 0")
    guest.bundle("onboot", "000-first")
    guest.bundle("onboot", "002-third")
    proc = guest.sh(ONBOOT)
    assert proc.returncode == 1
    assert [c.split()[-1] for c in guest.runc_calls()] == ["000-first", "001-second", "002-third"]
    assert all(c.startswith("run --bundle ") for c in guest.runc_calls())
    assert guest.runc_calls()[0] == f"run --bundle {guest.root}/containers/onboot/000-first 000-first"
    # every log reaches the console (as upstream); the failure is flagged
    assert "001-second FAILED (exit 3)" in proc.stdout
    assert "fake 001-second stderr" in proc.stdout
    assert "000-first FAILED" not in proc.stdout
    assert proc.stdout.index("000-first") < proc.stdout.index("001-second FAILED")
    logs = guest.root / "run" / "log" / "onboot"
    assert "fake 000-first stdout run 1" in guest.read(logs / "000-first.log")
    assert "exit status 3" in guest.read(logs / "001-second.log")
    link = guest.root / "var" / "log" / "onboot"
    assert link.is_symlink() and os.readlink(link) == str(logs)
    # each rootfs is unmounted after its run, as upstream's cleanup
    assert guest.stub_calls() == [
        f"umount $ROOT/containers/onboot/{n}/rootfs" for n in ("000-first", "001-second", "002-third")
    ]


def test_onboot_without_containers_does_nothing(guest: Guest) -> None:
    proc = guest.sh(ONBOOT)
    assert proc.returncode == 0
    assert guest.runc_calls() == []


def test_runtime_json_mounts_mkdir_and_cgroups(guest: Guest) -> None:
    b = "/containers/onboot/000-rw"
    runtime = {
        "mounts": [
            {"source": "tmpfs", "type": "tmpfs", "destination": f"{b}/tmp"},
            {"destination": f"{b}/tmp", "options": ["remount", "private"]},
            {
                "source": "overlay",
                "type": "overlay",
                "destination": f"{b}/rootfs",
                "options": [f"lowerdir={b}/lower", f"upperdir={b}/tmp/upper", f"workdir={b}/tmp/work"],
            },
            {"source": "/var/lib/data", "destination": "data", "options": ["rbind", "rshared"]},
        ],
        "mkdir": ["/var/lib/data", "in/rootfs"],
        "cgroups": ["podruntime/x"],
    }
    path = guest.bundle("onboot", "000-rw", runtime=runtime)
    (guest.root / "sys/fs/cgroup/cgroup.controllers").write_text("cpu memory\n")
    proc = guest.sh(ONBOOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert guest.stub_calls() == [
        f"mount -t tmpfs tmpfs $ROOT{b}/tmp",
        f"mount --make-private $ROOT{b}/tmp",
        f"mount -t overlay -o lowerdir=$ROOT{b}/lower,upperdir=$ROOT{b}/tmp/upper,workdir=$ROOT{b}/tmp/work "
        f"overlay $ROOT{b}/rootfs",
        f"mount -o rbind $ROOT/var/lib/data $ROOT{b}/rootfs/data",
        f"mount --make-rshared $ROOT{b}/rootfs/data",
        f"umount $ROOT{b}/rootfs",
    ]
    assert (path / "tmp" / "upper").is_dir() and (path / "tmp" / "work").is_dir()
    assert (guest.root / "var/lib/data").is_dir()
    assert (path / "rootfs/in/rootfs").is_dir()
    assert (guest.root / "sys/fs/cgroup/podruntime/x").is_dir()
    assert guest.runc_calls() == [f"run --bundle {path} 000-rw"]


def test_cgroup_v1_creates_the_cgroup_in_every_hierarchy(guest: Guest) -> None:
    for h in ("cpu", "memory"):
        (guest.root / "sys/fs/cgroup" / h).mkdir()
    guest.bundle("onboot", "000-cg", runtime={"cgroups": ["podruntime/y"]})
    assert guest.sh(ONBOOT).returncode == 0
    assert (guest.root / "sys/fs/cgroup/cpu/podruntime/y").is_dir()
    assert (guest.root / "sys/fs/cgroup/memory/podruntime/y").is_dir()


def test_failed_mount_skips_the_container(guest: Guest) -> None:
    guest.bundle("onboot", "000-bad", runtime={"mounts": [{"source": "x", "type": "ext4", "destination": "/mnt/x"}]})
    guest.bundle("onboot", "001-good")
    guest.mount.write_text('#!/bin/busybox sh\necho "mount $*" >>"$STUB_LOG"\nexit 32\n')
    proc = guest.sh(ONBOOT)
    assert proc.returncode == 1
    assert "000-bad FAILED" in proc.stdout and "failed to mount x" in proc.stdout
    assert [c.split()[-1] for c in guest.runc_calls()] == ["001-good"]


def test_unparsable_runtime_json_fails_that_bundle_only(guest: Guest) -> None:
    path = guest.bundle("onboot", "000-broken")
    (path / "runtime.json").write_text("{not json")
    guest.bundle("onboot", "001-fine")
    proc = guest.sh(ONBOOT)
    assert proc.returncode == 1
    assert "cannot parse runtime config" in proc.stdout
    assert [c.split()[-1] for c in guest.runc_calls()] == ["001-fine"]


def test_runtime_json_escapes_nulls_and_bad_shapes(guest: Guest) -> None:
    b = "/containers/onboot/000-esc"
    runtime = {
        "mounts": [
            {"type": None, "source": "/data dir\\x", "destination": "d\u00e9st", "options": ["rbind"]},
            {"destination": f"{b}/rootfs/ro", "options": ["remount", "ro"]},
        ],
        "mkdir": ["new\tdir"],
        "bindNS": {"net": None, "ipc": ""},
    }
    path = guest.bundle("onboot", "000-esc", runtime=runtime)
    guest.bundle("onboot", "001-bad", runtime={"mounts": "not a list"})
    proc = guest.sh(ONBOOT)
    assert proc.returncode == 1  # 001-bad
    assert guest.stub_calls()[:2] == [
        f"mount -o rbind $ROOT/data dir\\x $ROOT{b}/rootfs/dést",
        f"mount -o remount,ro $ROOT{b}/rootfs/ro",
    ]
    assert (path / "rootfs" / "new\tdir").is_dir()
    assert "mounts is not an array" in proc.stdout
    assert guest.runc_calls() == [f"run --bundle {path} 000-esc"]  # no bindNS: run, not create/start


def test_bindns_and_interfaces_use_create_then_start(guest: Guest) -> None:
    runtime = {
        "bindNS": {"uts": "/run/ns/uts", "net": "/run/netns/svc", "ipc": ""},
        "interfaces": [{"name": "eth1"}, {"name": "dm0", "add": "dummy"}],
    }
    path = guest.bundle("onboot", "000-net", runtime=runtime, plan="0 0.3")
    start = time.monotonic()
    proc = guest.sh(ONBOOT, LINUXKIT_CMDLINE=str(guest.cmdline))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert time.monotonic() - start >= 0.3  # waited for the container process to exit
    calls = guest.runc_calls()
    pidfile = calls[0].split("--pid-file ")[1].split()[0]
    assert calls == [f"create --bundle {path} --pid-file {pidfile} 000-net", "start 000-net", "delete 000-net"]
    stubs = guest.stub_calls()
    pid = stubs[0].split()[-1]
    assert stubs == [
        f"ip link set eth1 netns {pid}",
        "ip link add dm0 type dummy",
        f"ip link set dm0 netns {pid}",
        f"mount -o bind /proc/{pid}/ns/net $ROOT/run/netns/svc",
        f"mount -o bind /proc/{pid}/ns/uts $ROOT/run/ns/uts",
        "umount $ROOT/containers/onboot/000-net/rootfs",
    ]
    assert (guest.root / "run/netns/svc").is_file()


def test_veth_with_busybox_ip_is_reported_unsupported(guest: Guest) -> None:
    guest.bundle("onboot", "000-veth", runtime={"interfaces": [{"name": "veth0", "peer": "veth1"}]})
    proc = guest.sh(ONBOOT)
    assert proc.returncode == 1
    assert "UNSUPPORTED interface type veth" in proc.stdout
    assert [c.split()[0] for c in guest.runc_calls()] == ["create", "delete"]


def test_veth_with_iproute2(guest: Guest) -> None:
    guest.ip.write_text(
        '#!/bin/busybox sh\n[ "$1" = -V ] && { echo "ip utility, iproute2-6.1.0"; exit 0; }\n'
        'echo "ip $*" >>"$STUB_LOG"\n'
    )
    guest.bundle("onboot", "000-veth", runtime={"interfaces": [{"name": "veth0", "peer": "veth1"}]})
    assert guest.sh(ONBOOT).returncode == 0
    stubs = guest.stub_calls()
    assert stubs[0] == "ip link add veth0 type veth peer name veth1"
    assert re.fullmatch(r"ip link set veth0 netns \d+", stubs[1])


def test_runc_debug_from_kernel_cmdline(guest: Guest) -> None:
    guest.cmdline.write_text("console=ttyS0 linuxkit.runc_debug=1\n")
    guest.bundle("onboot", "000-dbg")
    assert guest.sh(ONBOOT).returncode == 0
    assert guest.runc_calls() == [f"--debug run --bundle {guest.root}/containers/onboot/000-dbg 000-dbg"]


def test_onshutdown_runs_in_order(guest: Guest) -> None:
    for name in ("001-b", "000-a", "010-c"):
        guest.bundle("onshutdown", name)
    guest.bundle("onboot", "000-not-now")
    assert guest.sh(ONSHUTDOWN).returncode == 0
    assert [c.split()[-1] for c in guest.runc_calls()] == ["000-a", "001-b", "010-c"]
    assert (guest.root / "run/log/onshutdown/010-c.log").is_file()


# --- services ----------------------------------------------------------------------------------------------------


def service(guest: Guest, *args: str) -> subprocess.CompletedProcess[str]:
    proc: subprocess.CompletedProcess[str] = guest.sh(SERVICE, *args)
    return proc


def runs(guest: Guest, name: str) -> int:
    return sum(1 for c in guest.runc_calls() if c.startswith("run ") and c.endswith(f" {name}"))


def wait_state(guest: Guest, name: str, state: str, timeout: float = 8) -> None:
    ok = wait_for(lambda: guest.service_state(name, "state") == state, timeout)
    assert ok, f"{name}: state {guest.service_state(name, 'state')!r}, wanted {state!r}; log:\n" + guest.read(
        guest.root / "var/log" / f"{name}.log"
    )


def test_failing_service_restarts_with_growing_backoff_up_to_max(guest: Guest) -> None:
    guest.bundle("services", "flaky", plan="1 0", annotations={"org.linuxkit.restart.max": "3"})
    assert guest.sh(SERVICES_BOOT, LINUXKIT_BACKOFF_SCALE="0.1").returncode == 0
    wait_state(guest, "flaky", "failed")
    assert runs(guest, "flaky") == 4  # first run + 3 restarts
    assert guest.service_state("flaky", "restarts") == "3"
    times = guest.runc_call_times("run ")
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # backoff 1 s, 2 s, 4 s scaled by 0.1; allow scheduling slack upwards only
    for gap, want in zip(gaps, (0.1, 0.2, 0.4), strict=True):
        assert gap >= want - 0.02, gaps
    assert gaps[2] > gaps[0], gaps  # strict ordering of neighbours would be at the mercy of a loaded machine
    log = guest.read(guest.root / "var/log/flaky.log")
    assert [m for m in re.findall(r"restarting in (\d+)s", log)] == ["1", "2", "4"]
    assert "reached org.linuxkit.restart.max=3" in log
    assert "fake flaky stderr" in log
    console = guest.read(guest.console)
    assert "service flaky: exited with status 1" in console and "service flaky: restarting in 2s" in console


def test_backoff_caps_at_30s_and_resets_after_a_long_run(guest: Guest) -> None:
    # scale 0.01: 60 s of run time = 0.6 s; the 7th run lasts 0.7 s so the next backoff starts again at 1 s
    plan = "\n".join(["1 0"] * 6 + ["1 0.7", "1 0"])
    guest.bundle("services", "svc", plan=plan, annotations={"org.linuxkit.restart.max": "7"})
    assert guest.sh(SERVICE, "start", "svc", LINUXKIT_BACKOFF_SCALE="0.01").returncode == 0
    wait_state(guest, "svc", "failed", timeout=10)
    log = guest.read(guest.root / "var/log/svc.log")
    assert re.findall(r"restarting in (\d+)s", log) == ["1", "2", "4", "8", "16", "30", "1"]


def test_policy_no_is_not_restarted(guest: Guest) -> None:
    guest.bundle("services", "once", plan="1 0", annotations={"org.linuxkit.restart": "no"})
    assert guest.sh(SERVICES_BOOT).returncode == 0
    wait_state(guest, "once", "failed")
    time.sleep(0.2)
    assert runs(guest, "once") == 1
    assert "not restarting (policy no)" in guest.read(guest.root / "var/log/once.log")


def test_on_failure_leaves_a_clean_exit_alone_but_always_restarts(guest: Guest) -> None:
    guest.bundle("services", "clean", plan="0 0")
    guest.bundle(
        "services",
        "forever",
        plan="0 0",
        annotations={"org.linuxkit.restart": "always", "org.linuxkit.restart.max": "2"},
    )
    assert guest.sh(SERVICES_BOOT).returncode == 0
    wait_state(guest, "clean", "exited")
    wait_state(guest, "forever", "failed")
    assert runs(guest, "clean") == 1
    assert runs(guest, "forever") == 3


def test_unknown_policy_falls_back_to_on_failure(guest: Guest) -> None:
    guest.bundle("services", "odd", plan="1 0\n0 0", annotations={"org.linuxkit.restart": "sometimes"})
    assert service(guest, "start", "odd").returncode == 0
    wait_state(guest, "odd", "exited")
    assert runs(guest, "odd") == 2
    assert "unknown restart policy 'sometimes'" in guest.read(guest.root / "var/log/odd.log")


def test_service_stop_stays_stopped_and_start_brings_it_back(guest: Guest) -> None:
    guest.bundle("services", "web", plan="0 30", annotations={"org.linuxkit.restart": "always"})
    guest.bundle("services", "db", plan="0 30")
    assert guest.sh(SERVICES_BOOT).returncode == 0
    wait_state(guest, "web", "running")
    assert wait_for(lambda: (guest.fake / "web.running").exists())

    listing = service(guest, "list").stdout.splitlines()
    assert listing[0].split() == ["NAME", "STATE", "PID", "RESTARTS"]
    rows = {ln.split()[0]: ln.split() for ln in listing[1:]}
    assert set(rows) == {"db", "web"}
    assert rows["web"][1] == "running" and rows["web"][3] == "0"
    assert rows["web"][2] == (guest.fake / "web.running").read_text().strip()

    start = time.monotonic()
    proc = service(guest, "stop", "web")
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - start < 3
    assert "kill web TERM" in guest.runc_calls()
    assert guest.service_state("web", "state") == "stopped"
    assert guest.service_state("web", "desired") == "stopped"
    time.sleep(0.5)  # "always" would have restarted it by now (backoff 1 s * 0.05)
    assert runs(guest, "web") == 1
    rows = {ln.split()[0]: ln.split() for ln in service(guest, "list").stdout.splitlines()[1:]}
    assert rows["web"][1:3] == ["stopped", "-"]
    assert rows["db"][1] == "running"

    logs = service(guest, "logs", "web")
    assert logs.returncode == 0
    assert "fake web stdout run 1" in logs.stdout and "exited with status 143 (stopped)" in logs.stdout

    assert service(guest, "start", "web").returncode == 0
    wait_state(guest, "web", "running")
    assert wait_for(lambda: runs(guest, "web") == 2)


def test_service_restart_runs_it_again(guest: Guest) -> None:
    guest.bundle("services", "app", plan="0 30")
    assert service(guest, "start", "app").returncode == 0
    assert wait_for(lambda: (guest.fake / "app.running").exists())
    assert service(guest, "restart", "app").returncode == 0
    assert wait_for(lambda: runs(guest, "app") == 2)
    wait_state(guest, "app", "running")


def test_stop_kills_a_service_that_ignores_term(guest: Guest) -> None:
    guest.bundle("services", "stubborn", plan="0 30")
    # a runc whose `kill ... TERM` does nothing: only the KILL after the timeout ends the container
    text = guest.runc.read_text().replace('kill -"${2:-TERM}" "$p"', '[ "$2" = KILL ] && kill -KILL "$p"; exit 0')
    guest.runc.write_text(text)
    assert service(guest, "start", "stubborn").returncode == 0
    assert wait_for(lambda: (guest.fake / "stubborn.running").exists())
    start = time.monotonic()
    proc = guest.sh(SERVICE, "stop", "stubborn", LINUXKIT_STOP_TIMEOUT="1")
    assert 0.9 <= time.monotonic() - start < 4
    assert "did not stop within 1s" in proc.stderr
    assert "bad number" not in proc.stderr  # lk_pid_alive once clobbered the wait loop's counter
    assert "kill --all stubborn KILL" in guest.runc_calls()
    assert wait_for(lambda: guest.service_state("stubborn", "state") == "stopped")


def test_shutdown_stops_all_services(guest: Guest) -> None:
    for name in ("a", "b"):
        guest.bundle("services", name, plan="0 30", annotations={"org.linuxkit.restart": "always"})
    assert guest.sh(SERVICES_BOOT).returncode == 0
    assert wait_for(lambda: (guest.fake / "a.running").exists() and (guest.fake / "b.running").exists())
    assert guest.sh(SERVICES_SHUTDOWN).returncode == 0
    assert guest.service_state("a", "state") == "stopped" and guest.service_state("b", "state") == "stopped"
    time.sleep(0.3)
    assert runs(guest, "a") == 1 and runs(guest, "b") == 1


def test_service_command_errors(guest: Guest) -> None:
    proc = service(guest, "start", "nope")
    assert proc.returncode == 2 and "no such service 'nope'" in proc.stderr
    assert service(guest, "frobnicate").returncode == 2
    assert service(guest).returncode == 2
    assert service(guest, "--help").returncode == 0


def test_service_runtime_prep_runs_once(guest: Guest) -> None:
    path = guest.bundle(
        "services",
        "netsvc",
        plan="1 0\n0 0",
        runtime={
            "mounts": [{"source": "tmpfs", "type": "tmpfs", "destination": "tmp"}],
            "bindNS": {"net": "/run/netns/x"},
        },
    )
    assert service(guest, "start", "netsvc").returncode == 0
    wait_state(guest, "netsvc", "exited")
    mounts = [c for c in guest.stub_calls() if c.startswith("mount ")]
    assert mounts[0] == f"mount -t tmpfs tmpfs {str(path).replace(str(guest.root), '$ROOT')}/rootfs/tmp"
    assert len([m for m in mounts if "-t tmpfs" in m]) == 1  # not again on restart
    assert all(re.fullmatch(r"mount -o bind /proc/\d+/ns/net \$ROOT/run/netns/x", m) for m in mounts[1:])
    assert len(mounts) == 3  # namespace bound after each of the two runs


# --- init package -------------------------------------------------------------------------------------------------


def test_rc_init_runs_init_d_in_order_and_logs_failures(guest: Guest, tmp_path: Path) -> None:
    initd = tmp_path / "init.d"
    initd.mkdir()
    out = tmp_path / "order"
    for name, rc in (("020-c", 0), ("000-a", 0), ("010-b", 4)):
        script = initd / name
        script.write_text(f"#!/bin/sh\necho {name} >>{out}\nexit {rc}\n")
        script.chmod(0o755)
    (initd / "015-plain").write_text(f"echo 015-plain >>{out}\n")  # not executable: run with sh
    (initd / "030-dir").mkdir()
    proc = guest.sh(RC_INIT, "run-parts", str(initd))
    assert proc.returncode == 0
    assert out.read_text().split() == ["000-a", "010-b", "015-plain", "020-c"]
    assert f"rc.init: {initd}/010-b failed (exit 4)" in proc.stdout


def test_rc_init_hostname(guest: Guest) -> None:
    net = guest.root / "sys/class/net/eth0"
    net.mkdir(parents=True)
    (net / "address").write_text("52:54:00:12:34:56\n")
    assert guest.sh(RC_INIT, "hostname").stdout.strip() == "linuxkit-525400123456"
    (guest.root / "etc").mkdir()
    (guest.root / "etc/hostname").write_text("myhost\n")
    assert guest.sh(RC_INIT, "hostname").stdout == "myhost\n"
    (guest.root / "etc/hostname").write_text("  my h*st\t\r\n")  # blanks dropped, no globbing
    assert guest.sh(RC_INIT, "hostname").stdout == "myh*st\n"
    (guest.root / "etc/hostname").write_text(" \n")
    assert guest.sh(RC_INIT, "hostname").stdout == "linuxkit-525400123456\n"
    (net / "address").unlink()
    proc = guest.sh(RC_INIT, "hostname")
    assert proc.returncode == 1 and proc.stdout == ""


def test_rc_shutdown_runs_shutdown_d_unmounts_and_powers_off(guest: Guest, tmp_path: Path) -> None:
    shutd = guest.root / "etc/shutdown.d"
    shutd.mkdir(parents=True)
    out = tmp_path / "order"
    for name, rc in (("010-b", 1), ("000-a", 0)):
        (shutd / name).write_text(f"#!/bin/sh\necho {name} >>{out}\nexit {rc}\n")
        (shutd / name).chmod(0o755)
    (guest.root / "proc/mounts").write_text(
        "proc /proc proc rw 0 0\n/dev/sda1 /var/lib ext4 rw 0 0\noverlay /containers/x/rootfs overlay rw 0 0\n"
        "srv:/x /mnt/nfs nfs4 rw 0 0\ntmpfs /run tmpfs rw 0 0\n"
    )
    poweroff = guest.fake / "poweroff"
    poweroff.write_text('#!/bin/busybox sh\necho "poweroff $*" >>"$STUB_LOG"\n')
    poweroff.chmod(0o755)
    proc = guest.sh(RC_SHUTDOWN, "poweroff", POWEROFF=str(poweroff))
    assert proc.returncode == 0
    assert out.read_text().split() == ["000-a", "010-b"]
    assert "010-b failed (exit 1)" in proc.stdout
    assert guest.stub_calls() == [
        "umount -l /mnt/nfs",
        "umount /containers/x/rootfs",
        "umount /var/lib",
        "poweroff -f",
    ]
    guest.stub_log.write_text("")
    assert guest.sh(RC_SHUTDOWN, "noop", POWEROFF=str(poweroff)).returncode == 0
    assert "poweroff -f" not in guest.stub_calls()


def test_volumes_overlay_mounts(guest: Guest) -> None:
    vols = guest.root / "containers/volumes"
    for name, dirs in (("rw", ("lower", "tmp", "merged")), ("ro", ("lower", "merged")), ("broken", ("lower",))):
        for d in dirs:
            (vols / name / d).mkdir(parents=True)
    proc = guest.sh(INIT_FILES / "etc/init.d/005-volumes")
    assert proc.returncode == 1
    assert "volume broken does not have a merged directory" in proc.stderr
    v = "$ROOT/containers/volumes"
    assert guest.stub_calls() == [
        f"mount -t overlay -o lowerdir={v}/ro/lower,relatime overlay {v}/ro/merged",
        f"mount -t tmpfs -o relatime tmpfs {v}/rw/tmp",
        f"mount -t overlay -o lowerdir={v}/rw/lower,upperdir={v}/rw/tmp/upper,workdir={v}/rw/tmp/work,relatime "
        f"overlay {v}/rw/merged",
    ]


def test_issue_goes_to_each_console(guest: Guest) -> None:
    (guest.root / "etc").mkdir()
    (guest.root / "etc/issue").write_text("Welcome to LinuxKit\n")
    guest.cmdline.write_text("console=tty0 console=ttyS0,115200n8\n")
    (guest.root / "dev/ttyS0").touch()
    (guest.root / "dev/tty0").touch()
    assert guest.sh(INIT_FILES / "etc/init.d/000-issue").returncode == 0
    assert guest.read(guest.root / "dev/ttyS0") == "Welcome to LinuxKit\n"
    assert guest.read(guest.root / "dev/tty0") == "Welcome to LinuxKit\n"


# /proc/consoles as booted: x86 (q35) with upstream's "console=tty0 console=ttyS0 console=ttyAMA0" and arm64's
# virt board with "console=tty0 console=ttyAMA0 console=ttyS0" (the device the last console= names is missing,
# so the kernel made the first registered one, tty0, /dev/console), and arm64 with upstream's order
X86_CONSOLES = "tty0                 -WU (EC p  )    4:1\nttyS0                -W- (E  p a)    4:64\n"
ARM64_CONSOLES = "tty0                 -WU (EC p  )    4:1\nttyAMA0              -W- (E  p a)  204:64\n"
ARM64_UPSTREAM_CONSOLES = "ttyAMA0              -W- (EC p a)  204:64\ntty0                 -WU (E  p  )    4:1\n"


@pytest.mark.parametrize(
    ("cmdline", "consoles", "expected"),
    [
        # the last console= that registered, when /dev/console is another one
        ("console=tty0 console=ttyS0 console=ttyAMA0", X86_CONSOLES, "ttyS0"),
        ("console=tty0 console=ttyS0,115200n8 console=ttyAMA0", X86_CONSOLES, "ttyS0"),
        ("console=tty0 console=ttyAMA0 console=ttyS0", ARM64_CONSOLES, "ttyAMA0"),
        # /dev/console is that one already: nothing to do
        ("console=tty0 console=ttyS0 console=ttyAMA0", ARM64_UPSTREAM_CONSOLES, ""),
        # the screen last: it stays
        ("console=ttyS0 console=tty0", X86_CONSOLES, ""),
        # no console=, or none registered: the kernel's choice stays
        ("quiet", X86_CONSOLES, ""),
        ("console=hvc0", X86_CONSOLES, ""),
    ],
)
def test_rc_init_console_is_the_last_registered_console_arg(
    guest: Guest, cmdline: str, consoles: str, expected: str
) -> None:
    guest.cmdline.write_text(cmdline + "\n")
    (guest.root / "proc/consoles").write_text(consoles)
    proc = guest.sh(RC_INIT, "console")
    assert proc.returncode == 0
    assert proc.stdout == expected + "\n"


def add_device(root: Path, bus: str, rel: str, alias: str) -> None:
    """A device as sysfs has it: /sys/devices/REL/modalias, linked from /sys/bus/BUS/devices/."""
    dev = root / "sys/devices" / rel
    dev.mkdir(parents=True)
    (dev / "modalias").write_text(alias + "\n")
    link = root / "sys/bus" / bus / "devices" / rel.rsplit("/", 1)[-1]
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(dev)


def test_rc_init_loads_modules_for_present_devices(guest: Guest) -> None:
    modprobe = guest.fake / "modprobe"
    modprobe.write_text('#!/bin/busybox sh\necho "modprobe $*" >>"$STUB_LOG"\n')
    modprobe.chmod(0o755)
    add_device(guest.root, "pci", "pci0000:00/0000:00:01.0", "pci:v00008086d00001237")
    add_device(guest.root, "virtio", "pci0000:00/0000:00:03.0/virtio0", "virtio:d00000001v00001AF4")
    add_device(guest.root, "virtio", "pci0000:00/0000:00:04.0/virtio1", "virtio:d00000001v00001AF4")  # same alias
    (guest.root / "sys/devices/system/nomod").mkdir(parents=True)  # no modalias: skipped
    proc = guest.sh(RC_INIT, "load-modules", MODPROBE=str(modprobe))
    assert proc.returncode == 0
    assert guest.stub_calls() == []  # no /lib/modules/<release>: nothing to load
    (guest.root / "lib/modules" / os.uname().release).mkdir(parents=True)
    (guest.root / "etc").mkdir()
    (guest.root / "etc/modules").write_text("# comment\n\nvirtio_net\nloop max_loop=8\n")
    proc = guest.sh(RC_INIT, "load-modules", MODPROBE=str(modprobe))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert guest.stub_calls() == [
        "modprobe -a -q pci:v00008086d00001237 virtio:d00000001v00001AF4",
        "modprobe virtio_net",
        "modprobe loop max_loop=8",
    ]


def test_rc_init_scans_again_for_devices_a_new_driver_brought(guest: Guest) -> None:
    # the first modprobe (a bus driver) makes a new device appear; the next pass loads only its alias
    modprobe = guest.fake / "modprobe"
    modprobe.write_text(
        '#!/bin/busybox sh\necho "modprobe $*" >>"$STUB_LOG"\n'
        f"d={guest.root}/sys/devices/pci0000:00/0000:00:05.0/virtio2\n"
        f'[ -e "$d" ] && exit 0\nmkdir -p "$d" {guest.root}/sys/bus/virtio/devices\n'
        'echo virtio:d00000002v00001AF4 >"$d/modalias"\n'
        f'ln -s "$d" {guest.root}/sys/bus/virtio/devices/virtio2\n'
    )
    modprobe.chmod(0o755)
    add_device(guest.root, "pci", "pci0000:00/0000:00:05.0", "pci:v00001AF4d00001001")
    (guest.root / "lib/modules" / os.uname().release).mkdir(parents=True)
    assert guest.sh(RC_INIT, "load-modules", MODPROBE=str(modprobe)).returncode == 0
    assert guest.stub_calls() == [
        "modprobe -a -q pci:v00001AF4d00001001",
        "modprobe -a -q virtio:d00000002v00001AF4",
    ]


def test_rc_init_hotplug_listener_then_one_more_scan(guest: Guest) -> None:
    # Debian's kernels have no hotplug helper: `uevent mdev` listens on netlink; once its socket shows in
    # /proc/net/netlink (protocol 15, port = its pid), a scan catches a device that came before it listened
    modprobe = guest.fake / "modprobe"
    modprobe.write_text('#!/bin/busybox sh\necho "modprobe $*" >>"$STUB_LOG"\n')
    modprobe.chmod(0o755)
    uevent = guest.fake / "uevent"
    uevent.write_text(
        '#!/bin/busybox sh\necho "uevent $*" >>"$STUB_LOG"\n'
        f"d={guest.root}/sys/devices/pci0000:00/0000:00:06.0\n"
        f'mkdir -p "$d" {guest.root}/sys/bus/pci/devices\necho pci:v00008086d000010D3 >"$d/modalias"\n'
        f'ln -s "$d" {guest.root}/sys/bus/pci/devices/0000:00:06.0\n'
        f'echo "0000000000000000 15 $$ 00000001 0 0 0 2 0 1234" >>{guest.root}/proc/net/netlink\nsleep 1\n'
    )
    uevent.chmod(0o755)
    (guest.root / "proc/net").mkdir(parents=True)
    (guest.root / "proc/net/netlink").write_text(
        "sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode\n"
        "0000000000000000 0   0          00000000 0        0        0     2        0        1\n"
    )
    add_device(guest.root, "pci", "pci0000:00/0000:00:04.0", "pci:v000015ADd000007B0")
    (guest.root / "lib/modules" / os.uname().release).mkdir(parents=True)
    proc = guest.sh(RC_INIT, "hotplug", MODPROBE=str(modprobe), UEVENT=str(uevent))
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr
    assert guest.stub_calls() == [
        "modprobe -a -q pci:v000015ADd000007B0",
        "uevent mdev",
        "modprobe -a -q pci:v00008086d000010D3",
    ]


def test_rc_init_hotplug_without_a_listener_still_scans(guest: Guest) -> None:
    modprobe = guest.fake / "modprobe"
    modprobe.write_text('#!/bin/busybox sh\necho "modprobe $*" >>"$STUB_LOG"\n')
    modprobe.chmod(0o755)
    (guest.root / "proc/net").mkdir(parents=True)
    (guest.root / "proc/net/netlink").write_text("sk Eth Pid Groups\n")
    add_device(guest.root, "pci", "pci0000:00/0000:00:04.0", "pci:v000015ADd000007B0")
    (guest.root / "lib/modules" / os.uname().release).mkdir(parents=True)
    proc = guest.sh(RC_INIT, "hotplug", MODPROBE=str(modprobe), UEVENT="/nonexistent/uevent")
    assert proc.returncode == 0
    assert "rc.init: no hotplug: the uevent listener did not start" in proc.stdout
    assert guest.stub_calls() == ["modprobe -a -q pci:v000015ADd000007B0"]


def can_unshare() -> bool:
    if os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "-m", "-p", "-f", "true"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.integration
@pytest.mark.skipif(not can_unshare(), reason="needs root and unshare (mount + pid namespaces)")
def test_init_makes_a_ram_root_pivotable_and_switches_root(tmp_path: Path) -> None:
    top = tmp_path / "top"
    top.mkdir()
    # the initramfs stand-in: a directory of a tmpfs (so, like the kernel's rootfs, / is not a mount point of
    # its own and pivot_root fails) holding busybox, /init, a fake /sbin/init and a bundle
    script = f"""
set -e
mount -t tmpfs tmpfs {top}
R={top}/initramfs
mkdir -p $R/bin $R/sbin $R/etc $R/containers/onboot/000-x/rootfs $R/dev $R/proc
cp {BUSYBOX} $R/bin/busybox
ln -s busybox $R/bin/sh
cp {INIT_FILES / "init"} $R/init
printf '#!/bin/sh\\necho "stage2 pid=$$ fs=$(stat -f -c %%T /) args=$*"\\n' >$R/sbin/init
printf '[ -x /bin/ls ] && [ -L /usr/bin/awk ] && echo applets-ok\\n' >>$R/sbin/init
printf 'cat /etc/hello; ls /containers/onboot\\n' >>$R/sbin/init
# what runc does for a container: pivot_root into a new root, which needs / to be a mount point
printf 'mkdir /new; mount -t tmpfs new /new; mkdir /new/old; cd /new\\n' >>$R/sbin/init
printf 'pivot_root . old && echo pivot-ok\\n' >>$R/sbin/init
chmod +x $R/sbin/init
echo hello >$R/etc/hello
if [ "${{NO_INIT:-}}" ]; then exec chroot $R /sbin/init; fi
exec chroot $R /init
"""

    def boot(**env: str) -> list[str]:
        proc = subprocess.run(
            ["unshare", "-m", "-p", "-f", "--propagation", "private", str(BUSYBOX), "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={"PATH": os.environ["PATH"], **env},
        )
        return proc.stdout.splitlines()

    lines = boot()
    assert lines == ["stage2 pid=1 fs=tmpfs args=", "applets-ok", "hello", "000-x", "pivot-ok"]
    # the check is real: without /init, the same root cannot be pivoted out of
    plain = boot(NO_INIT="1")
    assert plain[:1] == ["stage2 pid=1 fs=tmpfs args="] and "pivot-ok" not in plain
