"""The disk steps of the ``run vbox``, ``run vmware`` and ``run hyperv`` plans run for real: a
``raw-bios`` (or ``raw-efi``) image of a marker rootfs converted by each plan's ``qemu-img`` step to
the hypervisor's format (VDI, monolithic sparse VMDK for LSI Logic, dynamic VHDX), each read back with
``qemu-img info`` and ``qemu-img compare``, its ``--disk`` made at the size asked, and the converted
boot disk booted under qemu (TCG) until the marker shows on the serial console.

VirtualBox and VMware are not in Debian 12's archive (nor on PyPI), and Hyper-V is Windows-only, so
the hypervisor steps themselves are checked by the golden plans (tests/unit/data/run_plans/)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.bootkit import boot, marker_rootfs_tar, write_format

from linuxkit.errors import BuildError
from linuxkit.run import plan as P
from linuxkit.run.disks import parse_disk
from linuxkit.run.hyperv import HyperVOptions, plan_hyperv
from linuxkit.run.vbox import VBoxOptions, plan_vbox
from linuxkit.run.vmware import VMwareOptions, plan_vmware

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MARKER = "LINUXKIT-DESKTOP-DISK-MARKER-51c2"
OVMF = Path("/usr/share/ovmf/OVMF.fd")
EPOCH = 1700000000
TOOLS = ("qemu-img", "mkfs.vfat", "mcopy", "syslinux")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing tools: {missing}")
    work = tmp_path_factory.mktemp("desktop")
    rootfs = marker_rootfs_tar(work / "rootfs.tar", MARKER)
    out = {}
    for fmt in ("raw-bios", "raw-efi"):
        (written,) = write_format(fmt, rootfs, work / fmt, EPOCH, boot_files=Path("/"))
        out[fmt] = written
    return out


def disk_steps(plan: P.Plan) -> P.Plan:
    """The plan's steps that do not need the hypervisor: directories, files, disk creation and conversion."""
    local = (P.MakeDir, P.WriteFile, P.CreateDisk, P.ConvertDisk, P.RemoveOnFailure)
    return P.Plan(plan.title, [s for s in plan.steps if isinstance(s, local)])


def info(path: Path) -> dict[str, object]:
    out = subprocess.run(["qemu-img", "info", "--output=json", str(path)], capture_output=True, check=True).stdout
    result: dict[str, object] = json.loads(out)
    return result


def same_content(a: Path, b: Path) -> None:
    proc = subprocess.run(["qemu-img", "compare", "-q", str(a), str(b)], capture_output=True)
    assert proc.returncode == 0, f"{a} and {b} differ: {proc.stdout!r} {proc.stderr!r}"


def converted(plan: P.Plan) -> Path:
    (step,) = [s for s in plan.steps if isinstance(s, P.ConvertDisk)]
    return step.dst


def test_vbox_boot_disk_becomes_a_vdi_that_boots(images: dict[str, Path], tmp_path: Path) -> None:
    src = shutil.copy(images["raw-bios"], tmp_path / "lk-bios.img")
    plan = plan_vbox(VBoxOptions(str(src), disks=(parse_disk("size=64M"),)))
    P.execute(disk_steps(plan))
    vdi = converted(plan)
    assert vdi == tmp_path / "lk-bios-state" / "lk-bios.vdi"
    meta = info(vdi)
    assert meta["format"] == "vdi" and meta["virtual-size"] == Path(src).stat().st_size
    same_content(Path(src), vdi)
    extra = info(tmp_path / "lk-bios-state" / "disk0.vdi")
    assert extra["format"] == "vdi" and extra["virtual-size"] == 64 << 20
    console = boot(["-drive", f"file={vdi},format=vdi"], MARKER, timeout=240)
    assert MARKER in console


def test_vmware_boot_disk_becomes_a_sparse_vmdk_that_boots(images: dict[str, Path], tmp_path: Path) -> None:
    src = shutil.copy(images["raw-bios"], tmp_path / "lk-bios.img")
    plan = plan_vmware(VMwareOptions(str(src), disks=(parse_disk("size=64M"),), platform="linux"))
    P.execute(disk_steps(plan))
    vmdk = converted(plan)
    meta = info(vmdk)
    assert meta["format"] == "vmdk" and meta["virtual-size"] == Path(src).stat().st_size
    specific = meta["format-specific"]
    assert isinstance(specific, dict) and specific["data"]["create-type"] == "monolithicSparse"
    assert b'ddb.adapterType = "lsilogic"' in vmdk.read_bytes()[:4096]
    same_content(Path(src), vmdk)
    state = tmp_path / "lk-bios-state"
    disk = info(state / "disk.vmdk")
    assert disk["format"] == "vmdk" and disk["virtual-size"] == 64 << 20
    vmx = (state / "linuxkit.vmx").read_text()
    assert f'scsi0:0.fileName = "{vmdk}"' in vmx and f'scsi0:1.fileName = "{state / "disk.vmdk"}"' in vmx
    console = boot(["-drive", f"file={vmdk},format=vmdk"], MARKER, timeout=240)
    assert MARKER in console


def test_hyperv_efi_disk_becomes_a_dynamic_vhdx_that_boots_under_uefi(images: dict[str, Path], tmp_path: Path) -> None:
    if not OVMF.exists():
        pytest.skip("ovmf not installed")
    src = shutil.copy(images["raw-efi"], tmp_path / "lk-efi.img")
    plan = plan_hyperv(HyperVOptions(str(src), cwd=str(tmp_path)))
    P.execute(disk_steps(plan))
    vhdx = converted(plan)
    assert vhdx == tmp_path / "lk-efi-state" / "lk.vhdx"
    meta = info(vhdx)
    assert meta["format"] == "vhdx" and meta["virtual-size"] == Path(src).stat().st_size
    assert int(str(meta["actual-size"])) < Path(src).stat().st_size  # dynamic: the holes are not stored
    same_content(Path(src), vhdx)
    console = boot(["-bios", str(OVMF), "-drive", f"file={vhdx},format=vhdx"], MARKER, timeout=300)
    assert MARKER in console


def test_a_broken_source_is_a_clear_error_and_leaves_no_disk(tmp_path: Path) -> None:
    """qemu-img refuses a file named .qcow2 that is not one: its message comes out, no VDI is left."""
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img not installed")
    bad = tmp_path / "broken.qcow2"
    bad.write_bytes(b"not a qcow2 image" * 100)
    plan = plan_vbox(VBoxOptions(str(bad)))
    with pytest.raises(BuildError, match=r"qemu-img failed .*qcow2"):
        P.execute(disk_steps(plan))
    assert not converted(plan).exists()
