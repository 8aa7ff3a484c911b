"""Scripts of the application packages run on the host under busybox sh with fake programs: lk-wg-config
(pkg/wireguard), 020-containerd (pkg/containerd). Their images are booted in test_guest_docker_redis.py."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tests.conftest import ROOT

BUSYBOX = Path("/bin/busybox")
pytestmark = pytest.mark.skipif(not BUSYBOX.exists(), reason="needs /bin/busybox (Debian package busybox-static)")

LK_WG_CONFIG = ROOT / "pkg" / "wireguard" / "files" / "usr" / "bin" / "lk-wg-config"
CONTAINERD_INIT = ROOT / "pkg" / "containerd" / "files" / "etc" / "init.d" / "020-containerd"


def fake(path: Path, body: str) -> str:
    path.write_text(f"#!{BUSYBOX} sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_lk_wg_config_applies_what_wg_setconf_does_not_know(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    wg = fake(tmp_path / "wg", f'echo "wg $1 $2" >>{calls}; cat "$3" >{tmp_path}/setconf')
    ip = fake(tmp_path / "ip", f'echo "ip $*" >>{calls}')
    conf = tmp_path / "wg7.conf"
    conf.write_text(
        "[Interface]\nAddress = 192.168.2.1/24, fd00::1/64\nDNS = 192.168.2.2\nMTU = 1380\n"
        "PrivateKey = KG7EKkHDkp7THfW5mOXcZzo3RbGAjq+ARMfJGFm5G1s=\nListenPort = 51820 # a comment\nPostUp = x\n"
        "[Peer]\nPublicKey = ZP7h1OjA1oIAmsAvMKujp2RAAC/f0kY814b3Xq6j/0Y=\nAllowedIPs = 10.1.0.0/16,fd01::/64\n"
        "Endpoint = 127.0.0.1:51821"  # no final newline
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "WG": wg, "IP": ip, "RESOLV": str(tmp_path / "resolv")}
    proc = subprocess.run(
        [str(BUSYBOX), "sh", str(LK_WG_CONFIG), "configure", str(conf)], capture_output=True, env=env, check=False
    )
    out = proc.stdout.decode() + proc.stderr.decode()
    assert proc.returncode == 0, out
    setconf = (tmp_path / "setconf").read_text()
    for kept in ("PrivateKey = ", "ListenPort = 51820", "[Peer]", "AllowedIPs = ", "Endpoint = 127.0.0.1:51821"):
        assert kept in setconf, setconf
    for dropped in ("Address", "DNS", "MTU", "PostUp"):
        assert dropped not in setconf, setconf
    assert calls.read_text().splitlines() == [
        "wg setconf wg7",
        "ip address add 192.168.2.1/24 dev wg7",
        "ip address add fd00::1/64 dev wg7",
        "ip link set mtu 1380 dev wg7",
        "ip link set wg7 up",
        "ip route replace 10.1.0.0/16 dev wg7",
        "ip -6 route replace fd01::/64 dev wg7",
    ]
    assert (tmp_path / "resolv").read_text() == "nameserver 192.168.2.2\n"
    assert "PostUp is not supported" in out
    bad = subprocess.run([str(BUSYBOX), "sh", str(LK_WG_CONFIG), "up", str(conf)], capture_output=True, check=False)
    assert bad.returncode == 2 and b"usage" in bad.stderr


@pytest.mark.parametrize(
    "toml", [None, 'cliopts="--log-level trace"\nstderr="/var/log/e.log"\nstdout = "/var/log/o.log"\n']
)
def test_containerd_init_starts_it_in_the_background_with_runtime_config(tmp_path: Path, toml: str | None) -> None:
    root = tmp_path / "root"
    (root / "var" / "log").mkdir(parents=True)
    (root / "etc" / "containerd").mkdir(parents=True)
    if toml is not None:
        (root / "etc" / "containerd" / "runtime-config.toml").write_text(toml)
    pidfile = tmp_path / "pid"
    containerd = fake(tmp_path / "containerd", f'echo $$ >{pidfile}; echo "args: $*"; echo oops >&2; exec sleep 60')
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LINUXKIT_ROOT": str(root), "CONTAINERD": containerd}
    start = time.monotonic()
    proc = subprocess.run([str(BUSYBOX), "sh", str(CONTAINERD_INIT)], capture_output=True, env=env, check=False)
    assert proc.returncode == 0 and time.monotonic() - start < 5  # boot does not wait for containerd
    try:
        deadline = time.monotonic() + 10
        while not pidfile.exists() or not pidfile.read_text().strip():
            assert time.monotonic() < deadline, "the fake containerd was not started"
            time.sleep(0.05)
        time.sleep(0.2)
        assert (root / "run" / "containerd").is_dir() and (root / "var" / "lib" / "containerd").is_dir()
        if toml is None:
            log = (root / "var" / "log" / "containerd.log").read_text()
            assert "args: --config /etc/containerd/config.toml\n" in log and "oops" in log
            assert "containerd: started (output /var/log/containerd.log)" in proc.stdout.decode()
        else:
            assert (root / "var" / "log" / "o.log").read_text() == (
                "args: --config /etc/containerd/config.toml --log-level trace\n"
            )
            err = (root / "var" / "log" / "e.log").read_text()
            assert "containerd: starting" in err and "oops" in err
    finally:
        pid = int(pidfile.read_text())
        # the restart loop is the fake's parent, in its own session: end both
        loop = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        os.kill(loop, signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)
