"""``linuxkit push scaleway`` and ``linuxkit run scaleway`` end to end, on loopback.

Object Storage is S3: moto's server (real boto3 uploads, read back). The Scaleway API has no emulator: a recording
server answers as the published references describe (www.scaleway.com/en/developers/api/ — Block Storage API v1
``POST /block/v1/zones/{zone}/snapshots/import-from-object-storage`` → a Snapshot with ``status`` ``creating`` then
``available``, ``GET``/``DELETE .../snapshots/{id}``; Instance API v1 ``GET``/``POST .../images`` → ``{"images":
[...]}``/``{"image": ...}``, ``POST .../servers`` → ``{"server": ...}``, ``POST .../servers/{id}/action``,
``PATCH .../servers/{id}/user_data/{key}`` (text/plain), ``DELETE .../servers/{id}``, volumes), and every request's
method, path, ``X-Auth-Token`` and body is checked. At import time the fake reads the object back from moto, so
the bytes Scaleway would import are compared with the file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ROOT
from tests.motoserver import moto_url
from tests.recording_api import Recorder, Request, recording_server

pytestmark = [pytest.mark.integration]

pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

ZONE = "fr-par-1"
PROJECT = "11111111-2222-3333-4444-555555555555"
SECRET = "SCWSECRET-0000-1111"
ACCESS = "SCWACCESSKEY000000"
BUCKET = "lk-images"
SNAP = "aaaaaaaa-0000-0000-0000-000000000001"
IMAGE_ID = "bbbbbbbb-0000-0000-0000-000000000002"
SERVER_ID = "cccccccc-0000-0000-0000-000000000003"
VOLUME_ID = "dddddddd-0000-0000-0000-000000000004"
INSTANCE = f"/instance/v1/zones/{ZONE}"
BLOCK = f"/block/v1/zones/{ZONE}"


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    with moto_url() as url:
        yield url


def s3(url: str) -> Any:
    return boto3.client(
        "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=ACCESS, aws_secret_access_key=SECRET
    )


@pytest.fixture
def bucket(s3_url: str) -> Iterator[Any]:
    client = s3(s3_url)
    client.create_bucket(Bucket=BUCKET)
    try:
        yield client
    finally:
        for obj in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=obj["Key"])
        client.delete_bucket(Bucket=BUCKET)


class FakeScaleway:
    """The documented answers; ``snapshot_states`` is what successive snapshot GETs say."""

    def __init__(self, bucket: Any, snapshot_states: list[str], server_states: list[str] | None = None) -> None:
        self.bucket = bucket
        self.snapshot_states = snapshot_states
        self.server_states = server_states or ["running"]
        self.imported: bytes = b""
        self.images: list[dict[str, Any]] = []

    def __call__(self, r: Request) -> tuple[int, Any]:
        assert r.headers.get("x-auth-token") == SECRET
        if (r.method, r.path) == ("GET", f"{INSTANCE}/images"):
            return 200, {"images": [i for i in self.images if r.query["name"][0] in i["name"]], "total_count": 1}
        if (r.method, r.path) == ("POST", f"{BLOCK}/snapshots/import-from-object-storage"):
            body = r.json()
            self.imported = self.bucket.get_object(Bucket=body["bucket"], Key=body["key"])["Body"].read()
            return 200, {"id": SNAP, "name": body["name"], "status": "creating", "zone": ZONE}
        if (r.method, r.path) == ("GET", f"{BLOCK}/snapshots/{SNAP}"):
            state = self.snapshot_states.pop(0) if len(self.snapshot_states) > 1 else self.snapshot_states[0]
            return 200, {"id": SNAP, "status": state, "size": len(self.imported), "zone": ZONE}
        if (r.method, r.path) == ("DELETE", f"{BLOCK}/snapshots/{SNAP}"):
            return 204, None
        if (r.method, r.path) == ("POST", f"{INSTANCE}/images"):
            image = {"id": IMAGE_ID, "name": r.json()["name"], "arch": r.json()["arch"], "state": "available"}
            self.images.append(image)
            return 201, {"image": image}
        if (r.method, r.path) == ("POST", f"{INSTANCE}/servers"):
            volumes = {"0": {"id": VOLUME_ID, "volume_type": "sbs_volume"}}
            return 201, {"server": {"id": SERVER_ID, "name": r.json()["name"], "state": "stopped", "volumes": volumes}}
        if (r.method, r.path) == ("GET", f"{INSTANCE}/servers/{SERVER_ID}"):
            state = self.server_states.pop(0) if len(self.server_states) > 1 else self.server_states[0]
            return 200, {"server": {"id": SERVER_ID, "state": state}}
        if (r.method, r.path) == ("POST", f"{INSTANCE}/servers/{SERVER_ID}/action"):
            return 202, {"task": {"id": "t", "description": r.json()["action"], "status": "pending"}}
        if r.method == "PATCH" and r.path == f"{INSTANCE}/servers/{SERVER_ID}/user_data/cloud-init":
            return 204, None
        if r.method == "DELETE" and r.path in (f"{INSTANCE}/servers/{SERVER_ID}", f"{BLOCK}/volumes/{VOLUME_ID}"):
            return 204, None
        return 404, {"type": "not_found", "message": f"no {r.method} {r.path}"}


def env_for(api: Recorder, s3_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCW_", "AWS_"))}
    env.update(
        SCW_API_URL=api.url,
        SCW_OBJECT_STORAGE_URL=s3_url,
        SCW_ACCESS_KEY=ACCESS,
        SCW_SECRET_KEY=SECRET,
        SCW_DEFAULT_PROJECT_ID=PROJECT,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        PYTHONPATH=str(ROOT / "src"),
    )
    return env


def lk(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "linuxkit.cli.main", *args], capture_output=True, text=True, env=env, timeout=120
    )


def qcow2(tmp_path: Path, name: str = "lk-efi.qcow2") -> Path:
    raw = tmp_path / "disk.raw"
    with raw.open("wb") as f:
        f.truncate(8 << 20)
        f.seek(1 << 20)
        f.write(os.urandom(300_000))
    out = tmp_path / name
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(out)], check=True)
    return out


def test_push_uploads_imports_and_makes_the_image(bucket: Any, s3_url: str, tmp_path: Path) -> None:
    disk = qcow2(tmp_path)
    fake = FakeScaleway(bucket, ["creating", "available"])
    with recording_server(fake) as api:
        proc = lk("push", "scaleway", "--zone", "par1", "--bucket", BUCKET, str(disk), env=env_for(api, s3_url))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == IMAGE_ID
    assert fake.imported == disk.read_bytes()  # what Scaleway reads from the bucket is the file
    assert api.calls() == [
        ("GET", f"{INSTANCE}/images"),
        ("POST", f"{BLOCK}/snapshots/import-from-object-storage"),
        ("GET", f"{BLOCK}/snapshots/{SNAP}"),
        ("GET", f"{BLOCK}/snapshots/{SNAP}"),
        ("POST", f"{INSTANCE}/images"),
    ]
    assert api.requests[0].query == {"name": ["lk-efi"], "per_page": ["100"], "project": [PROJECT]}
    imp = api.find("POST", f"{BLOCK}/snapshots/import-from-object-storage")
    assert imp.headers["content-type"] == "application/json"
    assert imp.json() == {
        "bucket": BUCKET,
        "key": "lk-efi.qcow2",
        "name": "lk-efi",
        "project_id": PROJECT,
        "tags": ["linuxkit"],
    }
    image = api.find("POST", f"{INSTANCE}/images").json()
    assert image == {"name": "lk-efi", "root_volume": SNAP, "arch": "x86_64", "project": PROJECT, "tags": ["linuxkit"]}
    assert "Contents" not in bucket.list_objects_v2(Bucket=BUCKET)  # the object is deleted once imported


def test_push_no_clean_keeps_the_object_and_names_come_from_flags(bucket: Any, s3_url: str, tmp_path: Path) -> None:
    disk = qcow2(tmp_path)
    with recording_server(FakeScaleway(bucket, ["available"])) as api:
        args = ["--no-clean", "--img-name", "mine", "--arch", "aarch64", "--bucket", BUCKET]
        proc = lk("push", "scaleway", *args, str(disk), env=env_for(api, s3_url))
    assert proc.returncode == 0, proc.stderr
    assert api.find("POST", f"{INSTANCE}/images").json()["arch"] == "arm64"
    assert bucket.get_object(Bucket=BUCKET, Key="mine.qcow2")["Body"].read() == disk.read_bytes()


def test_a_failed_import_deletes_the_snapshot_and_the_object(bucket: Any, s3_url: str, tmp_path: Path) -> None:
    disk = qcow2(tmp_path)
    with recording_server(FakeScaleway(bucket, ["error"])) as api:
        proc = lk("push", "scaleway", "--bucket", BUCKET, str(disk), env=env_for(api, s3_url))
    assert proc.returncode == 1, proc.stderr
    assert "the import failed" in proc.stderr
    assert api.calls()[-1] == ("DELETE", f"{BLOCK}/snapshots/{SNAP}")
    assert ("POST", f"{INSTANCE}/images") not in api.calls()
    assert "Contents" not in bucket.list_objects_v2(Bucket=BUCKET)


def test_an_existing_image_name_is_refused_before_uploading(bucket: Any, s3_url: str, tmp_path: Path) -> None:
    disk = qcow2(tmp_path)
    fake = FakeScaleway(bucket, ["available"])
    fake.images.append({"id": IMAGE_ID, "name": "lk-efi"})
    with recording_server(fake) as api:
        proc = lk("push", "scaleway", "--bucket", BUCKET, str(disk), env=env_for(api, s3_url))
    assert proc.returncode == 2
    assert "already exists" in proc.stderr
    assert api.calls() == [("GET", f"{INSTANCE}/images")]
    assert "Contents" not in bucket.list_objects_v2(Bucket=BUCKET)


def test_refused_credentials_are_a_user_error(bucket: Any, s3_url: str, tmp_path: Path) -> None:
    disk = qcow2(tmp_path)
    with recording_server(lambda r: (401, {"type": "denied_authentication", "message": "invalid token"})) as api:
        proc = lk("push", "scaleway", "--bucket", BUCKET, str(disk), env=env_for(api, s3_url))
    assert proc.returncode == 2
    assert "invalid token" in proc.stderr and "SCW_SECRET_KEY" in proc.stderr


def test_run_creates_powers_on_and_cleans(bucket: Any, s3_url: str, tmp_path: Path) -> None:
    fake = FakeScaleway(bucket, ["available"])
    fake.images.append({"id": IMAGE_ID, "name": "lk-efi"})
    with recording_server(fake) as api:
        args = ["--no-attach", "--clean", "--instance-type", "PLAY2-NANO", "--data", "#cloud-config\n", "lk-efi"]
        proc = lk("run", "scaleway", *args, env=env_for(api, s3_url))
    assert proc.returncode == 0, proc.stderr
    assert f"scw instance server console {SERVER_ID} zone={ZONE}" in proc.stdout
    assert api.calls() == [
        ("GET", f"{INSTANCE}/images"),
        ("POST", f"{INSTANCE}/servers"),
        ("PATCH", f"{INSTANCE}/servers/{SERVER_ID}/user_data/cloud-init"),
        ("POST", f"{INSTANCE}/servers/{SERVER_ID}/action"),
        ("POST", f"{INSTANCE}/servers/{SERVER_ID}/action"),
    ]
    create = api.find("POST", f"{INSTANCE}/servers").json()
    assert create == {
        "name": "lk-efi",
        "commercial_type": "PLAY2-NANO",
        "image": IMAGE_ID,
        "project": PROJECT,
        "dynamic_ip_required": True,
        "tags": ["linuxkit"],
    }
    data = api.find("PATCH", f"{INSTANCE}/servers/{SERVER_ID}/user_data/cloud-init")
    assert data.body == b"#cloud-config\n" and data.headers["content-type"] == "text/plain"
    actions = [r.json() for r in api.requests if r.path.endswith("/action")]
    assert actions == [{"action": "poweron"}, {"action": "terminate"}]


def test_run_waits_for_the_server_to_stop_then_deletes_it_and_its_volume(bucket: Any, tmp_path: Path) -> None:
    from linuxkit.cloud import scaleway
    from linuxkit.cloud.scaleway_api import ScalewayApi

    fake = FakeScaleway(bucket, ["available"], server_states=["starting", "running", "stopped"])
    fake.images.append({"id": IMAGE_ID, "name": "lk-efi"})
    out: list[str] = []
    with recording_server(fake) as api_server, pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCW_API_URL", api_server.url)
        opts = scaleway.RunOptions(
            image="lk-efi",
            credentials=scaleway.Credentials("", SECRET, PROJECT),
            zone=ZONE,
            instance_type="DEV1-S",
            clean=True,
            poll_interval=0.01,
            write=out.append,
        )
        assert scaleway.run(opts, ScalewayApi(SECRET, ZONE)) == 0
    calls = api_server.calls()
    assert calls.count(("GET", f"{INSTANCE}/servers/{SERVER_ID}")) == 3
    # stopped: terminate is refused on a stopped server, so the server then its Block volume are deleted
    assert calls[-2:] == [("DELETE", f"{INSTANCE}/servers/{SERVER_ID}"), ("DELETE", f"{BLOCK}/volumes/{VOLUME_ID}")]
    assert [r.json() for r in api_server.requests if r.path.endswith("/action")] == [{"action": "poweron"}]


def test_sigterm_while_importing_deletes_the_snapshot_and_the_object(bucket: Any, s3_url: str, tmp_path: Path) -> None:
    disk = qcow2(tmp_path)
    fake = FakeScaleway(bucket, ["creating"])  # never available
    with recording_server(fake) as api:
        argv = [sys.executable, "-m", "linuxkit.cli.main", "push", "scaleway", "--bucket", BUCKET, str(disk)]
        proc = subprocess.Popen(
            argv, env=env_for(api, s3_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 60
        while ("GET", f"{BLOCK}/snapshots/{SNAP}") not in api.calls():
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert api.calls()[-1] == ("DELETE", f"{BLOCK}/snapshots/{SNAP}")
    assert ("POST", f"{INSTANCE}/images") not in api.calls()
    assert "Contents" not in bucket.list_objects_v2(Bucket=BUCKET)


def test_a_server_that_cannot_be_started_is_deleted_even_without_clean(bucket: Any, s3_url: str) -> None:
    fake = FakeScaleway(bucket, ["available"])
    fake.images.append({"id": IMAGE_ID, "name": "lk-efi"})

    def refuse_user_data(r: Request) -> tuple[int, Any]:
        if r.method == "PATCH":
            return 400, {"type": "invalid_arguments", "message": "user data too large"}
        return fake(r)

    with recording_server(refuse_user_data) as api:
        proc = lk("run", "scaleway", "--no-attach", "--data", "x" * 100, "lk-efi", env=env_for(api, s3_url))
    assert proc.returncode == 1
    assert "user data too large" in proc.stderr
    assert api.calls()[-2:] == [
        ("DELETE", f"{INSTANCE}/servers/{SERVER_ID}"),
        ("DELETE", f"{BLOCK}/volumes/{VOLUME_ID}"),
    ]
    assert not any(r.path.endswith("/action") for r in api.requests)
