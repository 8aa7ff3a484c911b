"""``linuxkit push openstack`` against a real Glance: Debian 12's ``glance-api`` (Glance 25, Zed), started on a free
loopback port with a sqlite database (``glance-manage db_sync``) and the file store in a temporary directory, and
no Keystone (the package's ``glance-api`` paste pipeline, ``[paste_deploy] flavor`` empty: an unauthenticated
admin context). openstacksdk reaches it with its ``none`` auth plugin and an endpoint override, from a
``clouds.yaml`` or from the ``OS_*`` variables. The image is read back through Glance's API
(``GET /v2/images/{id}``, ``GET /v2/images/{id}/file``)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.gcp_fake import CuttingProxy, free_port

pytestmark = [pytest.mark.integration]

pytest.importorskip("openstack")
if shutil.which("glance-api") is None or shutil.which("glance-manage") is None:
    pytest.skip(
        "glance-api is not installed (Debian package glance-api; scripts/setup installs it)", allow_module_level=True
    )

PASTE_INI = Path("/etc/glance/glance-api-paste.ini")
START_TIMEOUT = 20.0


@dataclass
class Glance:
    endpoint: str
    images_dir: Path
    log: Path

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.endpoint + path, timeout=30) as resp:
            data: bytes = resp.read()
            return data

    def image(self, image_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.get(f"/v2/images/{image_id}"))
        return doc

    def images(self) -> list[dict[str, Any]]:
        doc: dict[str, Any] = json.loads(self.get("/v2/images"))
        return list(doc["images"])


def glance_conf(root: Path, port: int) -> str:
    return f"""\
[DEFAULT]
bind_host = 127.0.0.1
bind_port = {port}
workers = 0
use_stderr = true
node_staging_uri = file://{root}/staging
[database]
connection = sqlite:///{root}/glance.sqlite
[glance_store]
stores = file
default_store = file
filesystem_store_datadir = {root}/images
[oslo_concurrency]
lock_path = {root}/lock
[paste_deploy]
flavor =
config_file = {PASTE_INI}
"""


@pytest.fixture(scope="module")
def glance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Glance]:
    """glance-api on a free loopback port, its database and images in a temporary directory."""
    root = tmp_path_factory.mktemp("glance")
    for d in ("images", "staging", "lock"):
        (root / d).mkdir()
    port = free_port()
    conf = root / "glance-api.conf"
    conf.write_text(glance_conf(root, port))
    started = time.monotonic()
    sync = subprocess.run(
        ["glance-manage", "--config-file", str(conf), "db_sync"], capture_output=True, text=True, timeout=60
    )
    assert sync.returncode == 0, sync.stderr[-3000:]
    log = root / "glance-api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(["glance-api", "--config-file", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    server = Glance(f"http://127.0.0.1:{port}", root / "images", log)
    try:
        while True:
            try:
                server.get("/versions")
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() - started > START_TIMEOUT:
                    pytest.fail(f"glance-api did not answer within {START_TIMEOUT:.0f}s:\n{log.read_text()[-3000:]}")
                time.sleep(0.1)
        print(f"glance-api (db_sync and start) answered after {time.monotonic() - started:.1f}s")
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def qcow2(tmp_path: Path) -> Path:
    """A real qcow2 (qemu-img convert) of 4 MiB: 1 MiB of random data, then zeros."""
    raw = tmp_path / "disk.raw"
    raw.write_bytes(random.Random(7).randbytes(1024 * 1024) + bytes(3 * 1024 * 1024))
    out = tmp_path / "linuxkit.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(out)], check=True)
    return out


def lk(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    full = {**clean, "HOME": str(tmp_path), **env}
    argv = [sys.executable, "-m", "linuxkit.cli.main", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=full, cwd=tmp_path, timeout=120)


def test_push_through_clouds_yaml_without_keystone(glance: Glance, qcow2: Path, tmp_path: Path) -> None:
    (tmp_path / "clouds.yaml").write_text(
        f"clouds:\n  local-glance:\n    auth_type: none\n    image_endpoint_override: {glance.endpoint}\n"
    )
    proc = lk(tmp_path, "push", "openstack", str(qcow2), OS_CLOUD="local-glance")
    assert proc.returncode == 0, proc.stderr
    image_id = proc.stdout.strip()
    image = glance.image(image_id)
    assert (image["name"], image["status"]) == ("linuxkit", "active")
    assert (image["disk_format"], image["container_format"]) == ("qcow2", "bare")
    assert image["size"] == qcow2.stat().st_size
    assert glance.get(f"/v2/images/{image_id}/file") == qcow2.read_bytes()
    # the file store holds it under the image's ID
    assert (glance.images_dir / image_id).read_bytes() == qcow2.read_bytes()


def test_push_a_raw_disk_through_os_variables(glance: Glance, tmp_path: Path) -> None:
    disk = tmp_path / "system-bios.img"
    disk.write_bytes(random.Random(8).randbytes(256 * 1024) + bytes(256 * 1024))
    env = {"OS_AUTH_TYPE": "none", "OS_ENDPOINT": glance.endpoint}
    proc = lk(tmp_path, "push", "openstack", "--img-name", "my-raw-image", str(disk), **env)
    assert proc.returncode == 0, proc.stderr
    image_id = proc.stdout.strip()
    image = glance.image(image_id)
    assert (image["name"], image["disk_format"], image["container_format"]) == ("my-raw-image", "raw", "bare")
    assert image["status"] == "active"
    assert glance.get(f"/v2/images/{image_id}/file") == disk.read_bytes()


def test_a_refused_file_leaves_no_image(glance: Glance, qcow2: Path, tmp_path: Path) -> None:
    """A qcow2 named .img is refused before Glance is called (no image record is made)."""
    before = {i["id"] for i in glance.images()}
    wrong = qcow2.rename(tmp_path / "disk.img")
    env = {"OS_AUTH_TYPE": "none", "OS_IMAGE_ENDPOINT_OVERRIDE": glance.endpoint}
    proc = lk(tmp_path, "push", "openstack", str(wrong), **env)
    assert proc.returncode == 2, proc.stderr
    assert "holds a qcow2 disk, not raw" in proc.stderr
    assert {i["id"] for i in glance.images()} == before


def test_a_dropped_upload_leaves_no_half_image(glance: Glance, tmp_path: Path) -> None:
    """The upload's connection cut half way (a proxy): Glance answers 500 to the truncated PUT and puts the image
    back to ``queued`` once it has seen the disconnection (a moment later: the push waits while it is still
    ``saving``); the file is sent again and stored whole, and no other image is left."""
    disk = tmp_path / "big.raw"
    disk.write_bytes(random.Random(9).randbytes(4 * 1024 * 1024))
    before = {i["id"] for i in glance.images()}
    proxy = CuttingProxy(int(glance.endpoint.rsplit(":", 1)[1]), cut_after=2_000_000)
    try:
        env = {"OS_AUTH_TYPE": "none", "OS_ENDPOINT": f"http://127.0.0.1:{proxy.port}"}
        proc = lk(tmp_path, "push", "openstack", str(disk), **env)
    finally:
        proxy.close()
    assert proxy.cuts == 1
    assert "upload failed" in proc.stderr and "Traceback" not in proc.stderr
    after = [i for i in glance.images() if i["id"] not in before]
    assert proc.returncode == 0, proc.stderr
    (image,) = after
    assert (image["id"], image["status"]) == (proc.stdout.strip(), "active")
    assert glance.get(f"/v2/images/{image['id']}/file") == disk.read_bytes()
