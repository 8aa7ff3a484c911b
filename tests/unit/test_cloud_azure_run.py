"""``run azure`` and ``push azure``'s management calls, checked request by request against the Azure REST API
reference. There is no Resource Manager emulator: tests/azure_fake.py is a recording HTTPS server answering as
the reference documents (resources, storage accounts, virtual networks, NSGs, public IPs, NICs, and
azure-mgmt-compute's images, disks, virtual machines and retrieveBootDiagnosticsData), the real SDK and our
REST client pointed at it through AZURE_RESOURCE_MANAGER_ENDPOINT's code path (the Session's endpoint)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("azure.mgmt.compute")

from tests.azure_fake import CONSOLE, TOKEN, FakeArm, FakeCredential, fake_arm

from linuxkit.cloud.azure import RunOptions, run
from linuxkit.cloud.azure_arm import API_NETWORK, API_RESOURCES, Arm, Session
from linuxkit.errors import LinuxKitError, UserError

SUB = "00000000-1111-2222-3333-444444444444"
GROUP = f"/subscriptions/{SUB}/resourceGroups/lk"
BLOB = "https://lkstore.blob.core.windows.net/linuxkitcontainer/minimal.vhd"
ACCOUNT_ID = f"{GROUP}/providers/Microsoft.Storage/storageAccounts/lkstore"


@pytest.fixture
def arm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeArm, Session]]:
    with fake_arm(tmp_path) as (fake, cert):
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        fake.accounts.append({"id": ACCOUNT_ID, "name": "lkstore", "location": "westeurope"})
        fake.resources[f"{GROUP}/providers/Microsoft.Compute/images/minimal".lower()] = {
            "id": f"{GROUP}/providers/Microsoft.Compute/images/minimal",
            "name": "minimal",
            "location": "westeurope",
            "properties": {
                "provisioningState": "Succeeded",
                "storageProfile": {"osDisk": {"osType": "Linux", "osState": "Generalized", "blobUri": BLOB}},
            },
        }
        yield fake, Session(FakeCredential(), SUB, fake.url)  # type: ignore[arg-type]


def _version_at_least(version: str, floor: str) -> bool:
    return len(version) >= 10 and version[:10] >= floor


def test_run_from_a_pushed_image(arm: tuple[FakeArm, Session], capsys: pytest.CaptureFixture[str]) -> None:
    fake, session = arm
    opts = RunOptions(
        image="minimal", resource_group="lk", location="westeurope", name="lkvm", data=b"hello", timeout=0.01
    )
    assert run(opts, session, sleep=lambda s: None) == 0

    assert all(c.authorization == f"Bearer {TOKEN}" for c in fake.calls)
    puts = {c.path: c for c in fake.put_calls()}
    net = f"{GROUP}/providers/Microsoft.Network"
    assert list(puts) == [
        GROUP,
        f"{GROUP}/providers/Microsoft.Compute/disks/lkvm-osdisk",
        f"{net}/virtualNetworks/lkvm-vnet",
        f"{net}/networkSecurityGroups/lkvm-nsg",
        f"{net}/publicIPAddresses/lkvm-ip",
        f"{net}/networkInterfaces/lkvm-nic",
        f"{GROUP}/providers/Microsoft.Compute/virtualMachines/lkvm",
    ]
    assert puts[GROUP].api_version == API_RESOURCES and puts[GROUP].body == {"location": "westeurope"}
    assert [(c.method, c.path) for c in fake.calls][:2] == [("GET", GROUP), ("PUT", GROUP)]
    # the OS disk is imported from the image's blob, with the storage account the import needs
    disk = puts[f"{GROUP}/providers/Microsoft.Compute/disks/lkvm-osdisk"]
    assert _version_at_least(disk.api_version, "2021-04-01")
    assert disk.body["location"] == "westeurope"
    assert disk.body["properties"]["osType"] == "Linux"
    assert disk.body["properties"]["creationData"] == {
        "createOption": "Import",
        "sourceUri": BLOB,
        "storageAccountId": ACCOUNT_ID,
    }
    vnet = puts[f"{net}/virtualNetworks/lkvm-vnet"]
    assert vnet.api_version == API_NETWORK
    assert vnet.body["properties"]["addressSpace"] == {"addressPrefixes": ["10.0.0.0/16"]}
    assert vnet.body["properties"]["subnets"] == [{"name": "linuxkit", "properties": {"addressPrefix": "10.0.0.0/24"}}]
    rule = puts[f"{net}/networkSecurityGroups/lkvm-nsg"].body["properties"]["securityRules"][0]["properties"]
    assert (rule["direction"], rule["access"], rule["protocol"], rule["destinationPortRange"]) == (
        "Inbound",
        "Allow",
        "Tcp",
        "22",
    )
    ip = puts[f"{net}/publicIPAddresses/lkvm-ip"].body
    assert ip["sku"] == {"name": "Standard"}
    assert ip["properties"] == {"publicIPAllocationMethod": "Static", "dnsSettings": {"domainNameLabel": "lkvm"}}
    nic = puts[f"{net}/networkInterfaces/lkvm-nic"].body["properties"]
    assert nic["networkSecurityGroup"] == {"id": f"{net}/networkSecurityGroups/lkvm-nsg"}
    ipconf = nic["ipConfigurations"][0]["properties"]
    assert ipconf["subnet"] == {"id": f"{net}/virtualNetworks/lkvm-vnet/subnets/linuxkit"}
    assert ipconf["publicIPAddress"] == {"id": f"{net}/publicIPAddresses/lkvm-ip"}
    # the VM: the disk attached (no OS provisioning: LinuxKit has no Azure agent), user data, boot diagnostics
    vm = puts[f"{GROUP}/providers/Microsoft.Compute/virtualMachines/lkvm"]
    assert _version_at_least(vm.api_version, "2021-03-01")  # userData needs 2021-03-01
    props = vm.body["properties"]
    assert props["hardwareProfile"] == {"vmSize": "Standard_B1s"}
    assert props["storageProfile"]["osDisk"] == {
        "osType": "Linux",
        "createOption": "Attach",
        "managedDisk": {"id": f"{GROUP}/providers/Microsoft.Compute/disks/lkvm-osdisk"},
        "deleteOption": "Delete",
    }
    assert "osProfile" not in props and "imageReference" not in props["storageProfile"]
    assert props["networkProfile"]["networkInterfaces"][0]["id"] == f"{net}/networkInterfaces/lkvm-nic"
    assert props["diagnosticsProfile"] == {"bootDiagnostics": {"enabled": True}}
    assert base64.b64decode(props["userData"]) == b"hello"
    # the serial console was fetched through retrieveBootDiagnosticsData's SAS URI and printed
    assert any(c.method == "POST" and c.path.endswith("/lkvm/retrieveBootDiagnosticsData") for c in fake.calls)
    assert CONSOLE in capsys.readouterr().out
    # and everything made for the VM was deleted, newest first; the group and the image stay
    deletes = [c.path for c in fake.calls if c.method == "DELETE"]
    assert deletes == list(reversed(list(puts)[1:]))
    assert set(fake.resources) == {GROUP.lower(), f"{GROUP}/providers/Microsoft.Compute/images/minimal".lower()}


def test_keep_leaves_the_vm(arm: tuple[FakeArm, Session]) -> None:
    fake, session = arm
    fake.resources[GROUP.lower()] = {"id": GROUP, "name": "lk", "location": "westus", "properties": {}}
    run(RunOptions(image="minimal", resource_group="lk", name="kept", keep=True), session, sleep=lambda s: None)
    assert not [c for c in fake.calls if c.method == "DELETE"]
    assert f"{GROUP}/providers/Microsoft.Compute/virtualMachines/kept".lower() in fake.resources
    assert GROUP not in [c.path for c in fake.put_calls()]  # an existing group is used as it is


def test_a_failure_midway_deletes_what_was_made(arm: tuple[FakeArm, Session]) -> None:
    fake, session = arm
    fake.fail[("PUT", "/networkInterfaces/broken-nic")] = 409
    with pytest.raises(LinuxKitError, match="InjectedFailure"):
        run(RunOptions(image="minimal", resource_group="lk", name="broken"), session, sleep=lambda s: None)
    made = [c.path for c in fake.put_calls()][1:-1]  # the group stays; the NIC was refused
    assert [c.path for c in fake.calls if c.method == "DELETE"] == list(reversed(made))
    assert not [k for k in fake.resources if "broken" in k]


def test_a_missing_image_is_a_user_error(arm: tuple[FakeArm, Session]) -> None:
    _fake, session = arm
    with pytest.raises(UserError, match="neither a VHD file nor an image"):
        run(RunOptions(image="nothere", resource_group="lk"), session, sleep=lambda s: None)


def test_arm_errors_carry_the_service_message(arm: tuple[FakeArm, Session]) -> None:
    fake, session = arm
    fake.fail[("PUT", "/resourceGroups/bad")] = 403
    with pytest.raises(LinuxKitError, match="403 InjectedFailure: PUT /resourceGroups/bad refused"):
        Arm(session).put(f"/subscriptions/{SUB}/resourceGroups/bad", API_RESOURCES, {"location": "x"})


def test_the_command_line_reaches_the_same_calls(
    arm: tuple[FakeArm, Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``linuxkit run azure`` flags (upstream's names) → the VM's requests; the session is the fake's (the
    service principal's token exchange is azure-identity's)."""
    import linuxkit.cloud.azure as azure
    from linuxkit.cli.main import main

    fake, session = arm
    monkeypatch.setattr(azure, "session_from_env", lambda verb: session)
    (tmp_path / "user-data").write_bytes(b"#!/bin/sh\necho hi\n")
    argv = ["run", "azure", "--resourceGroupName", "lk", "--location", "northeurope", "--size", "Standard_D2s_v5"]
    argv += ["--name", "clivm", "--data-file", str(tmp_path / "user-data"), "--timeout", "0.01", "minimal"]
    assert main(argv) == 0
    vm = next(c for c in fake.put_calls() if c.path.endswith("/virtualMachines/clivm"))
    assert vm.body["location"] == "northeurope"
    assert vm.body["properties"]["hardwareProfile"] == {"vmSize": "Standard_D2s_v5"}
    assert base64.b64decode(vm.body["properties"]["userData"]) == b"#!/bin/sh\necho hi\n"
    assert CONSOLE in capsys.readouterr().out
    assert not [k for k in fake.resources if "clivm" in k]


def test_the_service_principal_from_the_environment(arm: tuple[FakeArm, Session], tmp_path: Path) -> None:
    """The whole command in a subprocess: AZURE_TENANT_ID/CLIENT_ID/CLIENT_SECRET exchanged for a token with
    the client credentials grant at AZURE_AUTHORITY_HOST (the fake answers as the Microsoft identity platform
    documents it), the calls sent to AZURE_RESOURCE_MANAGER_ENDPOINT with that token."""
    import os
    import subprocess
    import sys

    from tests.azure_fake import CLIENT_SECRET

    fake, _session = arm
    env = {
        **os.environ,
        "AZURE_SUBSCRIPTION_ID": SUB,
        "AZURE_TENANT_ID": "tenant-1",
        "AZURE_CLIENT_ID": "app-1",
        "AZURE_CLIENT_SECRET": CLIENT_SECRET,
        "AZURE_AUTHORITY_HOST": fake.url,
        "AZURE_RESOURCE_MANAGER_ENDPOINT": fake.url,
    }
    argv = ["run", "azure", "--resource-group", "lk", "--name", "spvm", "--timeout", "0.01", "minimal"]
    done = subprocess.run(
        [sys.executable, "-m", "linuxkit.cli.main", *argv], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert fake.token_scopes and all(s.startswith(f"{fake.url}/.default") for s in fake.token_scopes)
    assert fake.calls and all(c.authorization == f"Bearer {TOKEN}" for c in fake.calls)
    assert any(c.path.endswith("/virtualMachines/spvm") for c in fake.put_calls())
    assert CONSOLE in done.stdout

    env["AZURE_CLIENT_SECRET"] = "wrong"
    refused = subprocess.run(
        [sys.executable, "-m", "linuxkit.cli.main", *argv], env=env, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 2, refused.stderr
    assert "refused the credentials" in refused.stderr and "AZURE_CLIENT_SECRET" in refused.stderr
    assert "internal error" not in refused.stderr
