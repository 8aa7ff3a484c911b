"""``linuxkit run vbox`` end to end through the CLI with a recording stand-in for ``VBoxManage``
(VirtualBox is not in Debian 12's archive): the plan's steps reach the runner in their order, the
boot image is really converted by ``qemu-img``, the console socket VirtualBox would serve is copied to
our stdout until it closes, and the VM is powered off and deleted at the end, or when a step fails.
This checks the wiring only; the plan itself is checked by the golden files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# VBoxManage's stand-in: records its argv; `startvm` serves the console socket that
# `modifyvm --uartmode1 server PATH` named (a child that writes a line and closes, as a VM powering off)
FAKE = """\
#!{python}
import os, socket, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")
if os.environ.get("FAKE_FAIL_ON") in args:
    sys.exit(1)
state = os.environ["FAKE_LOG"] + ".socket"
if "--uartmode1" in args:
    open(state, "w").write(args[-1])
if args[0] == "startvm" and os.fork() == 0:
    os.setsid()
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(open(state).read())
    srv.listen(1)
    conn, _ = srv.accept()
    conn.sendall(b"FAKE-VM-CONSOLE-LINE\\r\\n")
    conn.close()
    os._exit(0)
"""

needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img is not installed")


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    tool = tmp_path / "VBoxManage"
    tool.write_text(FAKE.format(python=sys.executable))
    tool.chmod(0o755)
    (tmp_path / "lk-bios.img").write_bytes(b"\x55" * (1 << 20))
    return tool


def run_vbox(tmp_path: Path, fake: Path, *args: str, fail_on: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FAKE_LOG": str(tmp_path / "log"), "FAKE_FAIL_ON": fail_on or "-none-"}
    argv = [sys.executable, "-m", "linuxkit.cli.main", "run", "vbox", "--vboxmanage", str(fake), *args]
    return subprocess.run(
        argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


@needs_qemu_img
def test_steps_in_order_console_on_stdout_cleanup_at_the_end(tmp_path: Path, fake: Path) -> None:
    proc = run_vbox(tmp_path, fake, "--disk", "size=16M", "lk-bios.img")
    assert proc.returncode == 0, proc.stderr
    assert "FAKE-VM-CONSOLE-LINE" in proc.stdout
    calls = (tmp_path / "log").read_text().splitlines()
    verbs = [c.split()[0] for c in calls]
    assert verbs[:4] == ["controlvm", "storagectl", "closemedium", "unregistervm"]  # an earlier VM removed
    assert verbs[4] == "createvm" and "startvm" in verbs
    assert verbs[-4:] == ["controlvm", "storagectl", "closemedium", "unregistervm"]  # and ours at the end
    state = tmp_path / "lk-bios-state"
    assert (
        f"storageattach lk-bios --storagectl IDE Controller --port 1 --device 0 --type hdd --medium {state}/lk-bios.vdi"
        in calls
    )
    # the boot disk and the --disk were really made by qemu-img
    assert (state / "lk-bios.vdi").read_bytes()[:64].startswith(b"<<< ")  # VDI's text header
    assert (state / "disk0.vdi").exists()


@needs_qemu_img
def test_failed_step_cleans_up_and_says_what_failed(tmp_path: Path, fake: Path) -> None:
    proc = run_vbox(tmp_path, fake, "lk-bios.img", fail_on="--boot1")
    assert proc.returncode == 1
    assert "VBoxManage failed with exit code 1" in proc.stderr
    calls = (tmp_path / "log").read_text().splitlines()
    assert "startvm" not in [c.split()[0] for c in calls]
    assert calls[-2:] == ["controlvm lk-bios poweroff", "unregistervm lk-bios --delete"]
    assert not (tmp_path / "lk-bios-state" / "lk-bios.vdi").exists()  # our converted copy is removed


def test_missing_vboxmanage_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "lk.iso").write_bytes(b"\0" * 2048)
    proc = subprocess.run(
        [sys.executable, "-m", "linuxkit.cli.main", "run", "vbox", "--vboxmanage", "no-such-vboxmanage", "lk.iso"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "cannot find the VirtualBox management program 'no-such-vboxmanage'" in proc.stderr
    assert "hint:" in proc.stderr and not (tmp_path / "lk-state").exists()


@pytest.mark.parametrize("verb", ["vbox", "vmware", "hyperv"])
def test_help_and_lazy_imports(verb: str) -> None:
    """Each verb's ``--help`` works; its CLI module imports no plan, runner or SDK (linuxkit.run*, linuxkit.cloud*)."""
    help_text = subprocess.run(
        [sys.executable, "-m", "linuxkit.cli.main", "run", verb, "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--cpus" in help_text and "--mem" in help_text and "--disk" in help_text
    code = (
        f"import sys, linuxkit.cli.run_{verb}_cmd; "
        "bad = [m for m in sys.modules if m.startswith(('linuxkit.run', 'linuxkit.cloud'))]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
