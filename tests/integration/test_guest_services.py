"""Boot a system with the service packages (sysctl, dhcpcd, rngd, metadata, format, mount, httpd, sshd) under
qemu (TCG) once, talk to it from the host (HTTP, SSH), and check what the serial console shows."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.conftest import ROOT
from tests.integration.test_guest_boot import lk

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DATA = ROOT / "tests" / "data" / "guest"
BOOT_TIMEOUT = 240.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
        return str(resp.read().decode(errors="replace"))


def poll(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Call ``check`` until it returns true (exceptions count as false); return the seconds it took."""
    start = time.monotonic()
    last: Exception | None = None
    while time.monotonic() - start < timeout:
        try:
            if check():
                return time.monotonic() - start
        except Exception as exc:  # the guest is still booting: anything may fail
            last = exc
        time.sleep(1)
    raise AssertionError(f"{what}: no success within {timeout:.0f}s (last error: {last})")


@dataclass
class Booted:
    console: str = ""
    http_body: str = ""
    http_after_kill: str = ""
    ssh_output: str = ""
    guest_state: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def ssh_argv(key: Path, port: int, command: str) -> list[str]:
    return [
        "ssh", "-i", str(key), "-p", str(port), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", "root@127.0.0.1", command,
    ]  # fmt: skip


def ssh(key: Path, port: int, command: str) -> str:
    proc = subprocess.run(ssh_argv(key, port, command), capture_output=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ssh exit {proc.returncode}: {proc.stderr.decode(errors='replace')[-500:]}")
    return proc.stdout.decode(errors="replace")


def _stop_qemu(state: Path) -> None:
    try:
        pid = int((state / "qemu.pid").read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        pass


@pytest.fixture(scope="module")
def booted(tmp_path_factory: pytest.TempPathFactory) -> Booted:
    for tool in ("ssh", "ssh-keygen", "qemu-system-x86_64"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian packages openssh-client, qemu-system-x86)")
    cache = tmp_path_factory.mktemp("services-cache")
    work = tmp_path_factory.mktemp("services")
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    userdata = {
        "hostname": {"content": "lktest"},
        "ssh": {"entries": {"authorized_keys": {"content": key.with_suffix(".pub").read_text(), "perm": "0600"}}},
        "app": {"entries": {"greeting": {"content": "METADATA-OK hello", "perm": "0640"}}},
    }
    (work / "userdata.json").write_text(json.dumps(userdata))

    lk(cache, "build", "--dir", work, DATA / "services.yml")
    http_port, ssh_port = free_port(), free_port()
    state = work / "services-state"
    result = Booted()
    start = time.monotonic()
    # --detached: qemu runs in the background, the console goes to STATE/console.log
    lk(
        cache, "run", "qemu", "--detached", "--networking", "user",
        "--publish", f"{http_port}:80", "--publish", f"{ssh_port}:22",
        "--disk", "size=64M", "--data-file", work / "userdata.json", work / "services",
    )  # fmt: skip
    try:
        result.timings["http"] = poll("HTTP from the host", lambda: "Hello from LinuxKit" in http_get(http_port), 150)
        result.http_body = http_get(http_port)
        result.timings["ssh"] = poll("SSH login", lambda: "SSH-OK" in ssh(key, ssh_port, "echo SSH-OK"), 60)
        result.ssh_output = ssh(key, ssh_port, "echo SSH-OK; hostname; cat /run/config/provider")
        # kill the web server's container process from inside the guest: its supervisor must restart it
        ssh(key, ssh_port, "kill -KILL $(cat /run/service/httpd/pid)")
        time.sleep(0.5)
        result.timings["restart"] = poll("httpd back after kill", lambda: "Hello" in http_get(http_port), 60)
        result.http_after_kill = http_get(http_port)
        result.guest_state = ssh(key, ssh_port, "cat /run/service/httpd/restarts /run/service/httpd/state")
        # clean power-off (busybox init: SIGUSR2), from the sshd container (pid host)
        ssh(key, ssh_port, "kill -USR2 1")
    except AssertionError as exc:
        result.errors.append(str(exc))
    except RuntimeError as exc:
        result.errors.append(str(exc))
    console = state / "console.log"
    deadline = time.monotonic() + 60
    while (state / "qemu.pid").exists() and "Power down" not in console.read_text(errors="replace"):
        if time.monotonic() > deadline:
            result.errors.append("the guest did not power off")
            break
        time.sleep(1)
    _stop_qemu(state)
    result.timings["total"] = time.monotonic() - start
    result.console = console.read_text(errors="replace")
    print(f"timings: {result.timings}")
    return result


def _tail(b: Booted) -> str:
    return "\n".join(b.errors) + "\n" + b.console[-4000:]


def test_sysctl_applies_image_defaults_and_added_files(booted: Booted) -> None:
    assert "sysctl: applied /etc/sysctl.d/00-linuxkit.conf" in booted.console, _tail(booted)
    assert "sysctl: applied /etc/sysctl.d/99-test.conf" in booted.console, _tail(booted)
    # 13 from the added file, 262144 from the image's defaults (the kernel's own: 60 and 65530)
    assert "SYSCTL swappiness=13 max_map_count=262144" in booted.console, _tail(booted)


def test_dhcpcd_and_rngd_one_shot(booted: Booted) -> None:
    assert "dhcpcd: eth0: leased 10.0.2.15/24 via 10.0.2.2 dns 10.0.2.3" in booted.console, _tail(booted)
    assert "RESOLV nameserver 10.0.2.3" in booted.console, _tail(booted)
    assert "rngd: crng ready" in booted.console and "hardware rng virtio_rng" in booted.console, _tail(booted)


def test_metadata_from_the_data_cdrom(booted: Booted) -> None:
    assert "METADATA provider=CDROM /dev/sr0 greeting=METADATA-OK hello" in booted.console, _tail(booted)
    assert "METADATA perm=640 keys=600" in booted.console, _tail(booted)
    assert "HOSTNAME lktest" in booted.console, _tail(booted)


def test_blank_disk_is_formatted_and_mounted(booted: Booted) -> None:
    # run qemu attaches disks as virtio: the first free disk is /dev/vda
    assert "format: partition /dev/vda1 successfully created" in booted.console, _tail(booted)
    assert "mount: mounted /dev/vda1 on /var/lib/lktest" in booted.console, _tail(booted)
    assert "DISK /dev/vda1 ext4" in booted.console, _tail(booted)
    assert "DISK-READ written on the formatted disk" in booted.console, _tail(booted)


def test_web_server_answers_through_publish(booted: Booted) -> None:
    assert "Hello from LinuxKit" in booted.http_body, _tail(booted)


def test_ssh_login_with_the_key_from_metadata(booted: Booted) -> None:
    lines = booted.ssh_output.split()
    assert lines[:2] == ["SSH-OK", "lktest"], _tail(booted)
    assert "CDROM" in booted.ssh_output


def test_killed_service_is_restarted_and_system_powers_off(booted: Booted) -> None:
    assert "Hello from LinuxKit" in booted.http_after_kill, _tail(booted)
    assert booted.guest_state.split() == ["1", "running"], _tail(booted)
    assert "service httpd: exited with status 137" in booted.console, _tail(booted)
    assert "service httpd: restarting in 1s (restart 1)" in booted.console, _tail(booted)
    # power-off: every service stopped on TERM (none needed the KILL after the timeout)
    assert "did not stop within" not in booted.console, _tail(booted)
    assert "Power down" in booted.console, _tail(booted)
    assert not booted.errors, _tail(booted)


def _examples() -> list[str]:
    """Every example but minimal.yml (test_guest_boot builds and boots it)."""
    return sorted(p.name for p in (ROOT / "examples").glob("*.yml") if p.name != "minimal.yml")


ARM64_ONLY_EXAMPLES = {"rpi3.yml"}


@pytest.mark.parametrize("example", _examples())
def test_examples_build(tmp_path: Path, example: str) -> None:
    cache = tmp_path / "cache"
    path = ROOT / "examples" / example
    # an add-on (no kernel) is built on top of minimal.yml, as its comment says
    base = [] if "\nkernel:" in "\n" + path.read_text() else [ROOT / "examples" / "minimal.yml"]
    # the Raspberry Pi's packages are arm64 only (an @pkg: package without the build's arch is an error)
    arch = ["--arch", "arm64"] if example in ARM64_ONLY_EXAMPLES else []
    lk(cache, "build", *arch, "--dir", tmp_path, *base, path)
    name = example.removesuffix(".yml")
    initrd = tmp_path / f"{name}-initrd.img"
    assert initrd.exists() and (tmp_path / f"{name}-kernel").exists()
    print(f"{example}: initrd {initrd.stat().st_size / 1e6:.1f} MB")


# --- the metadata script on the host (busybox sh + jq, as in the image): providers and the JSON file tree ---

METADATA = ROOT / "pkg" / "metadata" / "files" / "usr" / "bin" / "metadata"


def run_metadata(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[Path, str]:
    for tool in ("/bin/busybox", "/usr/bin/jq", "/bin/nc.openbsd"):
        if not os.access(tool, os.X_OK):
            pytest.skip(f"{tool} is needed to run the metadata script (Debian packages busybox, jq, netcat-openbsd)")
    config, tmp = tmp_path / "config", tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    hostname_log = tmp_path / "hostname.log"
    setter = tmp_path / "sethostname"
    setter.write_text(f'#!/bin/sh\necho "$1" >>{hostname_log}\n')
    setter.chmod(0o755)
    hooks = {"METADATA_CONFIG": str(config), "METADATA_TMP": str(tmp), "METADATA_HOSTNAME": str(setter)}
    # no disk of this host is looked at (cdrom)
    hooks |= {"METADATA_FINDFS": "/bin/false", "METADATA_SYSBLOCK": str(tmp), "METADATA_DEV": str(tmp)}
    hooks["METADATA_CD_TRIES"] = "1"
    proc = subprocess.run(
        ["/bin/busybox", "sh", str(METADATA), *args],
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", **hooks, **(env or {})},
        timeout=60,
        check=False,
    )
    out = proc.stdout.decode() + proc.stderr.decode()
    assert proc.returncode == 0, out
    return config, out + (hostname_log.read_text() if hostname_log.exists() else "")


def test_metadata_json_userdata_becomes_a_file_tree(tmp_path: Path) -> None:
    userdata = {
        "hostname": {"content": "box1\n"},
        "ssh": {"entries": {"authorized_keys": {"content": "ssh-ed25519 AAAA me\n", "perm": "0600"}}},
        "app": {"perm": "0700", "entries": {"conf": {"entries": {"a.txt": {"content": "A"}}}, "b": {"content": ""}}},
        "..": {"content": "escape"},
        "bad": {"content": "x", "entries": {}},
        "perm": {"content": "x", "perm": "rwx"},
    }
    (tmp_path / "ud.json").write_text(json.dumps(userdata))
    config, out = run_metadata(tmp_path, f"file={tmp_path / 'ud.json'}")
    assert (config / "provider").read_text() == str(tmp_path / "ud.json")  # as upstream: the path
    assert json.loads((config / "userdata").read_text()) == userdata
    assert (config / "ssh" / "authorized_keys").read_text() == "ssh-ed25519 AAAA me\n"
    assert (config / "ssh" / "authorized_keys").stat().st_mode & 0o777 == 0o600
    assert (config / "app").stat().st_mode & 0o777 == 0o700
    assert (config / "app" / "conf" / "a.txt").read_text() == "A"
    assert (config / "app" / "conf" / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (config / "app" / "b").read_text() == ""
    assert not (tmp_path / "escape").exists() and not (config / "bad").exists() and not (config / "perm").exists()
    assert "skipping invalid entry /.." in out and "bad permission rwx for /perm" in out
    assert out.rstrip().endswith("box1")  # the hostname setter was called with the tree's hostname


def test_metadata_plain_userdata_and_no_provider(tmp_path: Path) -> None:
    (tmp_path / "ud").write_text("#!/bin/sh\necho not json\n")
    config, _ = run_metadata(tmp_path, "file=/nonexistent", f"file={tmp_path / 'ud'}")
    assert (config / "userdata").read_text() == "#!/bin/sh\necho not json\n"
    assert sorted(p.name for p in config.iterdir()) == ["provider", "userdata"]
    (tmp_path / "none").mkdir()
    config, out = run_metadata(tmp_path / "none", "file=/nonexistent")
    assert "no metadata/userdata found" in out and not (config / "provider").exists()
    with pytest.raises(AssertionError, match="unrecognised metadata provider"):
        run_metadata(tmp_path, "nosuchcloud")


def test_metadata_aws_provider_from_an_instance_metadata_server(tmp_path: Path) -> None:
    files = {
        "/latest/meta-data/instance-id": "i-0123",
        "/latest/meta-data/hostname": "ip-10-0-0-5",
        "/latest/meta-data/local-ipv4": "10.0.0.5",
        "/latest/meta-data/placement/availability-zone": "eu-west-1a",
        "/latest/meta-data/public-keys/0/openssh-key": "ssh-ed25519 BBBB aws",
        "/latest/user-data": '{"motd": {"content": "hi"}}',
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            if body is not None:
                self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hosts = f"169.254.169.254=127.0.0.1:{server.server_address[1]}"
        config, out = run_metadata(tmp_path, "aws", "cdrom", env={"METADATA_HOSTS": hosts})
    finally:
        server.shutdown()
    assert (config / "provider").read_text() == "AWS"  # upstream's names
    assert (config / "instance_id").read_text() == "i-0123"
    assert (config / "availability_zone").read_text() == "eu-west-1a"
    assert not (config / "public_ipv4").exists()  # 404: not written
    assert (config / "ssh" / "authorized_keys").read_text() == "ssh-ed25519 BBBB aws\n"
    assert (config / "motd").read_text() == "hi"
    assert out.rstrip().endswith("ip-10-0-0-5")


def test_metadata_aws_probe_gives_up_quickly(tmp_path: Path) -> None:
    # nothing listens: the probe fails and, with no other provider, the script ends without user data
    port = free_port()
    start = time.monotonic()
    config, out = run_metadata(tmp_path, "aws", env={"METADATA_HOSTS": f"169.254.169.254=127.0.0.1:{port}"})
    assert time.monotonic() - start < 10
    assert "no metadata/userdata found" in out and not (config / "provider").exists()
