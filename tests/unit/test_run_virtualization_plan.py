"""``run virtualization``: the whole plan (state directory, user-data CD, kernel decompression, disk creation and
conversion, and the Virtualization framework configuration as a data tree) for upstream's main flag combinations
and ``--uefi``, compared with golden files (tests/unit/data/run_plans/virtualization/*.txt; the README there says
what upstream's run_virtualizationframework_darwin_cgo_enabled.go builds for the same flags); the steps before
the VM run for real here (qemu-img, gzip, sparse files); the checks; the CLI's imports."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from linuxkit.errors import UserError
from linuxkit.run.disks import parse_disk
from linuxkit.run.plan import Call, Plan, WriteFile, execute, render
from linuxkit.run.virtualization import VirtualizationOptions, VzHost, build_plan, random_mac

GOLDEN = Path(__file__).parent / "data" / "run_plans" / "virtualization"
UPDATE = os.environ.get("LINUXKIT_UPDATE_RUN_PLANS") == "1"
HOST = VzHost(mac=lambda: "02:4c:4b:00:00:01")
KERNEL = b"MZ kernel image " * 4096


@pytest.fixture
def image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    (tmp_path / "vm-kernel").write_bytes(KERNEL)
    (tmp_path / "vm-initrd.img").write_bytes(b"initrd")
    (tmp_path / "vm-cmdline").write_text("console=tty0 console=ttyS0 console=ttyAMA0")
    (tmp_path / "gz-kernel").write_bytes(gzip.compress(KERNEL, mtime=0))
    (tmp_path / "gz-initrd.img").write_bytes(b"initrd")
    (tmp_path / "gz-cmdline").write_text("console=hvc0")
    (tmp_path / "vm-efi.iso").write_bytes(b"iso")
    (tmp_path / "vm-efi.img").write_bytes(b"\0" * 65536)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(tmp_path / "vm-efi.qcow2"), "64M"], check=True)
    (tmp_path / "userdata").write_text('{"hello": "world"}')
    (tmp_path / "share").mkdir()
    (tmp_path / "old.img").write_bytes(b"\0" * 4096)
    return tmp_path


def _options(image: Path, extra: dict[str, object]) -> VirtualizationOptions:
    values: dict[str, object] = {"path": "vm", **extra}
    for key in ("path", "state", "data_file"):
        if key in values:
            values[key] = str(image / str(values[key]))
    if "virtiofs" in values:
        values["virtiofs"] = tuple(str(image / str(v)) for v in values["virtiofs"])  # type: ignore[attr-defined]
    if "disks" in values:
        specs = values["disks"]
        assert isinstance(specs, tuple)
        values["disks"] = tuple(parse_disk(str(s).replace("FILE", str(image))) for s in specs)
    return VirtualizationOptions(**values)  # type: ignore[arg-type]


CASES: dict[str, dict[str, object]] = {
    "kernel_vmnet": {},
    "kernel_gzip_none_data_file": {"path": "gz", "networking": "none", "data_file": "userdata", "cpus": 2, "mem": 2048},
    "kernel_disks_virtiofs_state": {
        "disks": ("size=1G", "FILE/old.img", "FILE/new.raw,size=256M,format=raw"),
        "virtiofs": ("share",),
        "state": "elsewhere",
        "data": "user data",
    },
    "uefi_iso": {"path": "vm-efi.iso", "uefi": True},
    "uefi_raw": {"path": "vm-efi.img", "uefi": True, "networking": "default"},
    "uefi_qcow2_converted": {"path": "vm-efi.qcow2", "uefi": True},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_plan_matches_golden(image: Path, name: str) -> None:
    text = render(build_plan(_options(image, CASES[name]), HOST), {image: "$DIR"})
    path = GOLDEN / f"{name}.txt"
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text(), f"plan differs from {path} (LINUXKIT_UPDATE_RUN_PLANS=1 rewrites it)"


def _tree(plan: Plan) -> dict[str, object]:
    last = plan.steps[-1]
    assert isinstance(last, Call) and last.function == "linuxkit.run.vzmachine:start_vm"
    assert isinstance(last.data, dict)
    return dict(last.data)


def test_the_tree_is_upstreams_configuration(image: Path) -> None:
    """What runVirtualizationFramework configures for `run virtualization --cpus 2 --mem 512 PREFIX`: the Linux
    boot loader with the image's command line plus console=hvc0, CPUs, memory in bytes, one virtio console on
    stdio, NAT networking with a random MAC, entropy, a balloon and a vsock device; no disks, no shares."""
    tree = _tree(build_plan(_options(image, {"cpus": 2, "mem": 512}), HOST))
    assert tree["boot_loader"] == {
        "type": "linux",
        "kernel": f"{image}/vm-kernel",
        "initrd": f"{image}/vm-initrd.img",
        "command_line": "console=tty0 console=ttyS0 console=ttyAMA0 console=hvc0",
    }
    assert (tree["cpu_count"], tree["memory_size"]) == (2, 512 * 1024 * 1024)
    assert tree["network_devices"] == [{"type": "virtio-net", "attachment": "nat", "mac_address": "02:4c:4b:00:00:01"}]
    assert tree["storage_devices"] == [] and tree["directory_sharing_devices"] == []
    assert [d["type"] for d in tree["serial_ports"]] == ["virtio-console"]  # type: ignore[attr-defined]
    assert tree["minimum_macos"] == 11


def test_random_mac_is_locally_administered_unicast() -> None:
    macs = {random_mac() for _ in range(50)}
    assert len(macs) == 50
    for mac in macs:
        first = int(mac.split(":")[0], 16)
        assert first & 0x02 and not first & 0x01


def _prepare(plan: Plan) -> None:
    """Every step but the last (the VM itself), for real."""
    execute(Plan(plan.title, plan.steps[:-1]))


def test_steps_before_the_vm_run_for_real(image: Path) -> None:
    plan = build_plan(_options(image, CASES["kernel_gzip_none_data_file"] | {"disks": ("size=1G",)}), HOST)
    _prepare(plan)
    state = image / "gz-state"
    tree = _tree(plan)
    loader = tree["boot_loader"]
    assert isinstance(loader, dict) and loader["kernel"] == f"{state}/kernel-uncompressed"
    assert (state / "kernel-uncompressed").read_bytes() == KERNEL
    disk = state / "disk.raw"
    assert disk.stat().st_size == 1024 * 1024 * 1024 and disk.stat().st_blocks == 0
    iso = (state / "data.iso").read_bytes()
    assert iso[32769:32774] == b"CD001" and b'{"hello": "world"}' in iso
    # planned again: the disk is there now (used as it is), the user-data CD has the same bytes (SOURCE_DATE_EPOCH)
    again = build_plan(_options(image, CASES["kernel_gzip_none_data_file"] | {"disks": ("size=1G",)}), HOST)
    assert "ensure_raw_disk" not in render(again)
    written = [s for s in again.steps if isinstance(s, WriteFile)]
    assert [w.content for w in written] == [iso]


def test_a_qcow2_efi_image_is_converted_to_raw(image: Path) -> None:
    subprocess.run(["qemu-io", "-c", "write -P 0x5a 1M 64k", str(image / "vm-efi.qcow2")], check=True)
    plan = build_plan(_options(image, {"path": "vm-efi.qcow2", "uefi": True}), HOST)
    _prepare(plan)
    raw = image / "vm-efi-state" / "boot.raw"
    out = subprocess.run(["qemu-img", "info", "--output=json", str(raw)], capture_output=True, check=True).stdout
    info = json.loads(out)
    assert (info["format"], info["virtual-size"]) == ("raw", 64 * 1024 * 1024)
    subprocess.run(["qemu-img", "compare", "-q", str(image / "vm-efi.qcow2"), str(raw)], check=True)
    tree = _tree(plan)
    assert tree["storage_devices"] == [{"type": "virtio-block", "path": str(raw), "read_only": False}]
    assert tree["minimum_macos"] == 13 and tree["platform"] == "generic"


def test_a_kept_efi_variable_store_is_reused(image: Path) -> None:
    (image / "vm-efi-state").mkdir()
    (image / "vm-efi-state" / "efi-variable-store").write_bytes(b"vars")
    loader = _tree(build_plan(_options(image, {"path": "vm-efi.iso", "uefi": True}), HOST))["boot_loader"]
    assert isinstance(loader, dict) and loader["create_variable_store"] is False


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"path": "missing"}, "cannot find kernel file"),
        ({"path": "missing.iso", "uefi": True}, "cannot find EFI image"),
        ({"data": "a", "data_file": "userdata"}, "cannot specify both --data and --data-file"),
        ({"networking": "vpnkit"}, "invalid networking mode: vpnkit"),
        ({"disks": ("size=1G,format=qcow2",)}, "can only use raw disks, not qcow2"),
        ({"disks": ("FILE/vm-efi.qcow2",)}, "is a qcow2 image"),
        ({"disks": ("FILE/none.raw",)}, "does not exist"),
        ({"disks": ("format=raw",)}, "disk specified with no size or name"),
        ({"virtiofs": ("nowhere",)}, "not a directory"),
        ({"cpus": 0}, "--cpus and --mem must be at least 1"),
        ({"path": "vm-efi.iso", "uefi": True, "kernel": True}, "please specify only one boot method"),
    ],
)
def test_checks_before_anything_runs(image: Path, extra: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message.replace("+", r"\+")):
        build_plan(_options(image, extra), HOST)
    assert not (image / "vm-state").exists()


@pytest.mark.skipif(sys.platform == "darwin", reason="the refusal is for other systems")
def test_the_vm_step_refuses_other_systems(image: Path) -> None:
    from linuxkit.run.vzmachine import start_vm

    with pytest.raises(UserError, match=r"run virtualization needs macOS 11\+"):
        start_vm(_tree(build_plan(_options(image, {}), HOST)))  # type: ignore[arg-type]


def test_cli_help_refusal_and_imports(tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "linuxkit", *args], capture_output=True, text=True, cwd=tmp_path)

    helped = cli("run", "virtualization", "--help")
    assert helped.returncode == 0
    for flag in ("--virtiofs", "--networking", "--kernel", "--uefi", "--data-file", "--state", "--cpus"):
        assert flag in helped.stdout
    if sys.platform != "darwin":
        refused = cli("run", "virtualization", "--kernel=true", "vm")
        assert refused.returncode == 2
        assert "needs macOS 11+" in refused.stderr and "Traceback" not in refused.stderr
    # the command-line modules import neither PyObjC nor the plan builders; the builders import no PyObjC
    probe = (
        "import sys; import linuxkit.cli.run_virtualization_cmd, linuxkit.cli.run_hyperkit_cmd; "
        "early = sorted(m for m in sys.modules if m.startswith('linuxkit.run')); "
        "import linuxkit.run.virtualization, linuxkit.run.hyperkit; "
        "objc = sorted(m for m in sys.modules if m.split('.')[0] in ('objc', 'Virtualization', 'Foundation')); "
        "print(early, objc)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] []"
