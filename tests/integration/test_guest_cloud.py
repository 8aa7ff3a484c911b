"""Boot a system with pkg/kernel-cloud under qemu (TCG) on the hardware of a cloud/bare-metal machine that qemu
emulates (an NVMe disk, an e1000e and a vmxnet3 NIC, no virtio device), then hot-plug a virtio disk, and check
what the serial console shows: the drivers are modules loaded by modalias at boot and on hotplug.

And boot examples/platform-aws.yml, unchanged, on ``run qemu --metadata aws`` (with tests/data/guest/aws-check.yml):
its metadata container writes the user data, the SSH key and the host name, dhcpcd gets a lease, sshd answers."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import ROOT
from tests.integration.test_guest_boot import _env, lk
from tests.integration.test_guest_services import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DATA = ROOT / "tests" / "data" / "guest"
EXAMPLES = ROOT / "examples"


class Console:
    """qemu's serial console (its stdout), read without blocking."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.proc, self.out = proc, proc.stdout
        os.set_blocking(self.out.fileno(), False)
        self.text = ""

    def wait_for(self, marker: str, timeout: float) -> str:
        """Read until a line holding MARKER has ended; returns that line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = self.out.read()
            if chunk:
                self.text += chunk.decode(errors="replace")
            match = re.search(rf"^.*{re.escape(marker)}.*\r?\n", self.text, re.MULTILINE)
            if match:
                return match.group(0).strip()
            if self.proc.poll() is not None and not chunk:
                break
            time.sleep(0.05)
        raise AssertionError(f"{marker!r} not on the console within {timeout:.0f}s:\n{self.text[-5000:]}")


def hmp(port: int, command: str) -> str:
    """One command on qemu's human monitor (TCP on the loopback)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(command.encode() + b"\n")
        time.sleep(1)
        s.settimeout(0.5)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except TimeoutError:
            pass
    return out.decode(errors="replace")


def test_cloud_kernel_loads_nvme_e1000e_vmxnet3_and_hotplugged_virtio(tmp_path_factory: pytest.TempPathFactory) -> None:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed (Debian package qemu-system-x86)")
    cache = tmp_path_factory.mktemp("cloud-cache")
    work = tmp_path_factory.mktemp("cloud")
    lk(cache, "build", "--dir", work, DATA / "cloud.yml")
    kernel, initrd = work / "cloud-kernel", work / "cloud-initrd.img"
    size = kernel.stat().st_size + initrd.stat().st_size
    print(f"kernel+initrd: {size / 1e6:.1f} MB (kernel {kernel.stat().st_size / 1e6:.1f} MB)")
    disk, spare = work / "nvme.img", work / "hotplug.img"
    with open(disk, "wb") as f:
        f.truncate(64 << 20)
    with open(spare, "wb") as f:
        f.truncate(8 << 20)
    monitor = free_port()
    argv = [
        "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-smp", "1", "-m", "1024",
        "-nographic", "-nodefaults", "-no-reboot", "-serial", "stdio",
        "-monitor", f"tcp:127.0.0.1:{monitor},server=on,wait=off",
        "-kernel", str(kernel), "-initrd", str(initrd), "-append", (work / "cloud-cmdline").read_text().strip(),
        "-drive", f"if=none,id=nvm,file={disk},format=raw", "-device", "nvme,serial=lkcloud,drive=nvm",
        "-netdev", "user,id=n0", "-device", "e1000e,netdev=n0",
        "-netdev", "user,id=n1", "-device", "vmxnet3,netdev=n1",
        # an empty PCIe slot for the hot-plugged disk
        "-device", "pcie-root-port,id=rp1,chassis=1,slot=1",
    ]  # fmt: skip
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    console = Console(proc)
    try:
        console.wait_for("CLOUD-READY", 400)
        ready = time.monotonic() - start
        out = hmp(monitor, f"drive_add 0 if=none,id=hp,file={spare},format=raw")
        out += hmp(monitor, "device_add virtio-blk-pci,drive=hp,id=hp0,bus=rp1")
        hotplug = console.wait_for("CLOUD-HOTPLUG", 180)
        print(f"ready after {ready:.1f}s, hotplug seen after {time.monotonic() - start:.1f}s")
    finally:
        proc.kill()
        proc.wait()
    text = console.text
    nics = dict(re.findall(r"CLOUD-NIC (eth\d) (driver=\S+ addr=\S*)", text))
    assert sorted(nics.values()) == ["driver=e1000e addr=10.0.2.15/24", "driver=vmxnet3 addr=10.0.2.15/24"], text
    assert re.search(r"CLOUD-DISK nvme0n1 driver=nvme mount=/dev/nvme0n1p1 ext4", text), text[-5000:]
    modules = set(re.search(r"CLOUD-MODULES (.*)", text).group(1).split())  # type: ignore[union-attr]
    assert {"nvme", "e1000e", "vmxnet3", "ext4"} <= modules, modules
    # only the drivers of present hardware: none of the other platforms' (before the hotplug: no virtio)
    assert not modules & {"ena", "gve", "hv_vmbus", "vmw_pvscsi", "xen_netfront", "igb", "ixgbe", "i40e", "mpt3sas",
                          "virtio_pci", "virtio_blk"}, modules  # fmt: skip
    assert hotplug.endswith(f"vda={8 << 11} virtio_pci=1 virtio_blk=1"), (hotplug, out)


def test_platform_aws_example_boots_on_the_emulated_metadata_service(tmp_path: Path) -> None:
    for tool in ("qemu-system-x86_64", "ssh-keygen"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian packages qemu-system-x86, openssh-client)")
    cache = tmp_path / "cache"
    start = time.monotonic()
    lk(cache, "build", "--dir", tmp_path, "--name", "aws", EXAMPLES / "platform-aws.yml", DATA / "aws-check.yml")
    built = time.monotonic() - start
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "aws-test", "-f", str(key)], check=True)
    public = key.with_suffix(".pub").read_text().strip()
    state = tmp_path / "state"
    userdata = {"app": {"entries": {"greeting": {"content": "AWS-USERDATA-OK"}}}}
    argv = [
        sys.executable, "-m", "linuxkit.cli.main", "run", "qemu", "--accel", "tcg", "--mem", "1024",
        "--state", str(state), "--metadata", "aws", "--hostname", "aws-example", "--ssh-key", f"{key}.pub",
        "--data", json.dumps(userdata), str(tmp_path / "aws"),
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, env=_env(cache), timeout=900, check=False)
    booted = time.monotonic() - start - built
    console = proc.stdout.decode(errors="replace")
    log = (state / "metadata.log").read_text() if (state / "metadata.log").exists() else ""
    said = f"{console[-5000:]}\n--- stderr\n{proc.stderr.decode(errors='replace')[-2000:]}\n--- metadata.log\n{log}"
    print(f"platform-aws: build {built:.1f}s, boot to power-off {booted:.1f}s")
    # the service powered the guest off once sshd answered
    assert "AWSCHECK done" in console, said
    assert proc.returncode == 0, said
    assert re.search(r"dhcpcd: eth0: leased 169\.254\.2\.15/16 via 169\.254\.2\.2", console), said
    assert re.search(r"AWSCHECK provider=aws greeting=AWS-USERDATA-OK", console, re.IGNORECASE), said
    assert f"AWSCHECK hostname=aws-example keys={public}" in console, said
    assert re.search(r"AWSCHECK sshd=SSH-2\.0-dropbear", console), said
    assert "GET /latest/user-data 200" in " ".join(log.splitlines()), said
