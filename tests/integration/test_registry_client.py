"""The registry client against a real registry: Debian's ``docker-registry`` on a free loopback port.

CI must install the Debian packages ``docker-registry`` (these tests skip without it) and
``skopeo`` (the cross-checks skip without it).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import http.server
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from tests import imagefactory as f
from tests import plainhttp

from linuxkit.oci import jsonfmt
from linuxkit.oci.archive import import_archive
from linuxkit.oci.cache import Cache
from linuxkit.oci.image import Platform
from linuxkit.oci.mediatypes import DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST
from linuxkit.oci.registry import RegistryError, RegistryOptions, pull, push

pytestmark = pytest.mark.integration
REGISTRY_BIN = shutil.which("docker-registry")
SKOPEO = shutil.which("skopeo")
needs_skopeo = pytest.mark.skipif(SKOPEO is None, reason="skopeo not installed (apt-get install skopeo)")
AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")
NO_SLEEP = RegistryOptions(use_docker_config=False, sleep=lambda _s: None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT

    def ref(self, name: str) -> str:
        return f"{self.host}/{name}"


@contextlib.contextmanager
def serve_registry(tmp_path: Path, extra_config: str = "", ready_status: int = 200) -> Iterator[str]:
    """Run ``docker-registry`` on a free loopback port with filesystem storage in ``tmp_path`` (plus
    ``extra_config``, YAML at the top level) until the block ends; yields ``127.0.0.1:PORT``."""
    if REGISTRY_BIN is None:
        pytest.skip("docker-registry not installed (apt-get install docker-registry)")
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'registry-data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n" + extra_config
    )
    proc = subprocess.Popen(
        [REGISTRY_BIN, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if plainhttp.request("GET", f"http://127.0.0.1:{port}/v2/", timeout=1)[0] == ready_status:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"docker-registry did not start: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """A throwaway ``docker-registry`` (filesystem storage in tmp_path, deletes enabled)."""
    with serve_registry(tmp_path) as host:
        yield Registry(host)


def make_cache(root: Path, specs: list[f.ImageSpec], *, multiarch: bool = False) -> Cache:
    tar = root.with_suffix(".tar")
    f.write_layout_tar(tar, specs, multiarch=multiarch)
    cache = Cache(root)
    with tar.open("rb") as stream:
        import_archive(cache, stream)
    return cache


def assert_cache_sound(cache: Cache) -> None:
    """Every blob file has the content its name says (no partial or wrong blob at a final path)."""
    for dig in cache.layout.blob_digests():
        data = cache.layout.blob_path(dig).read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == dig


def single(tmp_path: Path, size: int = 64 << 10) -> Cache:
    spec = f.ImageSpec(
        "docker.io/example/app:1",
        [[f.file("etc/hello", "hi\n")], [f.Entry("big", size=size)]],
        cmd=["/bin/sh"],
    )
    return make_cache(tmp_path / "src", [spec])


def test_push_then_pull_single(registry: Registry, tmp_path: Path) -> None:
    src = single(tmp_path)
    pushed = push(src, "example/app:1", registry.ref("app:1"), options=NO_SLEEP)
    dst = Cache(tmp_path / "dst")
    got = pull(dst, registry.ref("app:1"), [AMD64], options=NO_SLEEP)
    assert got.digest == pushed.digest == src.find("example/app:1").digest  # type: ignore[union-attr]
    image = dst.resolve(registry.ref("app:1"), AMD64)
    original = src.resolve("example/app:1", AMD64)
    assert image is not None and original is not None
    assert [x.digest for x in image.layers] == [x.digest for x in original.layers]
    assert image.config_descriptor.digest == original.config_descriptor.digest
    image.verify()
    # a second push sends no blob again and a second pull downloads nothing; both keep the digest
    assert push(src, "example/app:1", registry.ref("app:1"), options=NO_SLEEP).digest == pushed.digest
    assert pull(dst, registry.ref("app:1"), options=NO_SLEEP).digest == pushed.digest
    # by digest too
    by_digest = pull(Cache(tmp_path / "dst2"), registry.ref(f"app@{pushed.digest}"), options=NO_SLEEP)
    assert by_digest.digest == pushed.digest


def test_multiarch_round_trip(registry: Registry, tmp_path: Path) -> None:
    specs = [
        f.ImageSpec("docker.io/example/multi:2", [[f.file("arch", "amd64")]], arch="amd64"),
        f.ImageSpec("docker.io/example/multi:2", [[f.file("arch", "arm64")]], arch="arm64"),
    ]
    src = make_cache(tmp_path / "src", specs, multiarch=True)
    root = push(src, "example/multi:2", registry.ref("multi:2"), options=NO_SLEEP)
    full = Cache(tmp_path / "full")
    assert pull(full, registry.ref("multi:2"), options=NO_SLEEP).digest == root.digest
    for plat in (AMD64, ARM64):
        a, b = full.resolve(registry.ref("multi:2"), plat), src.resolve("example/multi:2", plat)
        assert a is not None and b is not None and a.digest == b.digest
        a.verify()
    # one platform: the index is kept whole, only the arm64 image is fetched
    part = Cache(tmp_path / "part")
    assert pull(part, registry.ref("multi:2"), [ARM64], options=NO_SLEEP).digest == root.digest
    arm = part.resolve(registry.ref("multi:2"), ARM64)
    assert arm is not None
    arm.verify()
    amd = src.resolve("example/multi:2", AMD64)
    assert amd is not None and not part.layout.has_blob(amd.digest)
    with pytest.raises(RegistryError, match=r"multi:2.*no variant for linux/s390x"):
        pull(Cache(tmp_path / "none"), registry.ref("multi:2"), [Platform("linux", "s390x")], options=NO_SLEEP)
    # a partial cache cannot be pushed as a whole index: a clear error
    with pytest.raises(RegistryError, match="not in the cache"):
        push(part, registry.ref("multi:2"), registry.ref("again:1"), options=NO_SLEEP)


def test_docker_v2s2_list_round_trip(registry: Registry, tmp_path: Path) -> None:
    """Docker media types (manifest list, v2s2 manifest) are pushed and pulled byte for byte."""
    src = Cache(tmp_path / "src")
    w = src.writer()
    children = []
    for plat in (AMD64, ARM64):
        layer = w.add_blob(f"layer-{plat.architecture}".encode(), DOCKER_LAYER)
        cfg = w.add_config({"architecture": plat.architecture, "os": "linux"}, media_type=DOCKER_CONFIG)
        manifest = w.add_manifest(cfg, [layer], media_type=DOCKER_MANIFEST)
        children.append(manifest.with_platform(plat))
    raw = jsonfmt.dumps(
        {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST_LIST, "manifests": [c.to_json() for c in children]}
    )
    index = w.add_blob(raw, DOCKER_MANIFEST_LIST)
    w.tag("example/docker:1", index)
    push(src, "example/docker:1", registry.ref("docker:1"), options=NO_SLEEP)
    dst = Cache(tmp_path / "dst")
    got = pull(dst, registry.ref("docker:1"), [ARM64], options=NO_SLEEP)
    assert got.digest == index.digest and got.media_type == DOCKER_MANIFEST_LIST
    image = dst.resolve(registry.ref("docker:1"), ARM64)
    assert image is not None and image.digest == children[1].digest
    assert image.descriptor.media_type == DOCKER_MANIFEST


@needs_skopeo
def test_skopeo_reads_what_we_push_and_we_read_what_skopeo_pushes(registry: Registry, tmp_path: Path) -> None:
    assert SKOPEO is not None
    src = single(tmp_path)
    pushed = push(src, "example/app:1", registry.ref("sk:1"), options=NO_SLEEP)
    raw = subprocess.run(
        [SKOPEO, "inspect", "--raw", "--tls-verify=false", f"docker://{registry.ref('sk:1')}"],
        check=True,
        capture_output=True,
    ).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == pushed.digest
    # the other way: an OCI layout made independently, pushed by skopeo, pulled by us
    layout = tmp_path / "layout"
    tar = tmp_path / "layout.tar"
    f.write_layout_tar(tar, [f.ImageSpec("x", [[f.file("a", "from skopeo")]])])
    layout.mkdir()
    subprocess.run(["tar", "-xf", str(tar), "-C", str(layout)], check=True)
    subprocess.run(
        [SKOPEO, "copy", "--dest-tls-verify=false", f"oci:{layout}:x", f"docker://{registry.ref('fromsk:1')}"],
        check=True,
        capture_output=True,
    )
    raw = subprocess.run(
        [SKOPEO, "inspect", "--raw", "--tls-verify=false", f"docker://{registry.ref('fromsk:1')}"],
        check=True,
        capture_output=True,
    ).stdout
    got = pull(Cache(tmp_path / "dst"), registry.ref("fromsk:1"), options=NO_SLEEP)
    assert got.digest == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_missing_image_is_a_clear_error(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"pulling 127\.0\.0\.1:\d+/nope:1: fetching manifest 1: HTTP 404"):
        pull(Cache(tmp_path / "c"), registry.ref("nope:1"), options=NO_SLEEP)
    with pytest.raises(RegistryError, match="not in the cache"):
        push(Cache(tmp_path / "c"), "example/absent:1", registry.ref("x:1"), options=NO_SLEEP)


# -- faults ---------------------------------------------------------------------------------------


@dataclass
class Faults:
    """What the proxy does to the next blob GETs: ``mode`` for ``count`` requests."""

    mode: str = "none"  # corrupt | reset | reset-corrupt | status | slow
    count: int = 0
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    ranges: list[str] = field(default_factory=list)  # the Range header of each blob GET ("" for none)
    delay: float = 0.0  # seconds per 64 KiB sent, for every blob GET
    in_flight: int = 0
    max_in_flight: int = 0
    repos_in_flight: list[str] = field(default_factory=list)
    max_repos_in_flight: int = 0  # distinct repositories with a blob GET running at the same time
    lock: threading.Lock = field(default_factory=threading.Lock)


def start_proxy(upstream: str, faults: Faults) -> tuple[http.server.ThreadingHTTPServer, str]:
    """A forwarding proxy (GET/HEAD) in front of the registry that injects ``faults`` into blob GETs."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self.forward(body=False)

        def do_GET(self) -> None:
            self.forward(body=True)

        def forward(self, *, body: bool) -> None:
            faults.seen.append(self.path)
            is_blob = body and "/blobs/sha256:" in self.path
            if not is_blob:
                self.relay(body=body, fault="none")
                return
            faults.ranges.append(self.headers.get("Range", ""))
            repo = self.path.split("/blobs/")[0]
            with faults.lock:
                faults.in_flight += 1
                faults.max_in_flight = max(faults.max_in_flight, faults.in_flight)
                faults.repos_in_flight.append(repo)
                faults.max_repos_in_flight = max(faults.max_repos_in_flight, len(set(faults.repos_in_flight)))
            try:
                self.relay(body=body, fault=self.next_fault())
            finally:
                with faults.lock:
                    faults.in_flight -= 1
                    faults.repos_in_flight.remove(repo)

        def next_fault(self) -> str:
            with faults.lock:
                if faults.count <= 0:
                    return "none"
                faults.count -= 1
                return faults.mode

        def relay(self, *, body: bool, fault: str) -> None:
            if fault == "status":
                self.send_response(faults.status)
                for k, v in faults.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            conn = http.client.HTTPConnection(upstream, timeout=10)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            conn.request(self.command, self.path, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
            if fault in ("corrupt", "reset-corrupt"):
                data = data[: len(data) // 4] + bytes([data[len(data) // 4] ^ 0xFF]) + data[len(data) // 4 + 1 :]
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("connection", "transfer-encoding"):
                    self.send_header(k, v)
            self.end_headers()
            if not body:
                return
            if fault in ("reset", "reset-corrupt"):
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if faults.delay and "/blobs/" in self.path:
                for i in range(0, len(data), 64 << 10):
                    self.wfile.write(data[i : i + (64 << 10)])
                    self.wfile.flush()
                    time.sleep(faults.delay)
                return
            self.wfile.write(data)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def proxied(registry: Registry, tmp_path: Path) -> Iterator[tuple[Registry, Faults, str]]:
    src = single(tmp_path, size=3 << 20)
    push(src, "example/app:1", registry.ref("app:1"), options=NO_SLEEP)
    faults = Faults()
    server, host = start_proxy(registry.host, faults)
    try:
        yield Registry(host), faults, src.find("example/app:1").digest  # type: ignore[union-attr]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("mode", ["corrupt", "reset"])
def test_fault_without_retries_leaves_cache_valid_and_rerun_completes(
    proxied: tuple[Registry, Faults, str], tmp_path: Path, mode: str
) -> None:
    proxy, faults, digest = proxied
    faults.mode, faults.count = mode, 100
    cache = Cache(tmp_path / "dst")
    no_retry = replace(NO_SLEEP, retries=0)
    with pytest.raises(RegistryError, match=r"pulling 127\.0\.0\.1:\d+/app:1: blob sha256:") as err:
        pull(cache, proxy.ref("app:1"), options=no_retry)
    assert err.value.hint is not None and "pull again" in err.value.hint
    assert cache.find(proxy.ref("app:1")) is None
    assert_cache_sound(cache)
    assert not list((cache.layout.blobs_dir).glob(".tmp-*"))
    faults.count = 0
    assert pull(cache, proxy.ref("app:1"), options=no_retry).digest == digest
    image = cache.resolve(proxy.ref("app:1"), AMD64)
    assert image is not None
    image.verify()
    assert_cache_sound(cache)


@pytest.mark.parametrize("mode", ["corrupt", "reset"])
def test_single_fault_is_retried(proxied: tuple[Registry, Faults, str], tmp_path: Path, mode: str) -> None:
    proxy, faults, digest = proxied
    faults.mode, faults.count = mode, 1
    cache = Cache(tmp_path / "dst")
    assert pull(cache, proxy.ref("app:1"), options=NO_SLEEP).digest == digest
    assert faults.count == 0
    assert_cache_sound(cache)


def test_500_then_429_with_retry_after(proxied: tuple[Registry, Faults, str], tmp_path: Path) -> None:
    proxy, faults, digest = proxied
    slept: list[float] = []
    opts = replace(NO_SLEEP, sleep=slept.append, backoff=0.25)
    faults.mode, faults.count, faults.status = "status", 1, 500
    cache = Cache(tmp_path / "a")
    assert pull(cache, proxy.ref("app:1"), options=opts).digest == digest
    assert slept == [0.25]
    slept.clear()
    faults.count, faults.status, faults.headers = 2, 429, {"Retry-After": "7"}
    cache = Cache(tmp_path / "b")
    assert pull(cache, proxy.ref("app:1"), options=opts).digest == digest
    assert slept == [7.0, 7.0]
    slept.clear()
    faults.count, faults.status, faults.headers = 10, 503, {}
    with pytest.raises(RegistryError, match="HTTP 503"):
        pull(Cache(tmp_path / "c"), proxy.ref("app:1"), options=replace(opts, retries=2, parallel=1))
    assert slept == [0.25, 0.5]
