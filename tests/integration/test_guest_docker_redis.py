"""Boot upstream's application examples built from our packages under qemu (TCG), one boot each:

* examples/docker.yml with tests/data/guest/docker-check.yml: the system's containerd answers `ctr version`; dockerd
  in its service container answers `docker info`, imports an image from a tar and runs a container of it; then
  the check powers the system off;
* examples/redis-os.yml with tests/data/guest/influxdb-check.yml: the host talks to redis and to influxdb through
  --publish;
* examples/node_exporter.yml with tests/data/guest/apps-check.yml: the host scrapes its metrics through
  --publish; bpftrace compiles and runs a program; auditd runs with upstream's rules."""

from __future__ import annotations

import re
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from tests.conftest import ROOT
from tests.integration.test_guest_boot import boot_until_exit, lk
from tests.integration.test_guest_services import _stop_qemu, free_port, poll

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLES = ROOT / "examples"
DATA = ROOT / "tests" / "data" / "guest"


def test_docker_example_runs_docker_info_and_a_container(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    lk(cache, "build", "--name", "docker", "--dir", tmp_path, EXAMPLES / "docker.yml", DATA / "docker-check.yml")
    start = time.monotonic()
    console = boot_until_exit(
        cache, tmp_path / "docker", "--cpus", "2", "--mem", "2048", "--disk", f"file={tmp_path / 'disk.img'},size=1G",
        timeout=600,
    )  # fmt: skip
    print(f"docker.yml: booted, checked and powered off in {time.monotonic() - start:.0f}s")
    tail = console[-5000:]
    # the blank disk becomes /var/lib/docker, as upstream's example does
    assert "mount: mounted /dev/vda1 on /var/lib/docker" in console, tail
    # the system's containerd (pkg/containerd in init:, started by /etc/init.d/020-containerd)
    assert "containerd: started" in console, tail
    assert re.search(r"CTR-READY after \d+s: +Version: 1\.6\.", console), tail
    # dockerd in its service container
    ready = re.search(r"DOCKER-READY after (\d+)s", console)
    assert ready and "DOCKER-TIMEOUT" not in console, tail
    print(f"docker info answered {ready.group(1)}s after the check service started")
    assert "DOCKER-INFO Server Version: 20.10" in console, tail
    assert "DOCKER-INFO Storage Driver: overlay2" in console, tail
    assert "DOCKER-INFO Cgroup Version: 2" in console, tail
    assert "DOCKER-IMPORT ok" in console and "DOCKER-RUN-OK" in console, tail
    assert "DOCKER-CHECK-DONE" in console, tail
    # a clean power-off: dockerd ends on TERM
    assert "service docker: exited with status 0 (stopped)" in console, tail
    assert "docker did not stop within" not in console, tail


def _redis(port: int, *commands: str) -> bytes:
    """The server's answers to ``commands`` (inline protocol), read until it closes after QUIT."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"".join(c.encode() + b"\r\n" for c in (*commands, "QUIT")))
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        return data


def _influx(port: int, path: str, data: bytes | None = None) -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method="POST" if data else "GET")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, resp.read().decode(errors="replace")


def test_redis_example_answers_from_the_host_with_influxdb(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    files = (EXAMPLES / "redis-os.yml", DATA / "influxdb-check.yml")
    lk(cache, "build", "--name", "redis-os", "--dir", tmp_path, *files)
    port, influx = free_port(), free_port()
    state = tmp_path / "redis-os-state"
    prefix = tmp_path / "redis-os"
    publish = ["--publish", f"{port}:6379", "--publish", f"{influx}:8086"]
    lk(cache, "run", "qemu", "--detached", "--networking", "user", *publish, prefix)
    try:
        took = poll("redis PING from the host", lambda: _redis(port, "PING").startswith(b"+PONG"), 240)
        print(f"redis answered PING {took:.0f}s after qemu started")
        answer = _redis(port, "SET linuxkit redis-os", "GET linuxkit", "INFO server")
        took = poll("influxdb ping from the host", lambda: _influx(influx, "/ping")[0] == 204, 120)
        print(f"influxdb answered /ping {took:.0f}s after redis")
        created = _influx(influx, "/query", b"q=CREATE+DATABASE+lk")
        written = _influx(influx, "/write?db=lk", b"load,host=linuxkit value=0.42")
        queried = _influx(influx, "/query?db=lk&q=SELECT+value+FROM+load")
    finally:
        _stop_qemu(state)
    console = (state / "console.log").read_text(errors="replace")
    assert answer.startswith(b"+OK\r\n$8\r\nredis-os\r\n"), answer
    assert b"redis_version:7.0." in answer, answer
    assert "service redis: starting" in console, console[-3000:]
    assert "dhcpcd: eth0: leased" in console, console[-3000:]
    assert created[0] == 200 and written[0] == 204, (created, written)
    assert queried[0] == 200 and '"columns":["time","value"]' in queried[1] and "0.42" in queried[1], queried


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return str(resp.read().decode(errors="replace"))


def test_node_exporter_example_serves_the_hosts_metrics_with_bpftrace_and_auditd(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    files = (EXAMPLES / "node_exporter.yml", DATA / "apps-check.yml")
    lk(cache, "build", "--name", "node_exporter", "--dir", tmp_path, *files)
    port = free_port()
    state = tmp_path / "node_exporter-state"
    prefix = tmp_path / "node_exporter"
    lk(cache, "run", "qemu", "--detached", "--mem", "2048", "--networking", "user", "--publish", f"{port}:9100", prefix)
    try:
        took = poll("node_exporter metrics from the host", lambda: "node_exporter_build_info" in _metrics(port), 240)
        print(f"node_exporter answered {took:.0f}s after qemu started")
        metrics = _metrics(port)
        poll("auditcheck", lambda: "AUDIT-RULES" in (state / "console.log").read_text(errors="replace"), 60)
    finally:
        _stop_qemu(state)
    console = (state / "console.log").read_text(errors="replace")
    # bpftrace (onboot): LLVM compiled the program, the kernel ran it
    assert "BPFTRACE-OK 42" in console, console[-3000:]
    # auditd: the kernel's audit is on, with auditd as its daemon and upstream's backlog limit from audit.rules
    audit = re.search(r"AUDIT enabled 1 failure 1 pid (\d+) rate_limit 0 backlog_limit 8192 ", console)
    assert audit and int(audit.group(1)) > 0, console[-3000:]
    # the host's /proc and /sys through upstream's binds: the system's uname, its network interface, its memory
    assert re.search(r'node_uname_info\{[^}]*release="6\.1\.', metrics), metrics[:2000]
    assert 'node_network_up{device="eth0"} 1' in metrics, metrics[:2000]
    assert re.search(r"^node_memory_MemTotal_bytes \d", metrics, re.M), metrics[:2000]
    # the root file system through the / bind (the mount-point filter leaves /, drops /sys, /proc, /dev)
    assert 'node_filesystem_size_bytes{device="rootfs"' in metrics or 'mountpoint="/"' in metrics, metrics[:2000]
    assert 'mountpoint="/sys' not in metrics, metrics[:2000]
