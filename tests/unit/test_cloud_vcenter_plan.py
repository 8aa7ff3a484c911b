"""``push vcenter``/``run vcenter`` without a server: the URL (credentials inside it, as upstream), names and
datastore paths, the datastore file URL (vSphere's HTTP file access: ``/folder/PATH?dcPath=..&dsName=..``), sizes,
the VM's device specs as the vSphere Web Services API types them (pyVmomi's ``vim`` objects), upstream's flags and
environment variables, and that the CLI module imports no SDK."""

from __future__ import annotations

import http.server
import io
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from linuxkit.cloud import vcenter, vcenter_spec
from linuxkit.errors import LinuxKitError, UserError


def test_url_carries_the_credentials() -> None:
    ep = vcenter_spec.parse_url("https://admin%40vsphere.local:p%3Ass@vc.example:8443/sdk")
    assert (ep.scheme, ep.host, ep.port, ep.path) == ("https", "vc.example", 8443, "/sdk")
    assert (ep.user, ep.password) == ("admin@vsphere.local", "p:ss")
    plain = vcenter_spec.parse_url("http://u:p@10.0.0.1")
    assert (plain.port, plain.path, plain.netloc) == (80, "/sdk", "10.0.0.1:80")
    assert vcenter_spec.parse_url("https://u:p@[::1]/sdk").netloc == "[::1]:443"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("", "$VCURL"),
        ("https://vc.example/sdk", "no user name and password"),
        ("https://user@vc.example/sdk", "no user name and password"),
        ("ftp://u:p@vc.example/sdk", "not an http(s) URL"),
        ("https://u:p@vc.example:notaport/sdk", "cannot be parsed"),
    ],
)
def test_bad_urls_are_user_errors(url: str, words: str) -> None:
    with pytest.raises(UserError) as err:
        vcenter_spec.parse_url(url)
    assert words in str(err.value)
    assert "username:password@" in (err.value.hint or "")


def test_redact_hides_the_password() -> None:
    assert vcenter_spec.redact("https://u:secret@vc/sdk") == "https://u:***@vc/sdk"
    assert vcenter_spec.redact("https://vc/sdk") == "https://vc/sdk"


def test_names_and_paths() -> None:
    assert vcenter_spec.iso_name("out/linuxkit-efi.iso") == "linuxkit-efi.iso"
    assert vcenter_spec.default_folder("out/linuxkit-efi.iso") == "linuxkit-efi"
    with pytest.raises(UserError):
        vcenter_spec.iso_name("disk.raw")
    assert vcenter_spec.datastore_path("ds 1", "f/x.iso") == "[ds 1] f/x.iso"
    ep = vcenter_spec.parse_url("https://u:p@vc:443/sdk")
    assert (
        vcenter_spec.upload_url(ep, "/Folder/DC 1", "ds 1", "my vm/x.iso")
        == "https://vc:443/folder/my%20vm/x.iso?dcPath=%2FFolder%2FDC+1&dsName=ds+1"
    )


def test_names_are_found_or_the_only_one_is_taken() -> None:
    a, b = SimpleNamespace(name="a"), SimpleNamespace(name="b")
    assert vcenter._only("datastore", [a, b], "b", "--datastore") is b
    assert vcenter._only("datastore", [a], "", "--datastore") is a
    with pytest.raises(UserError, match=r"datastore \[c\] could not be found") as err:
        vcenter._only("datastore", [a, b], "c", "--datastore/$VCDATASTORE")
    assert err.value.hint == "--datastore/$VCDATASTORE: one of a, b"
    with pytest.raises(UserError, match="2 datastores: say which") as err:
        vcenter._only("datastore", [b, a], "", "--datastore")
    assert "a, b" in (err.value.hint or "")
    with pytest.raises(UserError, match="no datastore"):
        vcenter._only("datastore", [], "", "--datastore")


def test_persistent_size_as_upstream() -> None:
    assert vcenter_spec.disk_size_mb("512M") == 512
    assert vcenter_spec.disk_size_mb("4G") == 4096
    assert vcenter_spec.disk_size_mb("2") == 2048  # upstream's getDiskSizeMB: no unit is GB
    with pytest.raises(UserError):
        vcenter_spec.disk_size_mb("big")


vim = pytest.importorskip("pyVmomi").vim


def test_create_spec_as_upstream() -> None:
    spec = vcenter_spec.create_spec(vim, name="lk", datastore="ds", cpus=4, mem_mb=2048)
    assert isinstance(spec, vim.vm.ConfigSpec)
    assert (spec.name, spec.guestId, spec.files.vmPathName) == ("lk", "otherLinux64Guest", "[ds]")
    assert (spec.numCPUs, spec.memoryMB) == (4, 2048)
    (change,) = spec.deviceChange
    assert change.operation == "add"
    assert isinstance(change.device, vim.vm.device.ParaVirtualSCSIController)
    assert change.device.busNumber == 0


def _devices() -> list[Any]:
    ide0 = vim.vm.device.VirtualIDEController(key=200, busNumber=0, device=[3000, 3001])
    ide1 = vim.vm.device.VirtualIDEController(key=201, busNumber=1, device=[3002])
    existing = vim.vm.device.VirtualCdrom(key=3002, controllerKey=201, unitNumber=0)
    scsi = vim.vm.device.ParaVirtualSCSIController(key=1000, busNumber=0, scsiCtlrUnitNumber=7)
    disk0 = vim.vm.device.VirtualDisk(key=2000, controllerKey=1000, unitNumber=0)
    return [ide0, ide1, existing, scsi, disk0]


def test_device_changes_cdrom_disk_and_nic() -> None:
    ds = vim.Datastore("datastore-1")
    backing = vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName="VM Network")
    changes = vcenter_spec.device_changes(
        vim, _devices(), iso="[ds] lk/lk.iso", disk="[ds] lk/linuxkit.vmdk", disk_mb=100, datastore=ds, network=backing
    )
    cd, disk, nic = (c.device for c in changes)
    # the first IDE controller with a free slot (ide0 has two devices): ide1, after its CD-ROM at unit 0
    assert (cd.controllerKey, cd.unitNumber, cd.backing.fileName) == (201, 1, "[ds] lk/lk.iso")
    assert cd.connectable.startConnected and cd.connectable.connected
    assert changes[1].fileOperation == "create"
    assert (disk.controllerKey, disk.unitNumber, disk.capacityInKB) == (1000, 1, 100 * 1024)
    assert disk.backing.fileName == "[ds] lk/linuxkit.vmdk" and disk.backing.diskMode == "persistent"
    assert disk.backing.thinProvisioned and disk.backing.datastore == ds
    assert isinstance(nic, vim.vm.device.VirtualVmxnet3) and nic.backing is backing
    assert [c.operation for c in changes] == ["add", "add", "add"]
    assert len({d.key for d in (cd, disk, nic)}) == 3 and all(d.key < 0 for d in (cd, disk, nic))


def test_device_changes_need_controllers() -> None:
    full = [vim.vm.device.VirtualIDEController(key=200, device=[1, 2])]
    with pytest.raises(UserError, match="IDE"):
        vcenter_spec.device_changes(vim, full, iso="[ds] a/a.iso")
    ide = [vim.vm.device.VirtualIDEController(key=200, device=[])]
    assert len(vcenter_spec.device_changes(vim, ide, iso="[ds] a/a.iso")) == 1
    with pytest.raises(UserError, match="SCSI"):
        vcenter_spec.device_changes(vim, ide, iso="[ds] a/a.iso", disk="[ds] a/d.vmdk", disk_mb=1)


def test_a_failed_task_names_its_fault() -> None:
    fault = vim.fault.FileAlreadyExists(file="[ds] a/linuxkit.vmdk")
    with pytest.raises(LinuxKitError, match=r"adding failed: FileAlreadyExists \(\[ds\] a/linuxkit.vmdk\)"):
        vcenter.wait("task", "adding", read=lambda task: ("error", fault, None))
    states = iter([("queued", None, None), ("running", None, None), ("success", None, 42)])
    assert vcenter.wait("task", "x", poll=0.0, read=lambda task: next(states)) == 42


def test_wait_for_ip_times_out() -> None:
    vm = SimpleNamespace(guest=SimpleNamespace(ipAddress=None))
    with pytest.raises(LinuxKitError, match="no guest IP address"):
        vcenter.wait_for_ip(vm, 0.0, poll=0.0)
    vm.guest.ipAddress = "10.0.0.5"
    assert vcenter.wait_for_ip(vm, 0.0) == "10.0.0.5"


def test_wait_for_ip_needs_power_on() -> None:
    opts = vcenter.RunOptions(path="a.iso", target=vcenter.Target(url=""), wait_for_ip=True)
    with pytest.raises(UserError, match="--powerOn"):
        vcenter.run(opts)


def _lk(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VC")}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "linuxkit.cli.main", *args], capture_output=True, text=True, env=environ
    )


def test_flags_and_environment_as_upstream() -> None:
    code = (
        "import sys\n"
        "from linuxkit.cli.main import build_parser\n"
        "a = build_parser().parse_args(['push', 'vcenter', 'x.iso'])\n"
        "print(a.run, a.url, a.datacenter, a.datastore, a.hostname, repr(a.folder))\n"
        "a = build_parser().parse_args(['run', 'vcenter', '--powerOn', '--waitForIP', '--persistentSize', '1G',\n"
        "    '--vmfolder', 'v', '--cpus', '2', '--mem', '64', 'x.iso'])\n"
        "print(a.run, a.network, a.power_on, a.wait_for_ip, a.persistent_size, a.vmfolder, a.cpus, a.mem)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('pyVmomi', 'pyVim', 'linuxkit.cloud.vc'))))\n"
    )
    env = {
        "VCURL": "https://u:p@vc/sdk",
        "VCDATACENTER": "dc",
        "VCDATASTORE": "ds",
        "VCHOST": "h",
        "VCNETWORK": "net",
    }
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, check=True
    )
    assert proc.stdout.splitlines() == [
        "cloud_vcenter_cmd:push https://u:p@vc/sdk dc ds h ''",
        "cloud_vcenter_cmd:run net True True 1G v 2 64",
        "[]",
    ]


def test_help_works_and_booleans_take_cobra_values() -> None:
    for verb, flag in (("push", "--folder"), ("run", "--persistentSize")):
        out = _lk(verb, "vcenter", "--help")
        assert out.returncode == 0, out.stderr
        assert flag in out.stdout and "VCURL" in out.stdout
    proc = _lk("run", "vcenter", "--powerOn=false", "--waitForIP=true", "x.iso")
    assert proc.returncode == 2 and "--waitForIP cannot be used without --powerOn" in proc.stderr


def test_missing_url_names_the_variable(tmp_path: Path) -> None:
    image = tmp_path / "a.iso"
    image.write_bytes(b"x")
    proc = _lk("push", "vcenter", str(image))
    assert proc.returncode == 2
    assert "$VCURL" in proc.stderr and "username:password@" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_missing_sdk_names_the_extra(tmp_path: Path) -> None:
    image = tmp_path / "a.iso"
    image.write_bytes(b"x")
    code = (
        "import sys\n"
        "sys.modules['pyVmomi'] = None\n"
        "from linuxkit.cli.main import main\n"
        f"sys.exit(main(['push', 'vcenter', '--url', 'https://u:p@127.0.0.1:1/sdk', {str(image)!r}]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'linuxkit[vcenter]'" in proc.stderr


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Records each PUT (path, headers, body); answers with the status the test sets."""

    seen: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []
    status: ClassVar[int] = 201

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append((self.path, dict(self.headers.items()), body))
        self.send_response(type(self).status)
        message = b"" if type(self).status < 300 else b"no space left"
        self.send_header("Content-Length", str(len(message)))
        self.end_headers()
        self.wfile.write(message)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the client hanging up mid-request (the "shrank" case) is expected


def test_upload_request_as_vsphere_file_access(tmp_path: Path) -> None:
    """vSphere's HTTP file access ("Datastore access via HTTP", vSphere Web Services SDK Programming Guide): PUT
    /folder/PATH?dcPath=..&dsName=.. with the SOAP session's cookie and the file's length, the file as body."""
    server = _QuietServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        session = vcenter.Session(
            vim=None,
            si=SimpleNamespace(_stub=SimpleNamespace(cookie='vmware_soap_session="52a1"; Path=/')),
            content=None,
            endpoint=vcenter_spec.parse_url(f"http://u:p@127.0.0.1:{port}/sdk"),
            datacenter=None,
            datacenter_path="/DC0",
            datastore=SimpleNamespace(name="ds 1"),
        )
        data = os.urandom(3 * vcenter.CHUNK + 5)
        progress: list[int] = []
        _Recorder.status = 201
        vcenter.upload(session, "lk/lk.iso", io.BytesIO(data), len(data), progress.append)
        ((path, headers, body),) = _Recorder.seen
        assert path == "/folder/lk/lk.iso?dcPath=%2FDC0&dsName=ds+1"
        assert headers["Cookie"] == 'vmware_soap_session="52a1"; Path=/'
        assert headers["Content-Type"] == "application/octet-stream"
        assert headers["Content-Length"] == str(len(data)) and body == data
        assert progress == [vcenter.CHUNK, 2 * vcenter.CHUNK, 3 * vcenter.CHUNK, len(data)]
        _Recorder.status = 507
        with pytest.raises(LinuxKitError, match="HTTP 507 no space left"):
            vcenter.upload(session, "lk/lk.iso", io.BytesIO(data), len(data), progress.append)
        with pytest.raises(LinuxKitError, match="shrank"):
            vcenter.upload(session, "lk/lk.iso", io.BytesIO(data[:10]), len(data), progress.append)
    finally:
        server.shutdown()
        server.server_close()
