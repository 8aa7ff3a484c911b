"""``linuxkit push gcp`` and ``linuxkit run gcp`` end to end on loopback.

Cloud Storage is the real ``gcp-storage-emulator`` (PyPI) started by a fixture: the object is read back from it
and compared with the file. Compute Engine has no emulator: a recording server (tests/gcp_fake.py) answers the
OAuth token endpoint and the Compute v1 calls as the published REST reference documents them, and the tests check
the exact methods, paths and bodies against that reference (images.insert: ``POST projects/P/global/images`` with
an Image resource; globalOperations.get; instances.insert / getSerialPortOutput / delete under
``projects/P/zones/Z/instances``).
"""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import ROOT
from tests.gcp_fake import (
    TOKEN,
    ComputeFake,
    CuttingProxy,
    compute_fake,
    service_account_key,
    storage_emulator,
)

pytestmark = [pytest.mark.integration]

storage = pytest.importorskip("google.cloud.storage")

BUCKET = "linuxkit-images"
PROJECT = "lk-test-project"


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    with storage_emulator(BUCKET) as host:
        yield host


@pytest.fixture
def compute() -> Iterator[ComputeFake]:
    with compute_fake(ComputeFake()) as fake:
        yield fake


@pytest.fixture(scope="module")
def gcp_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ``gcp`` image of examples/minimal.yml (its own cache; Debian downloads shared with other tests)."""
    out = tmp_path_factory.mktemp("gcp-image")
    debs = Path(os.environ.get("LINUXKIT_TEST_CACHE", Path.home() / ".cache" / "linuxkit-tests")) / "debian"
    env = {**os.environ, "LINUXKIT_CACHE": str(out / "cache"), "LINUXKIT_DEBIAN_CACHE": str(debs)}
    argv = [sys.executable, "-m", "linuxkit.cli.main", "build", "-f", "gcp", "--dir", str(out)]
    proc = subprocess.run([*argv, str(ROOT / "examples" / "minimal.yml")], capture_output=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    return out / "minimal.img.tar.gz"


def read_back(host: str, name: str) -> bytes | None:
    from google.auth.credentials import AnonymousCredentials

    client = storage.Client(
        project=PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": f"http://{host}"}
    )
    blob = client.bucket(BUCKET).get_blob(name)
    return None if blob is None else bytes(blob.download_as_bytes())


def lk(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "linuxkit.cli.main", *args]
    return subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env}, timeout=300)


def cloud_env(tmp_path: Path, host: str, fake: ComputeFake) -> tuple[dict[str, str], Path]:
    key = service_account_key(tmp_path / "sa.json", fake.base + "token", PROJECT)
    env = {
        "STORAGE_EMULATOR_HOST": f"http://{host}",
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE": fake.endpoint,
        "CLOUDSDK_CORE_PROJECT": PROJECT,
        "COLUMNS": "200",
    }
    return env, key


def test_push_uploads_the_built_image_and_creates_it(
    gcp_image: Path, emulator: str, compute: ComputeFake, tmp_path: Path
) -> None:
    env, key = cloud_env(tmp_path, emulator, compute)
    proc = lk(
        "push", "gcp", "--keys", str(key), "--bucket", BUCKET, "--family", "linuxkit",
        "--uefi-compatible", "--nested-virt", str(gcp_image), env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"gs://{BUCKET}/minimal.img.tar.gz"
    # the bytes in the bucket are the file's
    assert read_back(emulator, "minimal.img.tar.gz") == gcp_image.read_bytes()
    # the service account's JWT asked for the two scopes upstream asks for
    token = next(r for r in compute.requests if r.path == "/token")
    claims = token.body["claims"]
    assert claims["iss"] == f"pusher@{PROJECT}.iam.gserviceaccount.com"
    assert set(claims["scope"].split()) == {
        "https://www.googleapis.com/auth/devstorage.read_write",
        "https://www.googleapis.com/auth/compute",
    }
    # images.delete (none yet: 404), images.insert, globalOperations.get until DONE
    assert compute.compute_requests() == [
        ("DELETE", f"{PROJECT}/global/images/minimal"),
        ("POST", f"{PROJECT}/global/images"),
        ("GET", f"{PROJECT}/global/operations/operation-1"),
    ]
    insert = next(r for r in compute.requests if r.method == "POST" and r.path.endswith("/global/images"))
    assert insert.headers["authorization"] == f"Bearer {TOKEN}"
    assert insert.body == {
        "name": "minimal",
        "rawDisk": {"source": f"https://storage.googleapis.com/{BUCKET}/minimal.img.tar.gz"},
        "family": "linuxkit",
        "licenses": ["projects/vm-options/global/licenses/enable-vmx"],
        "guestOsFeatures": [{"type": "UEFI_COMPATIBLE"}],
    }
    assert compute.images["minimal"]["status"] == "READY"

    # pushing again replaces the image (as upstream): delete, wait, insert
    compute.requests.clear()
    proc = lk("push", "gcp", "--keys", str(key), "--bucket", BUCKET, "--img-name", "minimal", str(gcp_image), env=env)
    assert proc.returncode == 0, proc.stderr
    assert [m for m, _ in compute.compute_requests()] == ["DELETE", "GET", "POST", "GET"]
    assert "deleted the existing image minimal" in proc.stderr


def test_push_failure_deletes_the_object_and_the_failed_image(emulator: str, tmp_path: Path) -> None:
    tarball = tmp_path / "broken.img.tar.gz"
    make_archive(tarball, random.Random(3).randbytes(300_000))
    with compute_fake(ComputeFake(fail_image_insert=True)) as fake:
        env, key = cloud_env(tmp_path, emulator, fake)
        proc = lk("push", "gcp", "--keys", str(key), "--bucket", BUCKET, str(tarball), env=env)
        assert proc.returncode == 1, proc.stderr
        assert "Invalid image file" in proc.stderr
        assert f"deleted gs://{BUCKET}/broken.img.tar.gz" in proc.stderr
        assert read_back(emulator, "broken.img.tar.gz") is None
        # the FAILED image the insert left is deleted too
        assert fake.compute_requests()[-2:] == [
            ("DELETE", f"{PROJECT}/global/images/broken"),
            ("GET", f"{PROJECT}/global/operations/operation-2"),
        ]
        assert fake.images == {}


def test_an_interrupted_upload_resumes_where_the_server_stands(
    emulator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection is cut in the middle of a chunk: the upload asks the emulator what it has (``bytes */N``)
    and goes on from there; the object is the file."""
    from google.auth.credentials import AnonymousCredentials
    from google.auth.transport.requests import AuthorizedSession

    from linuxkit.cloud.gcs_upload import ResumableUpload

    data = random.Random(7).randbytes(3 * 1024 * 1024 + 12345)
    proxy = CuttingProxy(int(emulator.rsplit(":", 1)[1]), cut_after=1_500_000)
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{proxy.port}")
        client = storage.Client(project=PROJECT, credentials=AnonymousCredentials())
        blob = client.bucket(BUCKET).blob("resumed.bin")
        url = blob.create_resumable_upload_session(size=len(data))
        seen: list[int] = []
        upload = ResumableUpload(
            http=AuthorizedSession(AnonymousCredentials()),
            session_url=url,
            source=io.BytesIO(data),
            size=len(data),
            chunk=512 * 1024,
            sleep=lambda s: None,
            on_progress=seen.append,
        )
        result = upload.run()
    finally:
        proxy.close()
    assert proxy.cuts == 1 and upload.recoveries == 1
    assert int(result["size"]) == len(data)
    assert read_back(emulator, "resumed.bin") == data
    assert seen == sorted(seen) and seen[-1] == len(data)


def test_run_creates_the_instance_prints_its_console_and_deletes_it(
    emulator: str, compute: ComputeFake, tmp_path: Path
) -> None:
    compute.images["minimal"] = {"name": "minimal", "status": "READY", "guestOsFeatures": [{"type": "UEFI_COMPATIBLE"}]}
    env, key = cloud_env(tmp_path, emulator, compute)
    proc = lk(
        "run", "gcp", "--keys", str(key), "--zone", "us-central1-a", "--machine", "e2-small", "--vtpm",
        "--data", "hello=1", "--disk", "size=2G", "--name", "lk-vm", "minimal", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "boot 1\nWelcome to LinuxKit\npower off\n"
    zone = f"{PROJECT}/zones/us-central1-a"
    calls = compute.compute_requests()
    assert calls[:5] == [
        ("GET", f"{PROJECT}/global/images/minimal"),
        ("DELETE", f"{zone}/instances/lk-vm"),
        ("POST", f"{zone}/disks"),
        ("GET", f"{zone}/operations/operation-1"),
        ("POST", f"{zone}/instances"),
    ]
    assert calls[-2:] == [("DELETE", f"{zone}/instances/lk-vm"), ("GET", f"{zone}/operations/operation-3")]
    assert {c for c in calls[5:-2]} == {
        ("GET", f"{zone}/operations/operation-2"),
        ("GET", f"{zone}/instances/lk-vm/serialPort"),
        ("GET", f"{zone}/instances/lk-vm"),
    }
    serial = [r for r in compute.requests if r.path.endswith("/serialPort")]
    assert serial[0].query == {"port": ["1"], "start": ["0"]}
    disk = next(r for r in compute.requests if r.method == "POST" and r.path.endswith("/disks"))
    assert disk.body == {"name": "lk-vm-disk-0", "sizeGb": "2", "guestOsFeatures": [{"type": "UEFI_COMPATIBLE"}]}
    instance = next(r for r in compute.requests if r.method == "POST" and r.path.endswith("/instances"))
    assert instance.body == {
        "name": "lk-vm",
        "machineType": "zones/us-central1-a/machineTypes/e2-small",
        "disks": [
            {"autoDelete": True, "boot": True, "initializeParams": {"sourceImage": "global/images/minimal"}},
            {"autoDelete": True, "boot": False, "source": "zones/us-central1-a/disks/lk-vm-disk-0"},
        ],
        "networkInterfaces": [{"network": "global/networks/default", "accessConfigs": [{"type": "ONE_TO_ONE_NAT"}]}],
        "metadata": {"items": [{"key": "serial-port-enable", "value": "1"}, {"key": "user-data", "value": "hello=1"}]},
        "shieldedInstanceConfig": {"enableVtpm": True},
    }
    assert compute.instances == {}


def test_run_refuses_nested_virt_on_an_image_without_the_licence(
    emulator: str, compute: ComputeFake, tmp_path: Path
) -> None:
    compute.images["plain"] = {"name": "plain", "status": "READY"}
    env, key = cloud_env(tmp_path, emulator, compute)
    proc = lk("run", "gcp", "--keys", str(key), "--nested-virt", "plain", env=env)
    assert proc.returncode == 2
    assert "enable-vmx" in proc.stderr and "--nested-virt" in proc.stderr
    assert compute.compute_requests() == [("GET", f"{PROJECT}/global/images/plain")]


def test_missing_credentials_name_what_was_looked_at(tmp_path: Path) -> None:
    tarball = tmp_path / "x.img.tar.gz"
    make_archive(tarball, b"\0" * 1024)
    env = {
        "HOME": str(tmp_path),
        "GOOGLE_APPLICATION_CREDENTIALS": "",
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
        "GCE_METADATA_HOST": "127.0.0.1:9",
        "GCE_METADATA_IP": "127.0.0.1:9",
        "NO_GCE_CHECK": "True",
    }
    proc = lk("push", "gcp", "--project", PROJECT, "--bucket", BUCKET, str(tarball), env=env)
    assert proc.returncode == 2, proc.stderr
    assert "GOOGLE_APPLICATION_CREDENTIALS" in proc.stderr and "CLOUDSDK_COMPUTE_KEYS" in proc.stderr
    assert "Traceback" not in proc.stderr


def make_archive(path: Path, disk: bytes) -> None:
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("disk.raw")
        info.size = len(disk)
        tar.addfile(info, io.BytesIO(disk))


def test_ctrl_c_during_run_deletes_the_instance(emulator: str, tmp_path: Path) -> None:
    import signal

    with compute_fake(ComputeFake(serial=["boot 1\n", *[""] * 1000])) as fake:
        fake.images["minimal"] = {"name": "minimal", "status": "READY"}
        env, key = cloud_env(tmp_path, emulator, fake)
        argv = [sys.executable, "-m", "linuxkit.cli.main", "run", "gcp", "--keys", str(key), "minimal"]
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env}
        )
        assert proc.stdout is not None
        assert proc.stdout.readline() == "boot 1\n"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert fake.instances == {}
        # (after the DELETE, the wait for its operation may poll any number of times)
        assert ("DELETE", f"{PROJECT}/zones/europe-west1-d/instances/minimal") in fake.compute_requests()


def test_sigterm_while_the_image_is_made_deletes_object_and_image(emulator: str, tmp_path: Path) -> None:
    import signal
    import time

    tarball = tmp_path / "stopped.img.tar.gz"
    make_archive(tarball, random.Random(4).randbytes(100_000))
    with compute_fake(ComputeFake(image_insert_hangs=True)) as fake:
        env, key = cloud_env(tmp_path, emulator, fake)
        argv = [sys.executable, "-m", "linuxkit.cli.main", "push", "gcp", "--keys", str(key), "--bucket", BUCKET]
        proc = subprocess.Popen(
            [*argv, str(tarball)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **env},
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while ("GET", f"{PROJECT}/global/operations/operation-1") not in fake.compute_requests():
            assert time.monotonic() < deadline and proc.poll() is None, "push never waited for the operation"
            time.sleep(0.05)
        assert read_back(emulator, "stopped.img.tar.gz") == tarball.read_bytes()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 143, err
        assert read_back(emulator, "stopped.img.tar.gz") is None
        assert ("DELETE", f"{PROJECT}/global/images/stopped") in fake.compute_requests()
        assert "stopped" not in fake.images
