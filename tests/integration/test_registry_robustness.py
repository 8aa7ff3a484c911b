"""Resumed downloads, killed pulls, partial multi-platform pulls, parallel fetches, ``cache verify``
and ``--with-arch-tags``, against Debian's ``docker-registry`` (see test_registry_client.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from test_registry_client import (
    AMD64,
    ARM64,
    NO_SLEEP,
    Faults,
    Registry,
    assert_cache_sound,
    make_cache,
    registry,  # noqa: F401 - the fixture
    single,
    start_proxy,
)
from tests import imagefactory as f
from tests import plainhttp

from linuxkit.oci.cache import Cache
from linuxkit.oci.registry import RegistryError, pull, push
from linuxkit.oci.verify import repair, verify_names

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def proxy(registry: Registry) -> Iterator[tuple[Registry, Faults]]:  # noqa: F811
    faults = Faults()
    server, host = start_proxy(registry.host, faults)
    try:
        yield Registry(host), faults
    finally:
        server.shutdown()
        server.server_close()


def big_image(tmp_path: Path, registry: Registry, size: int = 3 << 20) -> tuple[Cache, str]:  # noqa: F811
    src = single(tmp_path, size=size)
    return src, push(src, "example/app:1", registry.ref("app:1"), options=NO_SLEEP).digest


def range_starts(faults: Faults) -> list[int]:
    return [int(r.removeprefix("bytes=").rstrip("-")) for r in faults.ranges if r]


def test_cut_blob_is_resumed_with_range(registry: Registry, proxy: tuple[Registry, Faults], tmp_path: Path) -> None:  # noqa: F811
    _src, digest = big_image(tmp_path, registry)
    via, faults = proxy
    faults.mode, faults.count = "reset", 1
    cache = Cache(tmp_path / "dst")
    assert pull(cache, via.ref("app:1"), options=replace(NO_SLEEP, parallel=1)).digest == digest
    starts = range_starts(faults)
    assert len(starts) == 1 and starts[0] > 0  # the retry asked for the rest only
    image = cache.resolve(via.ref("app:1"), AMD64)
    assert image is not None
    image.verify()
    assert_cache_sound(cache)


def test_resumed_blob_is_verified_whole(registry: Registry, proxy: tuple[Registry, Faults], tmp_path: Path) -> None:  # noqa: F811
    """A byte spoiled before the cut is caught once the rest arrives: the blob starts again."""
    _src, digest = big_image(tmp_path, registry)
    via, faults = proxy
    faults.mode, faults.count = "reset-corrupt", 1
    cache = Cache(tmp_path / "dst")
    assert pull(cache, via.ref("app:1"), options=replace(NO_SLEEP, parallel=1)).digest == digest
    # first GET cut (spoiled), second resumed with Range, digest wrong, third GET whole again
    assert len(range_starts(faults)) == 1
    assert faults.ranges[-1] == ""
    assert len(faults.ranges) == 3 + 2  # + config and small layer
    assert_cache_sound(cache)
    image = cache.resolve(via.ref("app:1"), AMD64)
    assert image is not None
    image.verify()


def test_layers_are_fetched_in_parallel(registry: Registry, proxy: tuple[Registry, Faults], tmp_path: Path) -> None:  # noqa: F811
    spec = f.ImageSpec(
        "docker.io/example/wide:1", [[f.Entry(f"f{i}", size=256 << 10)] for i in range(6)], cmd=["/bin/sh"]
    )
    src = make_cache(tmp_path / "src", [spec])
    digest = push(src, "example/wide:1", registry.ref("wide:1"), options=NO_SLEEP).digest
    via, faults = proxy
    faults.delay = 0.05
    got = pull(Cache(tmp_path / "dst"), via.ref("wide:1"), options=replace(NO_SLEEP, parallel=3))
    assert got.digest == digest
    assert faults.max_in_flight == 3
    # the proxy may still be finishing the last response of that pull: wait before counting again
    deadline = time.monotonic() + 5
    while faults.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    faults.max_in_flight = 0
    pull(Cache(tmp_path / "dst1"), via.ref("wide:1"), options=replace(NO_SLEEP, parallel=1))
    assert faults.max_in_flight == 1


@pytest.mark.slow
def _size(path: Path) -> int:
    """A temporary blob's size, 0 once the writer renamed it (a small blob finishes between glob and stat)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def test_killed_pull_leaves_cache_valid_and_next_run_completes(
    registry: Registry,  # noqa: F811
    proxy: tuple[Registry, Faults],
    tmp_path: Path,
) -> None:
    _src, digest = big_image(tmp_path, registry, size=4 << 20)
    via, faults = proxy
    faults.delay = 0.05  # ~1.3 MB/s: the big layer takes seconds
    cache_dir = tmp_path / "cache"
    env = {**os.environ, "LINUXKIT_CACHE": str(cache_dir), "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "linuxkit.cli.main", "cache", "pull", via.ref("app:1")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    blobs = cache_dir / "blobs" / "sha256"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until the big blob is half-way through
        if blobs.is_dir() and any(_size(p) > (1 << 20) for p in blobs.glob(".tmp-*")):
            break
        time.sleep(0.02)
    else:
        proc.kill()
        pytest.fail("the pull did not start writing the big blob")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    cache = Cache(cache_dir)
    assert cache.find(via.ref("app:1")) is None  # no name points at incomplete content
    assert_cache_sound(cache)
    faults.delay = 0
    rerun = subprocess.run(cmd, env=env, capture_output=True, check=False)
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert cache.find(via.ref("app:1")) is not None and cache.find(via.ref("app:1")).digest == digest  # type: ignore[union-attr]
    image = cache.resolve(via.ref("app:1"), AMD64)
    assert image is not None
    image.verify()
    assert all(r.ok for r in verify_names(cache))


def multiarch(tmp_path: Path, registry: Registry) -> tuple[Cache, str]:  # noqa: F811
    specs = [
        f.ImageSpec("docker.io/example/multi:2", [[f.file("arch", "amd64")]], arch="amd64"),
        f.ImageSpec("docker.io/example/multi:2", [[f.file("arch", "arm64")]], arch="arm64"),
    ]
    src = make_cache(tmp_path / "src", specs, multiarch=True)
    return src, push(src, "example/multi:2", registry.ref("multi:2"), options=NO_SLEEP).digest


def test_other_platform_is_missing_not_damaged(registry: Registry, tmp_path: Path) -> None:  # noqa: F811
    _src, digest = multiarch(tmp_path, registry)
    cache = Cache(tmp_path / "dst")
    ref = registry.ref("multi:2")
    pull(cache, ref, [ARM64], options=NO_SLEEP)
    assert cache.resolve(ref, AMD64) is None  # was: "image ... in the cache is damaged"
    report = verify_names(cache)[0]
    assert report.ok and report.not_pulled == ["linux/amd64"] and report.platforms == [ARM64]
    assert pull(cache, ref, [AMD64], options=NO_SLEEP).digest == digest
    for plat in (AMD64, ARM64):
        image = cache.resolve(ref, plat)
        assert image is not None
        image.verify()
    assert verify_names(cache)[0].not_pulled == []


def test_verify_finds_and_repairs(registry: Registry, tmp_path: Path, linuxkit: object) -> None:  # noqa: F811
    _src, digest = big_image(tmp_path, registry)
    cache_dir = tmp_path / "cache"  # the linuxkit fixture's cache
    cache = Cache(cache_dir)
    ref = registry.ref("app:1")
    pull(cache, ref, options=NO_SLEEP)
    image = cache.resolve(ref, AMD64)
    assert image is not None
    big, small = image.layers[1], image.layers[0]
    path = cache.layout.blob_path(big.digest)
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    path.write_bytes(bytes(data))
    cache.layout.remove_blob(small.digest)
    # also a local image that no registry has
    make_cache(tmp_path / "local", [f.ImageSpec("127.0.0.1:9/local/only:1", [[f.file("a", "b")]])])
    local = Cache(tmp_path / "local")
    report = verify_names(cache)[0]
    assert sorted((p.kind, p.digest) for p in report.problems) == sorted(
        [("corrupt", big.digest), ("missing", small.digest)]
    )
    run = linuxkit
    checked = run("cache", "check", check=False)  # type: ignore[operator]
    assert checked.returncode == 1
    err = checked.stderr.decode()
    assert f"corrupt layer 1 of manifest {image.digest[7:19]} {big.digest}" in err
    assert f"missing layer 0 of manifest {image.digest[7:19]} {small.digest}" in err
    assert "cache verify --repair" in err
    repaired = run("cache", "verify", "--repair", check=False)  # type: ignore[operator]
    assert repaired.returncode == 0, repaired.stderr.decode()
    assert f"repaired {ref}" in repaired.stderr.decode()
    assert cache.find(ref).digest == digest  # type: ignore[union-attr]
    assert all(r.ok for r in verify_names(cache))
    assert_cache_sound(cache)
    # a broken image that cannot be pulled again is removed, with the reason
    local_image = local.resolve("127.0.0.1:9/local/only:1", AMD64)
    assert local_image is not None
    local.layout.remove_blob(local_image.layers[0].digest)
    (bad,) = verify_names(local)

    def unreachable(ref: str, name: str, platforms: object) -> None:
        pull(local, ref, None, options=replace(NO_SLEEP, retries=0), name=name)

    result = repair(local, bad, unreachable)
    assert not result.repaired and "removed 127.0.0.1:9/local/only:1" in result.message
    assert "cannot reach registry 127.0.0.1:9" in result.message
    assert local.find("127.0.0.1:9/local/only:1") is None


def test_push_with_arch_tags(registry: Registry, tmp_path: Path) -> None:  # noqa: F811
    src, _digest = multiarch(tmp_path, registry)
    push(src, "example/multi:2", registry.ref("tagged:3"), options=NO_SLEEP, with_arch_tags=True)
    for plat in (AMD64, ARM64):
        image = src.resolve("example/multi:2", plat)
        assert image is not None
        status, headers, _ = plainhttp.request(
            "HEAD",
            f"http://{registry.host}/v2/tagged/manifests/3-{plat.architecture}",
            headers={"Accept": image.descriptor.media_type},
        )
        assert status == 200 and headers["Docker-Content-Digest"] == image.digest
    assert plainhttp.request("HEAD", f"http://{registry.host}/v2/multi/manifests/2-amd64")[0] == 404
    with pytest.raises(RegistryError, match="not in the cache"):
        push(Cache(tmp_path / "none"), "example/multi:2", registry.ref("x:1"), options=NO_SLEEP, with_arch_tags=True)


@pytest.mark.slow
def test_build_pulls_missing_images_in_parallel(
    registry: Registry,  # noqa: F811
    proxy: tuple[Registry, Faults],
    tmp_path: Path,
    linuxkit: object,
) -> None:
    via, faults = proxy
    names = [f"{via.host}/demo/app{i}:1" for i in range(3)]
    for i in range(len(names)):
        spec = f.ImageSpec(f"docker.io/demo/app{i}:1", [[f.file(f"etc/app{i}", f"{i}\n")]], cmd=["/bin/sh"])
        src = make_cache(tmp_path / f"src{i}", [spec])
        push(src, f"demo/app{i}:1", registry.ref(f"demo/app{i}:1"), options=NO_SLEEP)
    services = "".join(f"  - name: app{i}\n    image: {name}\n" for i, name in enumerate(names))
    (tmp_path / "s.yml").write_text("services:\n" + services)
    faults.delay = 0.3  # every blob GET takes at least this long
    run = linuxkit
    proc = run("build", "--format", "tar", "--no-sbom", "--dir", "out", "s.yml")  # type: ignore[operator]
    err = proc.stderr.decode()
    assert "Pulling 3 images" in err and all(f"Pulling {n}" in err for n in names)
    assert faults.max_repos_in_flight >= 2  # blobs of different images were fetched at the same time
    assert (tmp_path / "out" / "s.tar").is_file()
