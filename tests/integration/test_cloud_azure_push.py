"""``push azure``'s page-blob upload against a real Azurite (npm ``azurite``, installed by scripts/setup under
``.cache/npm``), started on a free loopback port for the module: the blob is read back and compared with the
VHD byte for byte, ``Get Page Ranges`` shows that only the non-empty ranges were written, the blob's
``Content-MD5`` is the file's, and a failure midway leaves no blob behind."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from linuxkit.cloud.azure_vhd import CHUNK, PAGE, footer_checksum, plan_pages

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
AZURITE = ROOT / ".cache" / "npm" / "node_modules" / ".bin" / "azurite-blob"
#: Azurite's well-known development account (documented in its README)
ACCOUNT = "devstoreaccount1"
CONNECTION_VAR = "AZURE_STORAGE_CONNECTION_STRING"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

blob_sdk = pytest.importorskip("azure.storage.blob")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A connection string of an Azurite blob service on loopback, stopped after the module."""
    if not AZURITE.exists():
        pytest.fail(f"{AZURITE} is missing: run scripts/setup (it installs the npm package azurite)")
    port = _free_port()
    where = tmp_path_factory.mktemp("azurite")
    log = (where / "azurite.log").open("wb")
    proc = subprocess.Popen(
        [
            str(AZURITE),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            str(where),
            "--silent",
            "--skipApiVersionCheck",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"azurite did not start: {(where / 'azurite.log').read_text()}") from None
            time.sleep(0.1)
    try:
        yield (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
        )
    finally:
        proc.send_signal(signal.SIGINT)  # Azurite shuts down cleanly on SIGINT (it ignores SIGTERM for a while)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def make_fixed_vhd(path: Path, disk_mib: int, data: dict[int, bytes]) -> bytes:
    """A sparse fixed VHD of ``disk_mib`` MiB with ``data`` written at the given offsets; returns its footer."""
    size = disk_mib * 1024 * 1024
    footer = bytearray(PAGE)
    footer[:8] = b"conectix"
    struct.pack_into(">IIQ", footer, 8, 2, 0x10000, 0xFFFFFFFFFFFFFFFF)
    struct.pack_into(">QQ", footer, 40, size, size)
    struct.pack_into(">I", footer, 60, 2)
    struct.pack_into(">I", footer, 64, footer_checksum(bytes(footer)))
    with path.open("wb") as fh:
        fh.truncate(size)
        for offset, chunk in data.items():
            fh.seek(offset)
            fh.write(chunk)
        fh.seek(size)
        fh.write(footer)
    return bytes(footer)


def _blob(conn: str, name: str) -> Any:
    from azure.storage.blob import BlobServiceClient

    from linuxkit.cloud.azure_blob import ensure_container

    service = BlobServiceClient.from_connection_string(conn)
    ensure_container(service, "linuxkitcontainer")
    return service.get_blob_client("linuxkitcontainer", name)


def _pages(blob: Any) -> list[tuple[int, int]]:
    """The blob's written pages as merged ``(start, end)`` ranges (Azurite answers them unmerged)."""
    return _merged(tuple((r.start, r.end + 1 - r.start) for r in blob.list_page_ranges() if not r.cleared))


def _merged(ranges: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for offset, length in sorted(ranges):
        if out and out[-1][1] == offset:
            out[-1] = (out[-1][0], offset + length)
        else:
            out.append((offset, offset + length))
    return out


def test_sparse_vhd_uploads_only_its_data(azurite: str, tmp_path: Path) -> None:
    from linuxkit.cloud.azure_blob import upload_vhd

    vhd = tmp_path / "disk.vhd"
    data = {0: b"\xeb\x63\x90" + os.urandom(509), 9 * CHUNK + 4096: os.urandom(3 * CHUNK), 30 * CHUNK: b"x" * 512}
    make_fixed_vhd(vhd, 128, data)
    plan = plan_pages(vhd)
    # the boot sector's chunk, the 4 chunks the 12 MiB write touches, the one at 30*CHUNK, and the footer's
    assert [o // CHUNK for o, _ in plan.ranges] == [0, 9, 10, 11, 12, 30, 32]
    assert plan.ranges[-1] == (32 * CHUNK, PAGE)
    assert plan.md5 == hashlib.md5(vhd.read_bytes()).digest()

    blob = _blob(azurite, "sparse.vhd")
    real_upload = blob.upload_page
    sent: dict[int, tuple[str, bytes]] = {}

    def recorded(page: bytes, offset: int, length: int, **kw: Any) -> Any:
        def hook(request: Any) -> None:
            sent[offset] = (request.http_request.headers.get("Content-MD5", ""), page)

        return real_upload(page, offset=offset, length=length, raw_request_hook=hook, **kw)

    blob.upload_page = recorded
    upload_vhd(blob, vhd, plan, workers=3)
    # each Put Page carried its range's Content-MD5
    assert sorted(sent) == [offset for offset, _ in plan.ranges]
    for md5, page in sent.values():
        assert base64.b64decode(md5) == hashlib.md5(page).digest()

    props = blob.get_blob_properties()
    assert props.blob_type == "PageBlob"
    assert props.size == vhd.stat().st_size
    assert bytes(props.content_settings.content_md5) == plan.md5
    assert _pages(blob) == _merged(plan.ranges)
    assert blob.download_blob().readall() == vhd.read_bytes()


def test_failure_midway_deletes_the_blob(azurite: str, tmp_path: Path) -> None:
    """A range that keeps failing (after the blob exists and other ranges are written) ends the upload with
    an error and no blob left; a range that fails once is retried."""
    from azure.core.exceptions import ServiceRequestError

    from linuxkit.cloud.azure_blob import upload_vhd
    from linuxkit.errors import LinuxKitError

    vhd = tmp_path / "disk.vhd"
    make_fixed_vhd(vhd, 64, {i * CHUNK: b"data" * 128 for i in range(16)})
    plan = plan_pages(vhd)
    blob = _blob(azurite, "broken.vhd")
    real_upload = blob.upload_page
    calls: dict[int, int] = {}

    def flaky(page: bytes, offset: int, length: int, **kw: Any) -> Any:
        calls[offset] = calls.get(offset, 0) + 1
        if offset == 3 * CHUNK and calls[offset] == 1:
            raise ServiceRequestError("connection reset (injected once)")
        if offset == 12 * CHUNK:
            raise ServiceRequestError("connection reset (injected always)")
        return real_upload(page, offset=offset, length=length, **kw)

    blob.upload_page = flaky
    with pytest.raises(LinuxKitError, match="failed 4 times"):
        upload_vhd(blob, vhd, plan, workers=2, pause=lambda s: None)
    assert calls[12 * CHUNK] == 4
    assert blob.exists() is False

    # the same blob uploads fine once the fault is gone, the range that failed once being retried
    del blob.upload_page
    calls.clear()
    blob2 = _blob(azurite, "retried.vhd")

    def once(page: bytes, offset: int, length: int, **kw: Any) -> Any:
        calls[offset] = calls.get(offset, 0) + 1
        if offset == 3 * CHUNK and calls[offset] == 1:
            raise ServiceRequestError("connection reset (injected once)")
        return real_upload.__func__(blob2, page, offset=offset, length=length, **kw)

    blob2.upload_page = once
    upload_vhd(blob2, vhd, plan, workers=2, pause=lambda s: None)
    assert calls[3 * CHUNK] == 2
    assert blob2.download_blob().readall() == vhd.read_bytes()


def lk(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "linuxkit.cli.main", *args],
        env={**os.environ, "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_push_a_real_minimal_vhd(azurite: str, tmp_path: Path) -> None:
    """examples/minimal.yml built with ``-f vhd`` (a 1 GiB fixed VHD with a few MB of data), pushed with the
    command line (``--no-image``: Azurite has no Resource Manager), read back and compared."""
    out = tmp_path / "out"
    debs = Path(os.environ.get("LINUXKIT_TEST_CACHE", Path.home() / ".cache" / "linuxkit-tests")) / "debian"
    env = {"LINUXKIT_CACHE": str(tmp_path / "cache"), "LINUXKIT_DEBIAN_CACHE": str(debs)}
    built = lk("build", "-f", "vhd", "--dir", str(out), str(ROOT / "examples" / "minimal.yml"), env=env, timeout=900)
    assert built.returncode == 0, built.stderr[-3000:]
    vhd = out / "minimal.vhd"
    env[CONNECTION_VAR] = azurite
    start = time.monotonic()
    done = lk("push", "azure", "--no-image", "--container", "built", str(vhd), env=env)
    took = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    from azure.storage.blob import BlobServiceClient

    blob = BlobServiceClient.from_connection_string(azurite).get_blob_client("built", "minimal.vhd")
    assert done.stdout.strip() == blob.url
    plan = plan_pages(vhd)
    assert _pages(blob) == _merged(plan.ranges)
    assert bytes(blob.get_blob_properties().content_settings.content_md5) == hashlib.md5(vhd.read_bytes()).digest()
    assert blob.download_blob().readall() == vhd.read_bytes()
    print(
        f"minimal.vhd: {vhd.stat().st_size / 2**20:.0f} MiB, {len(plan.ranges)} non-empty 4 MiB ranges "
        f"({plan.upload_bytes / 2**20:.1f} MiB) pushed in {took:.2f} s"
    )


def test_a_dynamic_vhd_is_refused_with_the_way_to_a_fixed_one(azurite: str, tmp_path: Path) -> None:
    dynamic = tmp_path / "dynamic.vhd"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=dynamic", str(dynamic), "64M"], check=True
    )
    done = lk("push", "azure", "--no-image", str(dynamic), env={CONNECTION_VAR: azurite})
    assert done.returncode == 2, done.stderr
    assert "dynamic VHD" in done.stderr and "subformat=fixed" in done.stderr
    assert "Traceback" not in done.stderr


def test_push_creates_the_image_from_the_blob(azurite: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The upload into Azurite, then the managed image through azure-mgmt-compute against tests/azure_fake.py
    (a recording server answering as the Azure REST API reference's Images - Create Or Update does): one PUT of
    the image with the blob's URL, a Linux generalized OS disk, generation 1 (our VHDs boot with BIOS)."""
    from tests.azure_fake import TOKEN, FakeCredential, fake_arm

    from linuxkit.cloud.azure import PushOptions, push
    from linuxkit.cloud.azure_arm import Session

    vhd = tmp_path / "small.vhd"
    make_fixed_vhd(vhd, 16, {0: b"boot" * 128})
    with fake_arm(tmp_path) as (fake, cert):
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        session = Session(FakeCredential(), "sub-1", fake.url)  # type: ignore[arg-type]
        opts = PushOptions(path=vhd, resource_group="lk", location="westeurope", container="images")
        pushed = push(opts, env={CONNECTION_VAR: azurite}, session=lambda verb: session)
        image_path = "/subscriptions/sub-1/resourceGroups/lk/providers/Microsoft.Compute/images/small"
        assert pushed.image_id == image_path
        (call,) = fake.calls
        assert (call.method, call.path, call.authorization) == ("PUT", image_path, f"Bearer {TOKEN}")
        assert call.api_version[:10] >= "2016-04-30"
        assert call.body == {
            "location": "westeurope",
            "properties": {
                "hyperVGeneration": "V1",
                "storageProfile": {
                    "osDisk": {
                        "osType": "Linux",
                        "osState": "Generalized",
                        "blobUri": pushed.blob_url,
                        "storageAccountType": "Standard_LRS",
                    }
                },
            },
        }
        assert pushed.blob_url.endswith("/images/small.vhd")
        from azure.storage.blob import BlobServiceClient

        blob = BlobServiceClient.from_connection_string(azurite).get_blob_client("images", "small.vhd")
        assert blob.url == pushed.blob_url
        assert blob.download_blob().readall() == vhd.read_bytes()

        # a refused image: the error says the blob is left, and where
        fake.fail[("PUT", "/images/small")] = 409
        with pytest.raises(Exception, match=r"uploaded blob .*small\.vhd is left in place"):
            push(opts, env={CONNECTION_VAR: azurite}, session=lambda verb: session)


def test_missing_credentials_are_named_before_any_upload(azurite: str, tmp_path: Path) -> None:
    vhd = tmp_path / "small.vhd"
    make_fixed_vhd(vhd, 16, {})
    env = {CONNECTION_VAR: azurite, "AZURE_SUBSCRIPTION_ID": "", "AZURE_CLIENT_SECRET": ""}
    done = lk("push", "azure", "--resource-group", "lk", "--location", "x", "--container", "nocreds", str(vhd), env=env)
    assert done.returncode == 2
    for var in ("AZURE_SUBSCRIPTION_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"):
        assert var in done.stderr
    from azure.storage.blob import BlobServiceClient

    assert not BlobServiceClient.from_connection_string(azurite).get_container_client("nocreds").exists()


def test_run_uploads_a_vhd_file_first(azurite: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``run azure FILE.vhd`` as upstream: the storage account is created (recording Resource Manager), its key
    listed, the VHD uploaded (into Azurite, standing for the account's blob endpoint), then the disk is imported
    from that blob and the VM made; all made for the VM is deleted at the end, the blob stays."""
    from azure.storage.blob import BlobServiceClient
    from tests.azure_fake import FakeCredential, fake_arm

    from linuxkit.cloud.azure import RunOptions, run
    from linuxkit.cloud.azure_arm import Session

    vhd = tmp_path / "runme.vhd"
    make_fixed_vhd(vhd, 16, {5 * 2**20: b"data" * 1024})
    endpoint = dict(kv.split("=", 1) for kv in azurite.strip(";").split(";"))["BlobEndpoint"]
    with fake_arm(tmp_path) as (fake, cert):
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        fake.blob_endpoint, fake.account_key = endpoint + "/", KEY
        session = Session(FakeCredential(), "sub-1", fake.url)  # type: ignore[arg-type]
        opts = RunOptions(image=str(vhd), resource_group="lk", storage_account=ACCOUNT, name="vm1", timeout=0.01)
        assert run(opts, session, sleep=lambda s: None) == 0
        group = "/subscriptions/sub-1/resourceGroups/lk"
        account = f"{group}/providers/Microsoft.Storage/storageAccounts/{ACCOUNT}"
        puts = {c.path: c.body for c in fake.put_calls()}
        assert puts[account] == {
            "location": "westus",
            "sku": {"name": "Standard_LRS"},
            "kind": "StorageV2",
            "properties": {"minimumTlsVersion": "TLS1_2", "allowBlobPublicAccess": False},
        }
        # the account answered 202, then 404 while being made: it was polled until it showed up
        assert [c.method for c in fake.calls if c.path == account][:4] == ["GET", "PUT", "GET", "GET"]
        assert any(c.method == "POST" and c.path == f"{account}/listKeys" for c in fake.calls)
        blob = BlobServiceClient.from_connection_string(azurite).get_blob_client("linuxkitcontainer", "runme.vhd")
        assert blob.download_blob().readall() == vhd.read_bytes()
        disk = puts[f"{group}/providers/Microsoft.Compute/disks/vm1-osdisk"]
        assert disk["properties"]["creationData"] == {
            "createOption": "Import",
            "sourceUri": blob.url,
            "storageAccountId": account,
        }
        assert not [k for k in fake.resources if "vm1" in k]
