"""``linuxkit push openstack`` and ``linuxkit run openstack`` through openstacksdk against a recording local
OpenStack (tests/openstack_fake.py) that answers the Keystone v3, Glance v2 and Nova calls as their published API
references describe them; the tests check the calls made (methods, paths, bodies, headers) against those
references, and read the uploaded bytes back from the fake's store."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.openstack_fake import OpenStackFake, openstack_fake

pytestmark = [pytest.mark.integration]

pytest.importorskip("openstack")


@pytest.fixture
def cloud() -> Iterator[OpenStackFake]:
    with openstack_fake(OpenStackFake()) as fake:
        yield fake


@pytest.fixture
def qcow2(tmp_path: Path) -> Path:
    """A real qcow2 image (qemu-img) of 3 MiB of random data."""
    raw = tmp_path / "disk.raw"
    raw.write_bytes(random.Random(5).randbytes(3 * 1024 * 1024))
    out = tmp_path / "linuxkit.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(out)], check=True)
    return out


def lk(fake: OpenStackFake, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    full = {**clean, "HOME": str(tmp_path), **fake.env(), **env}
    argv = [sys.executable, "-m", "linuxkit.cli.main", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=full, cwd=tmp_path, timeout=120)


def test_push_creates_the_image_and_uploads_the_file(cloud: OpenStackFake, qcow2: Path, tmp_path: Path) -> None:
    proc = lk(cloud, tmp_path, "push", "openstack", str(qcow2))
    assert proc.returncode == 0, proc.stderr
    image_id = proc.stdout.strip()
    assert cloud.images[image_id]["status"] == "active"
    assert cloud.images[image_id]["name"] == "linuxkit"
    assert cloud.data[image_id] == qcow2.read_bytes()
    # Keystone: discovery, then a password-scoped token; Glance: discovery, create, upload, check
    assert cloud.calls() == [
        ("GET", "/identity/v3"),
        ("POST", "/identity/v3/auth/tokens"),
        ("GET", "/image"),
        ("POST", "/image/v2/images"),
        ("PUT", f"/image/v2/images/{image_id}/file"),
        ("GET", f"/image/v2/images/{image_id}"),
    ]
    create, upload = cloud.requests[3], cloud.requests[4]
    assert create.body == {"name": "linuxkit", "disk_format": "qcow2", "container_format": "bare"}
    assert create.headers["x-auth-token"] == "gAAAAAfake-token"
    assert upload.headers["content-type"] == "application/octet-stream"
    assert upload.headers["x-openstack-image-size"] == str(qcow2.stat().st_size)
    assert upload.size == qcow2.stat().st_size


def test_push_with_a_name_and_a_raw_disk(cloud: OpenStackFake, tmp_path: Path) -> None:
    disk = tmp_path / "system-bios.img"
    disk.write_bytes(bytes(512 * 1024))
    proc = lk(cloud, tmp_path, "push", "openstack", "--img-name", "my-image", str(disk))
    assert proc.returncode == 0, proc.stderr
    (image,) = cloud.images.values()
    assert (image["name"], image["disk_format"], image["status"]) == ("my-image", "raw", "active")


def test_a_dropped_upload_is_sent_again(qcow2: Path, tmp_path: Path) -> None:
    with openstack_fake(OpenStackFake(drop_first_upload=True)) as cloud:
        proc = lk(cloud, tmp_path, "push", "openstack", str(qcow2))
        assert proc.returncode == 0, proc.stderr
        image_id = proc.stdout.strip()
        assert cloud.uploads == 2
        assert cloud.data[image_id] == qcow2.read_bytes()
        assert "upload failed" in proc.stderr
        # Glance said where the image stood (queued) before the second upload
        puts = [i for i, (m, p) in enumerate(cloud.calls()) if m == "PUT"]
        assert cloud.calls()[puts[0] + 1] == ("GET", f"/image/v2/images/{image_id}")


def test_a_failed_upload_deletes_the_image(qcow2: Path, tmp_path: Path) -> None:
    with openstack_fake(OpenStackFake(fail_uploads=True)) as cloud:
        proc = lk(cloud, tmp_path, "push", "openstack", str(qcow2))
        assert proc.returncode == 1, proc.stderr
        assert "killed" in proc.stderr
        assert cloud.images == {}
        assert cloud.calls()[-1][0] == "DELETE"


def test_wrong_or_missing_credentials(cloud: OpenStackFake, qcow2: Path, tmp_path: Path) -> None:
    proc = lk(cloud, tmp_path, "push", "openstack", str(qcow2), OS_PASSWORD="wrong")
    assert proc.returncode == 2, proc.stderr
    assert "refused the credentials" in proc.stderr and "Traceback" not in proc.stderr
    proc = lk(cloud, tmp_path, "push", "openstack", str(qcow2), OS_AUTH_URL="")
    assert proc.returncode == 2, proc.stderr
    assert "OS_AUTH_URL" in proc.stderr and "clouds.yaml" in proc.stderr
    assert cloud.images == {}


def test_run_creates_the_server_and_waits_for_it(cloud: OpenStackFake, qcow2: Path, tmp_path: Path) -> None:
    assert lk(cloud, tmp_path, "push", "openstack", str(qcow2)).returncode == 0
    (image_id,) = cloud.images
    cloud.requests.clear()
    proc = lk(
        cloud, tmp_path, "run", "openstack", "--flavor", "m1.small", "--instancename", "vm1",
        "--network", "net-1", "--sec-groups", "default,ssh", "--keyname", "mykey", "linuxkit",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (server_id,) = cloud.servers
    assert proc.stdout.strip() == server_id
    create = next(r for r in cloud.requests if r.method == "POST" and r.path == "/compute/v2.1/servers")
    assert create.body == {
        "server": {
            "name": "vm1",
            "imageRef": image_id,
            "flavorRef": "2",
            "networks": [{"uuid": "net-1"}],
            "security_groups": [{"name": "default"}, {"name": "ssh"}],
            "key_name": "mykey",
        }
    }
    assert cloud.servers[server_id]["status"] == "ACTIVE"
    assert cloud.calls()[-1] == ("GET", f"/compute/v2.1/servers/{server_id}")


def test_run_deletes_a_server_that_fails(qcow2: Path, tmp_path: Path) -> None:
    with openstack_fake(OpenStackFake(server_fails=True)) as cloud:
        assert lk(cloud, tmp_path, "push", "openstack", str(qcow2)).returncode == 0
        proc = lk(cloud, tmp_path, "run", "openstack", "linuxkit")
        assert proc.returncode == 1, proc.stderr
        assert "No valid host was found." in proc.stderr
        assert cloud.servers == {}
        assert cloud.calls()[-1][0] == "DELETE"
        proc = lk(cloud, tmp_path, "run", "openstack", "no-such-image")
        assert proc.returncode == 2 and "no image no-such-image" in proc.stderr
