"""Pure pieces of ``linuxkit push vcenter`` / ``run vcenter``: the vCenter URL (credentials inside it, as
upstream), names and datastore paths, the datastore file URL, and the device specs of a new VM (built from
pyVmomi's ``vim`` module, passed in, so this module imports no SDK)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from ..errors import UserError
from ..sizes import parse_size_mb

URL_ENV = "VCURL"
URL_FORMAT = "https://username:password@VCaddress/sdk"
#: the guest type and the persistent disk's file name upstream uses
GUEST_ID = "otherLinux64Guest"
PERSISTENT_DISK = "linuxkit.vmdk"


@dataclass(frozen=True)
class Endpoint:
    """Where vCenter (or ESXi) answers and who logs in."""

    scheme: str
    host: str
    port: int
    path: str
    user: str
    password: str

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_url(url: str) -> Endpoint:
    """``https://user:password@host[:port]/sdk`` (upstream's ``--url``/``$VCURL``); user and password may be
    percent-encoded. The path defaults to ``/sdk``."""
    if not url:
        raise UserError(
            "no vCenter URL: --url is empty and $VCURL is not set",
            hint=f"pass --url {URL_FORMAT} or set {URL_ENV}",
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UserError(f"the vCenter URL cannot be parsed: {exc}", hint=f"use the form {URL_FORMAT}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(
            f"the vCenter URL {redact(url)} is not an http(s) URL with a host", hint=f"use the form {URL_FORMAT}"
        )
    if not parts.username or parts.password is None:
        raise UserError(
            f"the vCenter URL {redact(url)} has no user name and password",
            hint=f"put them in the URL ({URL_FORMAT}), in --url or ${URL_ENV}",
        )
    return Endpoint(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or (443 if parts.scheme == "https" else 80),
        path=parts.path or "/sdk",
        user=unquote(parts.username),
        password=unquote(parts.password),
    )


def redact(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{parts.username}:***@{netloc}").geturl()


def iso_name(path: str) -> str:
    """The file name of an ISO; anything else is refused (upstream pushes and boots ISOs only)."""
    name = PurePosixPath(path.replace("\\", "/")).name
    if not name.endswith(".iso"):
        raise UserError(f"{path} is not an .iso file", hint="vCenter boots LinuxKit ISOs: build with -format iso-bios")
    return name


def default_folder(path: str) -> str:
    """The datastore folder (and VM name) upstream uses: the ISO's name without ``.iso``."""
    return iso_name(path)[: -len(".iso")]


def datastore_path(datastore: str, relative: str) -> str:
    """A file on a datastore as vSphere names it: ``[datastore] folder/file``."""
    return f"[{datastore}] {relative}"


def upload_url(endpoint: Endpoint, datacenter_path: str, datastore: str, relative: str) -> str:
    """The datastore file URL (vSphere's HTTP file access: ``/folder/PATH?dcPath=..&dsName=..``)."""
    query = urlencode({"dcPath": datacenter_path, "dsName": datastore})
    return f"{endpoint.scheme}://{endpoint.netloc}/folder/{quote(relative)}?{query}"


def disk_size_mb(text: str) -> int:
    """``--persistentSize`` in MB: ``512M``, ``4G``, and a bare number means GB, as upstream's ``getDiskSizeMB``
    reads it (its help says MB, its code says GB)."""
    return parse_size_mb(text, default_unit="G")


# --- VM specs (pyVmomi types, the ``vim`` module passed in) ---------------------------------------------------


def create_spec(vim: Any, *, name: str, datastore: str, cpus: int, mem_mb: int) -> Any:
    """The ``VirtualMachineConfigSpec`` of ``CreateVM_Task``, as upstream: guest type, files on the datastore,
    CPUs, memory and a paravirtual SCSI controller."""
    scsi = vim.vm.device.ParaVirtualSCSIController(
        key=-1, busNumber=0, sharedBus=vim.vm.device.VirtualSCSIController.Sharing.noSharing, hotAddRemove=True
    )
    return vim.vm.ConfigSpec(
        name=name,
        guestId=GUEST_ID,
        files=vim.vm.FileInfo(vmPathName=f"[{datastore}]"),
        numCPUs=cpus,
        memoryMB=mem_mb,
        deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="add", device=scsi)],
    )


def free_unit(devices: list[Any], controller: Any, reserved: int | None = None) -> int:
    """The first unit number of ``controller`` no device uses (SCSI's unit 7 is the controller's own)."""
    used = {d.unitNumber for d in devices if getattr(d, "controllerKey", None) == controller.key}
    if reserved is not None:
        used.add(reserved)
    unit = 0
    while unit in used:
        unit += 1
    return unit


def device_changes(
    vim: Any,
    devices: list[Any],
    *,
    iso: str,
    disk: str = "",
    disk_mb: int = 0,
    datastore: Any = None,
    network: Any = None,
) -> list[Any]:
    """The ``deviceChange`` of the ``ReconfigVM_Task`` after creation: a CD-ROM holding ``iso`` on the first
    IDE controller, optionally a thin persistent disk on the SCSI controller and a vmxnet3 card on ``network``
    (its backing from :func:`nic_backing`)."""
    ide = next((d for d in devices if isinstance(d, vim.vm.device.VirtualIDEController) and len(d.device) < 2), None)
    if ide is None:
        raise UserError("the new VM has no IDE controller with a free slot for the CD-ROM")
    cdrom = vim.vm.device.VirtualCdrom(
        key=-2,
        controllerKey=ide.key,
        unitNumber=free_unit(devices, ide),
        backing=vim.vm.device.VirtualCdrom.IsoBackingInfo(fileName=iso),
        connectable=vim.vm.device.VirtualDevice.ConnectInfo(
            startConnected=True, connected=True, allowGuestControl=True
        ),
    )
    changes = [vim.vm.device.VirtualDeviceSpec(operation="add", device=cdrom)]
    if disk:
        scsi = next((d for d in devices if isinstance(d, vim.vm.device.VirtualSCSIController)), None)
        if scsi is None:
            raise UserError("the new VM has no SCSI controller for the persistent disk")
        vdisk = vim.vm.device.VirtualDisk(
            key=-3,
            controllerKey=scsi.key,
            unitNumber=free_unit(devices, scsi, reserved=scsi.scsiCtlrUnitNumber or 7),
            capacityInKB=disk_mb * 1024,
            backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                fileName=disk, datastore=datastore, diskMode="persistent", thinProvisioned=True
            ),
        )
        changes.append(vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=vdisk))
    if network is not None:
        nic = vim.vm.device.VirtualVmxnet3(key=-4, addressType="generated", backing=network)
        changes.append(vim.vm.device.VirtualDeviceSpec(operation="add", device=nic))
    return changes


def nic_backing(vim: Any, network: Any) -> Any:
    """A network card's backing for a standard, distributed or opaque network (govmomi's
    ``EthernetCardBackingInfo``)."""
    if isinstance(network, vim.dvs.DistributedVirtualPortgroup):
        port = vim.dvs.PortConnection(portgroupKey=network.key, switchUuid=network.config.distributedVirtualSwitch.uuid)
        return vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo(port=port)
    if isinstance(network, vim.OpaqueNetwork):
        summary = network.summary
        return vim.vm.device.VirtualEthernetCard.OpaqueNetworkBackingInfo(
            opaqueNetworkId=summary.opaqueNetworkId, opaqueNetworkType=summary.opaqueNetworkType
        )
    return vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName=network.name, network=network)
