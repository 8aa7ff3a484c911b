"""The scripts of the packages for upstream's examples (sysfs, logwrite, swap, losetup, dm-crypt, kmsg, extend,
trim-after-delete, host-timesync-daemon), run on the host under busybox sh: their command lines, file handling and
errors. What needs a kernel (loop devices, dm-crypt, swap, binfmt) is booted in
tests/integration/test_guest_packages.py."""

from __future__ import annotations

import http.server
import json
import os
import socketserver
import subprocess
import threading
import time
from pathlib import Path

import pytest
from tests.conftest import ROOT

BUSYBOX = Path("/bin/busybox")
NC = Path("/bin/nc.openbsd")
PKG = ROOT / "pkg"
pytestmark = pytest.mark.skipif(not BUSYBOX.exists(), reason="needs /bin/busybox (Debian package busybox-static)")


def run(script: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, str]:
    """The script under busybox sh, with only busybox's applets on the PATH (as in the image)."""
    proc = subprocess.run(
        [str(BUSYBOX), "sh", str(script), *args],
        capture_output=True,
        env={"PATH": "/nonexistent", **(env or {})},
        timeout=timeout,
        check=False,
    )
    return proc.returncode, proc.stdout.decode() + proc.stderr.decode()


def test_sysfs_writes_each_setting_and_stops_at_a_bad_line(tmp_path: Path) -> None:
    conf, sys_dir = tmp_path / "conf", tmp_path / "sys"
    (sys_dir / "kernel" / "mm").mkdir(parents=True)
    conf.mkdir()
    (sys_dir / "kernel" / "mm" / "a").write_text("old")
    (sys_dir / "kernel" / "mm" / "b").write_text("old")
    (conf / "00-first.conf").write_text("# a comment\n\nkernel/mm/a = madvise\n  kernel/mm/b=never")  # no final newline
    script = PKG / "sysfs" / "files" / "usr" / "bin" / "sysfs"
    rc, out = run(script, "-configDir", str(conf), f"--sysfsDir={sys_dir}")
    assert rc == 0, out
    assert (sys_dir / "kernel" / "mm" / "a").read_text() == "madvise"
    assert (sys_dir / "kernel" / "mm" / "b").read_text() == "never"
    (conf / "01-bad.conf").write_text("kernel/mm/a = x = y\n")
    rc, out = run(script, "-configDir", str(conf), "-sysfsDir", str(sys_dir))
    assert rc == 1 and "cannot parse kernel/mm/a = x = y" in out
    (conf / "01-bad.conf").write_text("kernel/mm/missing = 1\n")
    rc, out = run(script, "-configDir", str(conf), "-sysfsDir", str(sys_dir))
    assert rc == 1 and "cannot write 1 to" in out


def test_logwrite_rotates_big_logs_as_upstream_names_them(tmp_path: Path) -> None:
    script = PKG / "logwrite" / "files" / "usr" / "bin" / "logwrite"
    log = tmp_path / "svc.log"
    small = tmp_path / "quiet.log"
    small.write_text("short\n")
    for n in range(4):
        log.write_text(f"round {n}\n" * 100)
        rc, out = run(script, "-log-dir", str(tmp_path), "-max-log-size=500", "-max-log-files", "3", "-once")
        assert rc == 0 and f"rotated {log}" in out, out
    # the live file is emptied in place (a writer appending to it goes on), three old ones are kept
    assert log.read_text() == ""
    assert (tmp_path / "svc.log.0").read_text().startswith("round 3")
    assert (tmp_path / "svc.log.1").read_text().startswith("round 2")
    assert (tmp_path / "svc.log.2").read_text().startswith("round 1")
    assert not (tmp_path / "svc.log.3").exists()
    assert small.read_text() == "short\n" and not (tmp_path / "quiet.log.0").exists()
    rc, out = run(script, "-max-log-size", "lots", "-once")
    assert rc == 2 and "not a number" in out


def test_swap_checks_its_arguments_and_conditions_before_touching_anything(tmp_path: Path) -> None:
    script = PKG / "swap" / "swap.sh"
    assert run(script, "--size", "1G")[1].startswith("swap: --path <path> must be defined")
    assert "must be under /var" in run(script, "--path", "/tmp/swap", "--size", "1G")[1]
    assert "must be under /var" in run(script, "--path", "/var/", "--size", "1G")[1]
    assert "--size <size> must be defined" in run(script, "--path", "/var/swap")[1]
    assert "bad --size 1T" in run(script, "--path", "/var/swap", "--size", "1T")[1]
    assert "Unknown option passed to swapmaker: --bogus" in run(script, "--bogus")[1]
    # a mount point that is not there: no swap, exit 0; required: exit 1
    rc, out = run(script, "--path", "/var/x/swap", "--size", "1M", "--condition", "part:/var/nowhere-at-all")
    assert rc == 0 and "condition part:/var/nowhere-at-all not met: no swap file" in out
    rc, out = run(script, "--path", "/var/x/swap", "--size", "1M", "--condition", "part:/var/nowhere-at-all:true")
    assert rc == 1 and "required condition" in out
    # the file system holding / is smaller than 1000 GiB
    rc, out = run(script, "--path", "/var/x/swap", "--size", "1M", "--condition", "partsize:/:1000G:true")
    assert rc == 1 and "required condition partsize:/:1000G:true not met" in out
    rc, out = run(script, "--path", "/var/x/swap", "--size", "1M", "--condition", "bogus:/")
    assert rc == 1 and "Unknown condition: bogus:/" in out


def test_losetup_and_dm_crypt_command_lines(tmp_path: Path) -> None:
    loopy = PKG / "losetup" / "files" / "usr" / "bin" / "loopy"
    rc, out = run(loopy)
    assert rc == 1 and "Missing argument <file>" in out
    rc, out = run(loopy, "--dev", str(tmp_path / "noloop"), "-c", str(tmp_path / "f"))
    assert rc == 2 and "doesn't exist! Did you forget to bind-mount '/dev'" in out
    assert not (tmp_path / "f").exists()
    rc, out = run(loopy, "--help")
    assert rc == 0 and "--create" in out
    crypto = PKG / "dm-crypt" / "files" / "usr" / "bin" / "crypto"
    rc, out = run(crypto, "name")
    assert rc == 1 and "Missing argument <device>" in out
    rc, out = run(crypto, "--key-file", str(tmp_path / "nokey"), "name", "/dev/null")
    assert rc == 1 and f"Couldn't find encryption keyfile {tmp_path / 'nokey'}!" in out
    rc, out = run(crypto, "-l", "-k", "mykey", "name", "/dev/null")
    assert rc == 1 and "Couldn't find encryption keyfile /etc/dm-crypt/mykey!" in out


def test_kmsg_prints_records_with_their_sequence_and_time(tmp_path: Path) -> None:
    script = PKG / "kmsg" / "files" / "usr" / "bin" / "kmsg"
    fake = tmp_path / "kmsg"
    fake.write_text("6,0,0,-;Linux version 6.1\n SUBSYSTEM=x\n4,7,2500000,c;a; b\n")
    uptime = tmp_path / "uptime"
    uptime.write_text("12.08 20.00\n")  # a leading zero in the fraction is not octal
    copy = tmp_path / "kmsg.sh"
    copy.write_text(script.read_text().replace("/dev/kmsg", str(fake)).replace("/proc/uptime", str(uptime)))
    rc, out = run(copy)
    assert rc == 0, out
    lines = out.splitlines()
    assert len(lines) == 2, out
    assert lines[0].startswith("(0) - ") and lines[0].endswith("Z: Linux version 6.1")
    assert lines[1].startswith("(7) - ") and lines[1].endswith("Z: a; b")
    # RFC 3339, nanoseconds, 2.5 s after the first
    first, second = (line.split(" - ", 1)[1].split("Z:")[0] for line in lines)
    assert len(first) == len("2026-01-01T00:00:00.000000000")
    assert int(second[17:19]) * 10**9 + int(second[20:]) - int(first[17:19]) * 10**9 - int(first[20:]) in (
        2_500_000_000,
        2_500_000_000 - 60 * 10**9,
    )


def test_extend_flags() -> None:
    script = PKG / "extend" / "files" / "usr" / "bin" / "extend"
    rc, out = run(script, "-bogus")
    assert rc == 2 and "unknown flag -bogus" in out
    # a device without a partition table is skipped (sfdisk is not on this PATH: no table found)
    rc, out = run(script, "-type=ext4", "-stop-on-error=false", "/dev/null")
    assert rc == 0 and "no partition table found on /dev/null" in out


def test_host_timesync_daemon_flags() -> None:
    script = PKG / "host-timesync-daemon" / "files" / "usr" / "bin" / "host-timesync-daemon"
    rc, out = run(script)
    assert rc == 1 and "please supply a -port" in out
    rc, out = run(script, "-port", "0xf3a4", "-cid", "3")
    assert rc == 1 and "only any CID" in out


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.mark.skipif(not NC.exists(), reason="needs /bin/nc.openbsd (Debian package netcat-openbsd)")
def test_trim_after_delete_runs_once_per_burst_of_docker_events(tmp_path: Path) -> None:
    events = [
        {"Type": "container", "Action": "start"},
        {"Type": "image", "Action": "delete"},
        {"Type": "container", "Action": "destroy"},
        {"Type": "volume", "Action": "prune"},
    ]

    class Docker(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            assert self.path == "/v1.24/events" and self.request_version == "HTTP/1.0"
            self.send_response_only(200)
            self.send_header("Server", "Docker/24.0.7 (linux)")
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            for event in events:  # Go's encoder: no spaces, one object per line
                self.wfile.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")
                self.wfile.flush()
            time.sleep(3)  # then the stream ends: the script connects again

        def log_message(self, *args: object) -> None:
            pass

    sock = tmp_path / "docker.sock"
    server = _UnixHTTPServer(str(sock), Docker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ran = tmp_path / "ran"
    script = PKG / "trim-after-delete" / "files" / "usr" / "bin" / "trim-after-delete"
    proc = subprocess.Popen(
        [str(BUSYBOX), "sh", str(script), f"--docker-socket={sock}", "--delay", "500ms", "--",
         str(BUSYBOX), "sh", "-c", f"echo run >>{ran}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={"PATH": "/nonexistent", "TRIM_AFTER_DELETE_NC": str(NC)}, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline and not ran.exists():
            time.sleep(0.1)
        time.sleep(1)
    finally:
        os.killpg(proc.pid, 15)
        out = proc.communicate(timeout=10)[0].decode()
        server.shutdown()
        server.server_close()
    # three matching events in one burst: one run, half a second later
    assert ran.exists() and ran.read_text() == "run\n", out
    assert "(re-)connected to the Docker daemon" in out
    assert "image delete: will run the action at least once more" in out
    assert "container start" not in out


@pytest.mark.parametrize(
    ("package", "args"),
    [
        ("logwrite", ["-interval", "30"]),
        ("trim-after-delete", ["--docker-socket=/nonexistent", "--", "true"]),
        ("kmsg", []),
    ],
)
def test_services_end_on_term_as_a_containers_pid_1(tmp_path: Path, package: str, args: list[str]) -> None:
    """A container's PID 1 ignores signals it has no handler for: the service stop's TERM must end them."""
    script = PKG / package / "files" / "usr" / "bin" / package
    if package == "kmsg":  # a FIFO nobody writes to stands in for /dev/kmsg: the reader blocks
        fifo = tmp_path / "kmsg"
        os.mkfifo(fifo)
        script = tmp_path / "kmsg.sh"
        script.write_text((PKG / "kmsg" / "files" / "usr" / "bin" / "kmsg").read_text().replace("/dev/kmsg", str(fifo)))
    try:
        proc = subprocess.Popen(
            [str(BUSYBOX), "unshare", "--pid", "--fork", str(BUSYBOX), "sh", str(script), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={"PATH": "/nonexistent", "TMPDIR": str(tmp_path)},
        )  # fmt: skip
    except OSError as exc:
        pytest.skip(f"busybox unshare: {exc}")
    time.sleep(1)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    if proc.poll() is not None or not children:
        pytest.skip("no PID namespace here: " + proc.communicate()[0].decode()[-300:])
    start = time.monotonic()
    os.kill(int(children[0]), 15)
    proc.wait(timeout=10)
    assert time.monotonic() - start < 3, proc.communicate()[0].decode()


@pytest.mark.skipif(not NC.exists(), reason="needs /bin/nc.openbsd (Debian package netcat-openbsd)")
def test_trim_after_delete_refuses_a_server_that_is_not_docker(tmp_path: Path) -> None:
    class Other(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response_only(200)
            self.send_header("Server", "nginx")
            self.end_headers()
            self.wfile.write(b"{}\n")

        def log_message(self, *args: object) -> None:
            pass

    sock = tmp_path / "other.sock"
    server = _UnixHTTPServer(str(sock), Other)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        script = PKG / "trim-after-delete" / "files" / "usr" / "bin" / "trim-after-delete"
        rc, out = run(script, f"--docker-socket={sock}", "--", "true", env={"TRIM_AFTER_DELETE_NC": str(NC)})
    finally:
        server.shutdown()
        server.server_close()
    assert rc == 1 and f"the server at {sock} is not Docker" in out, out
