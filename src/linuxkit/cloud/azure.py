"""``linuxkit push azure`` and ``linuxkit run azure``.

push: check the fixed VHD, upload it into a page blob (:mod:`.azure_blob`; the storage account's key from
Resource Manager, or AZURE_STORAGE_CONNECTION_STRING, e.g. Azurite's), then create a managed image from the
blob (azure-mgmt-compute), unless ``--no-image`` (upstream's push stops after the upload).

run: as upstream's run_azure.go, a resource group, a storage account and the upload when given a VHD file,
then a virtual network with its subnet, a public IP, a NIC and the VM. Unlike upstream, the OS disk is a
managed disk imported from the blob and attached (unmanaged disks are retired, and an attached disk boots
without the Azure Linux Agent that LinuxKit images lack), a network security group lets SSH in (a Standard
public IP admits nothing without one), ``--data`` becomes the VM's user data, the serial console log (boot
diagnostics) is shown while the VM runs, and what was made for the VM is deleted on exit unless ``--keep``.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.core.exceptions import AzureError, ClientAuthenticationError, ResourceNotFoundError
from azure.mgmt.compute import ComputeManagementClient, models
from azure.storage.blob import BlobServiceClient

from .. import log
from ..errors import LinuxKitError, UserError
from .azure_arm import API_NETWORK, API_RESOURCES, API_STORAGE, Arm, Session, scope, session_from_env
from .azure_blob import DEFAULT_WORKERS, ensure_container, upload_vhd
from .azure_vhd import check_fixed_vhd, plan_pages
from .polling import console_write

CONNECTION_STRING_VAR = "AZURE_STORAGE_CONNECTION_STRING"
DEFAULT_CONTAINER = "linuxkitcontainer"
VNET_PREFIX = "10.0.0.0/16"
SUBNET_PREFIX = "10.0.0.0/24"


def compute_client(session: Session) -> ComputeManagementClient:
    return ComputeManagementClient(
        session.credential,
        session.subscription,
        base_url=session.endpoint,
        credential_scopes=[scope(session.endpoint)],
    )


@dataclass(frozen=True)
class Account:
    """A storage account as Resource Manager describes it."""

    id: str
    name: str
    location: str
    blob_endpoint: str


def storage_account(arm: Arm, group: str, name: str) -> Account | None:
    path = f"{arm.group_path(group)}/providers/Microsoft.Storage/storageAccounts/{name}"
    found = arm.get(path, API_STORAGE)
    if found is None:
        return None
    endpoint = found.get("properties", {}).get("primaryEndpoints", {}).get("blob", "")
    return Account(str(found.get("id", path)), name, str(found.get("location", "")), str(endpoint))


def create_storage_account(arm: Arm, group: str, name: str, location: str) -> Account:
    """Upstream's ``createStorageAccount`` (Standard_LRS), as a general-purpose v2 account without public blobs."""
    log.info(f"creating storage account {name} in {location}, resource group {group}")
    path = f"{arm.group_path(group)}/providers/Microsoft.Storage/storageAccounts/{name}"
    body = {
        "location": location,
        "sku": {"name": "Standard_LRS"},
        "kind": "StorageV2",
        "properties": {"minimumTlsVersion": "TLS1_2", "allowBlobPublicAccess": False},
    }
    arm.put(path, API_STORAGE, body)
    account = storage_account(arm, group, name)
    if account is None:
        raise LinuxKitError(f"storage account {name} was created but cannot be read back")
    return account


def blob_service_for(arm: Arm, group: str, account: Account) -> BlobServiceClient:
    """A blob client authenticated by the account's first key (upstream's ``ListKeys``)."""
    path = f"{arm.group_path(group)}/providers/Microsoft.Storage/storageAccounts/{account.name}/listKeys"
    keys = arm.post(path, API_STORAGE).get("keys") or []
    if not keys:
        raise LinuxKitError(f"storage account {account.name} has no keys this service principal may list")
    endpoint = account.blob_endpoint or f"https://{account.name}.blob.core.windows.net/"
    return BlobServiceClient(endpoint, credential={"account_name": account.name, "account_key": keys[0]["value"]})


def upload(service: BlobServiceClient, path: Path, container: str, blob_name: str, workers: int) -> str:
    """Check ``path``, upload it as the page blob ``container/blob_name``; the blob's URL."""
    check_fixed_vhd(path)
    with log.step(f"scanning {path.name} for data"):
        plan = plan_pages(path, md5=False)  # the MD5 is computed alongside the upload
    log.info(
        f"{plan.upload_bytes / 2**20:.1f} MiB to upload of {plan.size / 2**20:.1f} MiB "
        f"({len(plan.ranges)} non-empty 4 MiB ranges)"
    )
    ensure_container(service, container)
    blob = service.get_blob_client(container, blob_name)
    upload_vhd(blob, path, plan, workers=workers)
    log.info(f"uploaded {blob.url}")
    return str(blob.url)


def create_image(compute: ComputeManagementClient, group: str, name: str, location: str, blob_url: str) -> str:
    """A managed Linux image (generation 1: our VHDs boot with BIOS) from the blob; its resource ID."""
    body = {
        "location": location,
        "properties": {
            "hyperVGeneration": "V1",
            "storageProfile": {
                "osDisk": {
                    "osType": "Linux",
                    "osState": "Generalized",
                    "blobUri": blob_url,
                    "storageAccountType": "Standard_LRS",
                }
            },
        },
    }
    log.info(f"creating image {name} in {location}, resource group {group}")
    try:
        image = compute.images.begin_create_or_update(group, name, models.Image(body)).result()
    except AzureError as exc:
        raise LinuxKitError(
            f"creating image {name} failed: {exc}; the uploaded blob {blob_url} is left in place "
            "(push again, or delete it)"
        ) from exc
    return str(image.id)


@contextlib.contextmanager
def azure_errors(verb: str) -> Iterator[None]:
    """The SDK's errors as ours: refused credentials are the user's to fix (naming the variables), any other
    service error a failure with Azure's message (not an internal error)."""
    try:
        yield
    except ClientAuthenticationError as exc:
        raise UserError(
            f"linuxkit {verb}: Azure refused the credentials: {exc.message}",
            hint="check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (and the principal's role)",
        ) from exc
    except AzureError as exc:
        raise LinuxKitError(f"linuxkit {verb}: {exc.message}") from exc


@dataclass(frozen=True)
class PushOptions:
    path: Path
    resource_group: str = ""
    storage_account: str = ""
    container: str = DEFAULT_CONTAINER
    blob: str = ""
    image: str = ""
    location: str = ""
    no_image: bool = False
    workers: int = DEFAULT_WORKERS


@dataclass(frozen=True)
class Pushed:
    blob_url: str
    image_id: str | None


def push(
    opts: PushOptions,
    env: Mapping[str, str] | None = None,
    session: Callable[[str], Session] | None = None,
) -> Pushed:
    """``linuxkit push azure``: everything is checked (file, flags, credentials) before the upload starts."""
    env = os.environ if env is None else env
    if not opts.path.is_file():
        raise UserError(f"{opts.path}: no such file")
    check_fixed_vhd(opts.path)
    conn = env.get(CONNECTION_STRING_VAR, "")
    if not conn and not (opts.resource_group and opts.storage_account):
        raise UserError("push azure needs --resource-group and --storage-account (or AZURE_STORAGE_CONNECTION_STRING)")
    if not opts.no_image and not opts.resource_group:
        raise UserError("push azure needs --resource-group for the image", hint="or --no-image to only upload")
    sess = None if conn and opts.no_image else (session or (lambda v: session_from_env(v, env)))("push azure")
    arm = Arm(sess) if sess else None
    account: Account | None = None
    if arm and opts.storage_account and (not conn or not opts.location):
        account = storage_account(arm, opts.resource_group, opts.storage_account)
        if account is None:
            raise UserError(
                f"storage account {opts.storage_account} not found in resource group {opts.resource_group}",
                hint="create it (az storage account create), or let `linuxkit run azure` create it",
            )
    if conn:
        service = BlobServiceClient.from_connection_string(conn)
    else:
        assert arm is not None and account is not None
        service = blob_service_for(arm, opts.resource_group, account)
    location = opts.location or (account.location if account else "")
    if sess and not location:
        raise UserError("push azure: --location is needed for the image (no --storage-account to take it from)")

    blob_url = upload(service, opts.path, opts.container, opts.blob or opts.path.name, opts.workers)
    if sess is None:
        return Pushed(blob_url, None)
    name = opts.image or opts.path.stem
    image_id = create_image(compute_client(sess), opts.resource_group, name, location, blob_url)
    log.info(f"created image {image_id}")
    return Pushed(blob_url, image_id)


# ---- run ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    image: str
    resource_group: str
    location: str = "westus"
    storage_account: str = "linuxkit"
    container: str = DEFAULT_CONTAINER
    size: str = "Standard_B1s"
    name: str = ""
    data: bytes | None = None
    keep: bool = False
    #: seconds to show the console before cleaning up; 0: until interrupted
    timeout: float = 0.0
    console_interval: float = 10.0
    workers: int = DEFAULT_WORKERS


@dataclass
class Cleanup:
    """What was made for the VM, deleted in reverse order."""

    steps: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def add(self, what: str, delete: Callable[[], None]) -> None:
        self.steps.append((what, delete))

    def run(self) -> list[str]:
        """Delete all it can; the ones left."""
        left = []
        for what, delete in reversed(self.steps):
            log.info(f"deleting {what}")
            try:
                delete()
            except (AzureError, LinuxKitError) as exc:
                log.error(f"could not delete {what}: {exc}")
                left.append(what)
        self.steps.clear()
        return left

    def describe(self) -> list[str]:
        return [what for what, _ in self.steps]


def _compute_delete(poller: Callable[[], Any]) -> Callable[[], None]:
    def delete() -> None:
        with contextlib.suppress(ResourceNotFoundError):
            poller().result()

    return delete


def vm_body(opts: RunOptions, disk_id: str, nic_id: str) -> dict[str, Any]:
    """The VM of ``run azure``: the imported disk attached (no OS provisioning, so no agent needed), the NIC,
    boot diagnostics in managed storage, and ``--data`` as user data."""
    properties: dict[str, Any] = {
        "hardwareProfile": {"vmSize": opts.size},
        "storageProfile": {
            "osDisk": {
                "osType": "Linux",
                "createOption": "Attach",
                "managedDisk": {"id": disk_id},
                "deleteOption": "Delete",
            }
        },
        "networkProfile": {
            "networkInterfaces": [{"id": nic_id, "properties": {"primary": True, "deleteOption": "Delete"}}]
        },
        "diagnosticsProfile": {"bootDiagnostics": {"enabled": True}},
    }
    if opts.data is not None:
        properties["userData"] = base64.b64encode(opts.data).decode()
    return {"location": opts.location, "properties": properties}


def _image_blob(compute: ComputeManagementClient, opts: RunOptions) -> str:
    group, name = opts.resource_group, opts.image
    if name.startswith("/subscriptions/"):
        parts = name.strip("/").split("/")
        group, name = parts[3], parts[-1]
    try:
        image = compute.images.get(group, name)
    except ResourceNotFoundError as exc:
        raise UserError(
            f"{opts.image} is neither a VHD file nor an image in resource group {group}",
            hint="push it first with `linuxkit push azure`, or give the VHD's path",
        ) from exc
    profile = image.properties.storage_profile if image.properties else None
    blob = profile.os_disk.blob_uri if profile and profile.os_disk else None
    if not blob:
        raise UserError(f"image {opts.image} was not made from a VHD blob: run azure cannot import its disk")
    return str(blob)


def _account_of_blob(arm: Arm, blob_url: str) -> str:
    """The resource ID of the storage account holding ``blob_url`` (an import needs it)."""
    host = blob_url.split("://", 1)[-1].split("/", 1)[0]
    name = host.split(".", 1)[0]
    listing = arm.get(f"/subscriptions/{arm.subscription}/providers/Microsoft.Storage/storageAccounts", API_STORAGE)
    for account in (listing or {}).get("value", []):
        if account.get("name") == name:
            return str(account["id"])
    raise UserError(f"the storage account {name} of {blob_url} is not in subscription {arm.subscription}")


def run(opts: RunOptions, session: Session | None = None, sleep: Callable[[float], None] = time.sleep) -> int:
    """``linuxkit run azure``; the exit code."""
    if not opts.resource_group:
        raise UserError("run azure needs --resourceGroupName")
    sess = session or session_from_env("run azure")
    arm = Arm(sess, sleep=sleep)
    compute = compute_client(sess)
    group, location = opts.resource_group, opts.location
    suffix = secrets.token_hex(3)
    vm = opts.name or f"linuxkitvm{suffix}"
    gpath = arm.group_path(group)
    net = f"{gpath}/providers/Microsoft.Network"

    if arm.get(gpath, API_RESOURCES) is None:
        log.info(f"creating resource group {group} in {location}")
        arm.put(gpath, API_RESOURCES, {"location": location})
    path = Path(opts.image)
    if path.is_file():
        account = storage_account(arm, group, opts.storage_account) or create_storage_account(
            arm, group, opts.storage_account, location
        )
        service = blob_service_for(arm, group, account)
        blob_url = upload(service, path, opts.container, path.name, opts.workers)
        account_id = account.id
    else:
        blob_url = _image_blob(compute, opts)
        account_id = _account_of_blob(arm, blob_url)

    cleanup = Cleanup()
    ok = False
    try:
        disk = f"{vm}-osdisk"
        log.info(f"importing the OS disk {disk} from {blob_url}")
        disk_body = {
            "location": location,
            "sku": {"name": "Standard_LRS"},
            "properties": {
                "osType": "Linux",
                "hyperVGeneration": "V1",
                "creationData": {"createOption": "Import", "sourceUri": blob_url, "storageAccountId": account_id},
            },
        }
        disk_id = str(compute.disks.begin_create_or_update(group, disk, models.Disk(disk_body)).result().id)
        cleanup.add(f"disk {disk}", _compute_delete(lambda: compute.disks.begin_delete(group, disk)))

        def make(kind: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
            rpath = f"{net}/{kind}/{name}"
            log.info(f"creating {kind} {name}")
            made = arm.put(rpath, API_NETWORK, body)
            cleanup.add(f"{kind} {name}", lambda: arm.delete(rpath, API_NETWORK))
            return made

        vnet = make(
            "virtualNetworks",
            f"{vm}-vnet",
            {
                "location": location,
                "properties": {
                    "addressSpace": {"addressPrefixes": [VNET_PREFIX]},
                    "subnets": [{"name": "linuxkit", "properties": {"addressPrefix": SUBNET_PREFIX}}],
                },
            },
        )
        subnet_id = vnet["properties"]["subnets"][0]["id"]
        nsg = make(
            "networkSecurityGroups",
            f"{vm}-nsg",
            {
                "location": location,
                "properties": {
                    "securityRules": [
                        {
                            "name": "ssh",
                            "properties": {
                                "priority": 1000,
                                "direction": "Inbound",
                                "access": "Allow",
                                "protocol": "Tcp",
                                "sourceAddressPrefix": "*",
                                "sourcePortRange": "*",
                                "destinationAddressPrefix": "*",
                                "destinationPortRange": "22",
                            },
                        }
                    ]
                },
            },
        )
        ip = make(
            "publicIPAddresses",
            f"{vm}-ip",
            {
                "location": location,
                "sku": {"name": "Standard"},
                "properties": {"publicIPAllocationMethod": "Static", "dnsSettings": {"domainNameLabel": vm}},
            },
        )
        nic = make(
            "networkInterfaces",
            f"{vm}-nic",
            {
                "location": location,
                "properties": {
                    "networkSecurityGroup": {"id": nsg["id"]},
                    "ipConfigurations": [
                        {
                            "name": "ipconfig1",
                            "properties": {
                                "privateIPAllocationMethod": "Dynamic",
                                "subnet": {"id": subnet_id},
                                "publicIPAddress": {"id": ip["id"]},
                            },
                        }
                    ],
                },
            },
        )
        log.info(f"creating virtual machine {vm} ({opts.size}) in {location}, resource group {group}")
        cleanup.add(f"virtual machine {vm}", _compute_delete(lambda: compute.virtual_machines.begin_delete(group, vm)))
        compute.virtual_machines.begin_create_or_update(
            group, vm, models.VirtualMachine(vm_body(opts, disk_id, str(nic["id"])))
        ).result()
        fqdn = ip.get("properties", {}).get("dnsSettings", {}).get("fqdn", "")
        address = ip.get("properties", {}).get("ipAddress", "")
        log.info(f"started {vm}: ssh -i path-to-key root@{fqdn or address}")
        if opts.keep:
            ok = True
            log.info("kept (--keep): " + ", ".join(cleanup.describe()))
            return 0
        show_console(compute, group, vm, opts, sleep)
        ok = True
        return 0
    finally:
        if not (ok and opts.keep):
            left = cleanup.run()
            if left:
                raise LinuxKitError(f"could not delete {', '.join(left)} in resource group {group}: delete by hand")


def show_console(
    compute: ComputeManagementClient, group: str, vm: str, opts: RunOptions, sleep: Callable[[float], None]
) -> None:
    """Print the VM's serial console log (boot diagnostics) as it grows, for ``opts.timeout`` seconds (0: until
    Ctrl-C, which ends the run normally)."""
    import requests

    log.info("serial console (boot diagnostics; Azure publishes it with a delay of a few minutes); Ctrl-C ends")
    shown = 0
    deadline = time.monotonic() + opts.timeout if opts.timeout else None
    try:
        while True:
            try:
                uri = compute.virtual_machines.retrieve_boot_diagnostics_data(group, vm).serial_console_log_blob_uri
                if uri:
                    response = requests.get(uri, timeout=60)
                    if response.ok and len(response.content) > shown:
                        console_write(response.content[shown:].decode(errors="replace"))
                        shown = len(response.content)
            except (AzureError, requests.RequestException) as exc:
                log.debug(f"console not available yet: {exc}")
            if deadline is not None and time.monotonic() >= deadline:
                return
            sleep(opts.console_interval)
    except KeyboardInterrupt:
        log.info("interrupted")
