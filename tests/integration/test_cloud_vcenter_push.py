"""``push vcenter`` and ``run vcenter`` against govmomi's vCenter simulator (vcsim: the Go library Debian packages,
built by tests/vcsim.py), started over HTTPS on a free loopback port for the module. The uploaded ISO is read back
through the datastore's HTTP file access and compared byte for byte; the VM ``run`` makes is read back with
pyVmomi (CPUs, memory, guest type, host, power state, CD-ROM backing, persistent disk, network card); failures
leave nothing behind (partial upload deleted, half-created VM destroyed)."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from tests import vcsim

pytestmark = [pytest.mark.integration]

pyvmomi = pytest.importorskip("pyVmomi")
connect_mod = pytest.importorskip("pyVim.connect")
vim = pyvmomi.vim

DATASTORE = "LocalDS_0"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[vcsim.Simulator]:
    with vcsim.running(tmp_path_factory.mktemp("vcsim")) as simulator:
        yield simulator


@pytest.fixture
def sdk(sim: vcsim.Simulator) -> str:
    return sim.url


def tasks(sim: vcsim.Simulator, mark: int) -> list[str]:
    """The task-starting operations received since ``mark`` (the ones that change or search the inventory)."""
    return [op for op in sim.operations_since(mark) if op.endswith("_Task")]


def body(sim: vcsim.Simulator, mark: int, operation: str) -> str:
    (found,) = [text for op, text in sim.requests_since(mark) if op == operation]
    return found


def vc_url(sdk: str, user: str = vcsim.USER, password: str = vcsim.PASSWORD) -> str:
    return sdk.replace("https://", f"https://{quote(user, safe='')}:{quote(password, safe='')}@")


def lk(sdk: str, *args: str, url: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VC")}
    environ.update({"VCURL": vc_url(sdk) if url is None else url, **env})
    return subprocess.run(
        [sys.executable, "-m", "linuxkit.cli.main", *args], capture_output=True, text=True, env=environ, timeout=120
    )


def read_back(sdk: str, relative: str) -> bytes | None:
    """A datastore file through vSphere's HTTP file access (``None`` when it is not there)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    url = f"{sdk.removesuffix('/sdk')}/folder/{relative}?dcPath=%2FDC0&dsName={DATASTORE}"
    try:
        with urllib.request.urlopen(url, context=context) as resp:
            return bytes(resp.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


@pytest.fixture
def client(sdk: str) -> Iterator[Any]:
    host, port = sdk.removeprefix("https://").removesuffix("/sdk").rsplit(":", 1)
    si = connect_mod.SmartConnect(
        host=host, port=int(port), user=vcsim.USER, pwd=vcsim.PASSWORD, disableSslCertValidation=True
    )
    yield si
    connect_mod.Disconnect(si)


def vms(si: Any) -> dict[str, Any]:
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    try:
        return {vm.name: vm for vm in view.view}
    finally:
        view.Destroy()


def iso(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def test_push_uploads_the_iso_to_its_folder(sim: vcsim.Simulator, sdk: str, tmp_path: Path) -> None:
    image = iso(tmp_path, "lk-push.iso", 5 * 1024 * 1024 + 123)
    mark = sim.mark()
    proc = lk(sdk, "push", "vcenter", str(image))
    assert proc.returncode == 0, proc.stderr
    ops = sim.operations_since(mark)
    assert ops[:2] == ["RetrieveServiceContent", "Login"] and ops[-1] == "Logout"
    assert "CreateContainerView" in ops and tasks(sim, mark) == []  # looks up, changes nothing over SOAP
    login = body(sim, mark, "Login")
    assert f">{vcsim.USER}</userName>" in login and f">{vcsim.PASSWORD}</password>" in login  # decoded from the URL
    assert f"[{DATASTORE}] lk-push/lk-push.iso" in proc.stdout + proc.stderr
    assert read_back(sdk, "lk-push/lk-push.iso") == image.read_bytes()


def test_push_with_flags_instead_of_the_environment(sdk: str, tmp_path: Path) -> None:
    image = iso(tmp_path, "other.iso", 4096)
    proc = lk(
        sdk,
        "push",
        "vcenter",
        "--url",
        vc_url(sdk),
        "--datacenter",
        "DC0",
        "--datastore",
        DATASTORE,
        "--folder",
        "isos",
        str(image),
        url="https://nobody:wrong@127.0.0.1:1/sdk",
    )
    assert proc.returncode == 0, proc.stderr
    assert read_back(sdk, "isos/other.iso") == image.read_bytes()


def test_push_refusals_are_user_errors(sdk: str, tmp_path: Path) -> None:
    image = iso(tmp_path, "refused.iso", 1024)
    wrong = lk(sdk, "push", "vcenter", str(image), url=vc_url(sdk, password="wrong"))
    assert wrong.returncode == 2, wrong.stderr
    assert "refused the login" in wrong.stderr and "VCURL" in wrong.stderr and "wrong" not in wrong.stderr
    missing = lk(sdk, "push", "vcenter", str(image), url="")
    assert missing.returncode == 2 and "$VCURL" in missing.stderr
    no_ds = lk(sdk, "push", "vcenter", "--datastore", "nope", str(image))
    assert no_ds.returncode == 2 and "[nope] could not be found" in no_ds.stderr and DATASTORE in no_ds.stderr
    not_iso = lk(sdk, "push", "vcenter", str(tmp_path / "disk.raw"))
    assert not_iso.returncode == 2 and ".iso" in not_iso.stderr
    assert read_back(sdk, "refused/refused.iso") is None


def test_an_interrupted_upload_is_deleted(
    sim: vcsim.Simulator, sdk: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process: the upload is cut after its first MiB (as Ctrl-C would); the partial file is deleted."""
    from linuxkit.cloud import vcenter

    image = iso(tmp_path, "cut.iso", 4 * 1024 * 1024)
    real = vcenter.upload

    def cut(session: Any, relative: str, source: Any, size: int, on_progress: Any, **kw: Any) -> None:
        def progress(done: int) -> None:
            if done >= 2 * vcenter.CHUNK:
                raise KeyboardInterrupt
            on_progress(done)

        real(session, relative, source, size, progress, **kw)

    monkeypatch.setattr(vcenter, "upload", cut)
    mark = sim.mark()
    with pytest.raises(KeyboardInterrupt):
        vcenter.push(vcenter.PushOptions(path=image, target=vcenter.Target(url=vc_url(sdk))))
    assert read_back(sdk, "cut/cut.iso") is None
    assert tasks(sim, mark) == ["DeleteDatastoreFile_Task"]
    assert f">[{DATASTORE}] cut/cut.iso</name>" in body(sim, mark, "DeleteDatastoreFile_Task")


def test_run_creates_the_vm_as_upstream(sim: vcsim.Simulator, sdk: str, client: Any, tmp_path: Path) -> None:
    """The SOAP bodies are checked against the vSphere Web Services API's ``VirtualMachineConfigSpec`` (name,
    guestId, files.vmPathName, numCPUs, memoryMB, deviceChange) and ``VirtualDeviceConfigSpec`` types."""
    image = iso(tmp_path, "lk-run.iso", 64 * 1024)
    assert lk(sdk, "push", "vcenter", str(image)).returncode == 0
    mark = sim.mark()
    proc = lk(
        sdk,
        "run",
        "vcenter",
        "--cpus",
        "2",
        "--mem",
        "512",
        "--persistentSize",
        "2G",
        "--network",
        "VM Network",
        "--hostname",
        "DC0_C0_H1",
        "--powerOn",
        str(image),
    )
    assert proc.returncode == 0, proc.stderr
    assert tasks(sim, mark) == ["SearchDatastore_Task", "CreateVM_Task", "ReconfigVM_Task", "PowerOnVM_Task"]
    create = body(sim, mark, "CreateVM_Task")
    for part in (
        "<name>lk-run</name>",
        "<guestId>otherLinux64Guest</guestId>",
        f"<files><vmPathName>[{DATASTORE}]</vmPathName></files>",
        "<numCPUs>2</numCPUs>",
        "<memoryMB>512</memoryMB>",
        '<deviceChange><operation>add</operation><device xsi:type="ParaVirtualSCSIController">',
        'type="ResourcePool">',
    ):
        assert part in create
    reconfig = body(sim, mark, "ReconfigVM_Task")
    for part in (
        '<device xsi:type="VirtualCdrom">',
        f'<backing xsi:type="VirtualCdromIsoBackingInfo"><fileName>[{DATASTORE}] lk-run/lk-run.iso</fileName>',
        "<startConnected>true</startConnected>",
        '<fileOperation>create</fileOperation><device xsi:type="VirtualDisk">',
        "<diskMode>persistent</diskMode><thinProvisioned>true</thinProvisioned>",
        "<capacityInKB>2097152</capacityInKB>",
        '<device xsi:type="VirtualVmxnet3">',
        "<deviceName>VM Network</deviceName>",
        "<addressType>generated</addressType>",
    ):
        assert part in reconfig
    vm = vms(client)["lk-run"]
    assert vm.config.guestId == "otherLinux64Guest"
    assert (vm.config.hardware.numCPU, vm.config.hardware.memoryMB) == (2, 512)
    assert vm.runtime.host.name == "DC0_C0_H1"
    assert vm.runtime.powerState == "poweredOn"
    assert vm.config.files.vmPathName.startswith(f"[{DATASTORE}] ")
    devices = list(vm.config.hardware.device)
    scsi = [d for d in devices if isinstance(d, vim.vm.device.ParaVirtualSCSIController)]
    assert len(scsi) == 1
    (cdrom,) = [d for d in devices if isinstance(d, vim.vm.device.VirtualCdrom)]
    assert cdrom.backing.fileName == f"[{DATASTORE}] lk-run/lk-run.iso"
    assert cdrom.connectable.startConnected
    (disk,) = [d for d in devices if isinstance(d, vim.vm.device.VirtualDisk)]
    assert disk.controllerKey == scsi[0].key
    assert disk.capacityInKB == 2 * 1024 * 1024
    assert disk.backing.fileName == f"[{DATASTORE}] lk-run/linuxkit.vmdk"
    (nic,) = [d for d in devices if isinstance(d, vim.vm.device.VirtualVmxnet3)]
    assert nic.backing.deviceName == "VM Network"
    assert read_back(sdk, "lk-run/linuxkit.vmdk") is not None


def test_run_defaults_no_power_no_disk_no_network(sdk: str, client: Any, tmp_path: Path) -> None:
    image = iso(tmp_path, "plain.iso", 4096)
    assert lk(sdk, "push", "vcenter", "--folder", "plain-vm", str(image)).returncode == 0
    proc = lk(sdk, "run", "vcenter", "--vmfolder", "plain-vm", str(image))
    assert proc.returncode == 0, proc.stderr
    vm = vms(client)["plain-vm"]
    assert (vm.config.hardware.numCPU, vm.config.hardware.memoryMB) == (1, 1024)
    assert vm.runtime.powerState == "poweredOff"
    devices = list(vm.config.hardware.device)
    assert not [d for d in devices if isinstance(d, (vim.vm.device.VirtualDisk, vim.vm.device.VirtualEthernetCard))]
    (cdrom,) = [d for d in devices if isinstance(d, vim.vm.device.VirtualCdrom)]
    assert cdrom.backing.fileName == f"[{DATASTORE}] plain-vm/plain.iso"


def test_run_on_a_distributed_port_group(sdk: str, client: Any, tmp_path: Path) -> None:
    image = iso(tmp_path, "dvpg.iso", 4096)
    assert lk(sdk, "push", "vcenter", str(image)).returncode == 0
    proc = lk(sdk, "run", "vcenter", str(image), VCNETWORK="DC0_DVPG0")
    assert proc.returncode == 0, proc.stderr
    (nic,) = [d for d in vms(client)["dvpg"].config.hardware.device if isinstance(d, vim.vm.device.VirtualVmxnet3)]
    assert isinstance(nic.backing, vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo)
    pg = next(n for n in client.RetrieveContent().rootFolder.childEntity[0].network if n.name == "DC0_DVPG0")
    assert nic.backing.port.portgroupKey == pg.key
    assert nic.backing.port.switchUuid == pg.config.distributedVirtualSwitch.uuid


def test_run_refuses_an_iso_not_pushed(sim: vcsim.Simulator, sdk: str, client: Any, tmp_path: Path) -> None:
    mark = sim.mark()
    proc = lk(sdk, "run", "vcenter", str(tmp_path / "never-pushed.iso"))
    assert tasks(sim, mark) == ["SearchDatastore_Task"]
    assert proc.returncode == 2, proc.stderr
    assert "not on the datastore" in proc.stderr and "push" in proc.stderr
    assert "never-pushed" not in vms(client)


def test_run_destroys_a_half_created_vm(sim: vcsim.Simulator, sdk: str, client: Any, tmp_path: Path) -> None:
    """The persistent disk's file exists already (a second run of the same name): adding it fails after the VM
    was created, and that VM is destroyed."""
    image = iso(tmp_path, "twice.iso", 4096)
    assert lk(sdk, "push", "vcenter", str(image)).returncode == 0
    first = lk(sdk, "run", "vcenter", "--persistentSize", "100M", str(image))
    assert first.returncode == 0, first.stderr
    (vm,) = [vm for name, vm in vms(client).items() if name == "twice"]
    mark = sim.mark()
    second = lk(sdk, "run", "vcenter", "--persistentSize", "100M", "--powerOn", str(image))
    assert second.returncode == 1, second.stderr
    assert tasks(sim, mark) == ["SearchDatastore_Task", "CreateVM_Task", "ReconfigVM_Task", "Destroy_Task"]
    assert "FileAlreadyExists" in second.stderr and "Deleted the half-created VM twice" in second.stderr
    assert [v for name, v in vms(client).items() if name == "twice"] == [vm]


def test_an_interrupted_run_destroys_the_vm(
    sim: vcsim.Simulator, sdk: str, client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process: Ctrl-C (or SIGTERM, which the CLI raises the same way) right after the VM was created."""
    from linuxkit.cloud import vcenter, vcenter_spec

    image = iso(tmp_path, "ctrlc.iso", 4096)
    assert lk(sdk, "push", "vcenter", str(image)).returncode == 0

    def interrupted(*args: Any, **kwargs: Any) -> list[Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(vcenter_spec, "device_changes", interrupted)
    mark = sim.mark()
    with pytest.raises(KeyboardInterrupt):
        vcenter.run(vcenter.RunOptions(path=str(image), target=vcenter.Target(url=vc_url(sdk)), power_on=True))
    assert tasks(sim, mark) == ["SearchDatastore_Task", "CreateVM_Task", "Destroy_Task"]
    assert "ctrlc" not in vms(client)
    assert "Logout" in sim.operations_since(mark)
