"""One boot of examples/tpm.yml with tests/data/guest/agents-check.yml under a qemu (TCG) started here, since
`linuxkit run qemu` has no TPM or guest-agent option: a software TPM 2.0 (swtpm, tpm-crb device) for the tss
service, whose broker tsscheck drives with tpm2-tools; and a virtio-serial channel named org.qemu.guest_agent.0,
on which the host asks qemu-ga for its version."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from tests.conftest import ROOT
from tests.integration.test_guest_boot import lk
from tests.integration.test_guest_services import poll

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _agent(sock: Path, *commands: dict[str, object]) -> list[dict[str, object]]:
    """Send guest-sync and then ``commands`` to the agent, one JSON answer each."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(sock))
        answers = []
        for cmd in ({"execute": "guest-sync", "arguments": {"id": 4711}}, *commands):
            s.sendall(json.dumps(cmd).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                data += s.recv(65536)
            answers.append(json.loads(data.decode().strip().splitlines()[-1]))
        return answers


def test_tpm_example_with_a_software_tpm_and_the_guest_agent(tmp_path: Path) -> None:
    for tool in ("swtpm", "qemu-system-x86_64"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian packages swtpm, qemu-system-x86)")
    cache = tmp_path / "cache"
    files = (ROOT / "examples" / "tpm.yml", ROOT / "tests" / "data" / "guest" / "agents-check.yml")
    lk(cache, "build", "--name", "tpm", "--dir", tmp_path, *files)
    state = tmp_path / "swtpm"
    state.mkdir()
    console, qga = tmp_path / "console.log", tmp_path / "qga.sock"
    swtpm = subprocess.Popen(
        ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}", "--ctrl", f"type=unixio,path={state}/sock",
         "--flags", "startup-clear"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    qemu = None
    try:
        poll("swtpm socket", lambda: (state / "sock").exists(), 10)
        qemu = subprocess.Popen(
            ["qemu-system-x86_64", "-machine", "q35,accel=tcg", "-m", "1024", "-smp", "1", "-nographic",
             "-nodefaults", "-no-reboot", "-display", "none", "-serial", f"file:{console}",
             "-kernel", str(tmp_path / "tpm-kernel"), "-initrd", str(tmp_path / "tpm-initrd.img"),
             "-append", (tmp_path / "tpm-cmdline").read_text().strip(),
             "-device", "virtio-rng-pci", "-nic", "user,model=virtio-net-pci",
             "-chardev", f"socket,id=chrtpm,path={state}/sock", "-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
             "-device", "tpm-crb,tpmdev=tpm0",
             "-device", "virtio-serial-pci", "-chardev", f"socket,path={qga},server=on,wait=off,id=qga0",
             "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        text = lambda: console.read_text(errors="replace") if console.exists() else ""  # noqa: E731
        took = poll("tpm2-tools through the broker", lambda: "TPM-PCR" in text() or "TPM-TIMEOUT" in text(), 300)
        print(f"tsscheck done {took:.0f}s after qemu started")
        answers: list[dict[str, object]] = []

        def ask() -> bool:
            answers[:] = _agent(qga, {"execute": "guest-info"}, {"execute": "guest-get-host-name"})
            return True

        took = poll("qemu-ga answers on its channel", ask, 120)
        print(f"qemu-ga answered {took:.0f}s later")
    finally:
        if qemu is not None:
            qemu.terminate()
            qemu.wait(30)
        swtpm.terminate()
        swtpm.wait(30)
    out = text()
    tail = out[-3000:]
    # the broker (tpm2-abrmd on the TPM, on its private bus) answers tpm2-tools from another container
    assert "TPM-TIMEOUT" not in out, tail
    assert re.search(r"TPM-RANDOM [0-9a-f]{16}\n", out), tail
    assert "TPM-PCR  sha256: 7 : 0x" in out, tail
    assert "service tss: exited" not in out, tail
    # the agent: guest-sync echoes the id, guest-info names its version, the host name is the system's
    assert answers[0] == {"return": 4711}, answers
    info = answers[1]["return"]
    assert isinstance(info, dict) and str(info["version"]).startswith("7.2"), answers
    name = answers[2]["return"]
    assert isinstance(name, dict) and str(name["host-name"]).startswith("linuxkit-"), answers
    assert "service qemu-ga: exited" not in out, tail
