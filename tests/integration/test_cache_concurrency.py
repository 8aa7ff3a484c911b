"""The cache under real concurrent processes and crashes."""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import pytest

from linuxkit.oci.cache import Cache
from linuxkit.oci.image import Platform
from linuxkit.oci.writer import write_image

pytestmark = pytest.mark.integration
AMD64 = Platform("linux", "amd64")


def make_tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _writer(root: str, who: str, count: int) -> None:
    cache = Cache(root)
    for i in range(count):
        layer = make_tar(f"{who}-{i}", os.urandom(4096))
        config = {"architecture": "amd64", "os": "linux", "config": {}}
        write_image(cache, f"test/{who}:{i}", config, [io.BytesIO(layer)])
        write_image(cache, "test/common:1", config, [io.BytesIO(layer)])


def test_two_processes_writing_both_land(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    count = 15
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), who, count)) for who in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    cache = Cache(tmp_path)
    names = set(cache.images())
    expected = {f"docker.io/test/{who}:{i}" for who in ("a", "b") for i in range(count)} | {"docker.io/test/common:1"}
    assert names == expected
    assert len(cache.entries()) == len(expected)  # no duplicate entries for the shared name
    for name in expected:
        image = cache.resolve(name, AMD64)
        assert image is not None
        image.verify()


CRASH_WRITER = textwrap.dedent(
    """
    import io, os, sys, tarfile
    from linuxkit.oci.cache import Cache
    from linuxkit.oci.writer import write_image

    cache = Cache(sys.argv[1])
    i = 0
    while True:
        data = os.urandom(3 << 20)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(f"f{i}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        buf.seek(0)
        write_image(cache, f"crash/img:{i}", {"architecture": "amd64", "os": "linux"}, [buf])
        print(i, flush=True)
        i += 1
    """
)


def _assert_valid(root: Path) -> None:
    index = json.loads((root / "index.json").read_bytes())
    assert index["schemaVersion"] == 2
    blobs = root / "blobs" / "sha256"
    for path in blobs.iterdir():
        if path.name.startswith(".tmp-"):
            continue
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, f"bad blob {path.name}"
    cache = Cache(root)
    for name in cache.images():
        image = cache.resolve(name, AMD64)
        assert image is not None
        image.verify()


@pytest.mark.slow
def test_sigkill_mid_write_leaves_valid_cache(tmp_path: Path) -> None:
    for delay in (0.05, 0.3, 0.7, 1.1):
        proc = subprocess.Popen(
            [sys.executable, "-c", CRASH_WRITER, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert proc.stdout is not None
        proc.stdout.readline()  # at least one image written
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        _assert_valid(tmp_path)
    assert len(Cache(tmp_path).images()) >= 4
    # the kills did land in the middle of blob writes (their temporary files are left behind)
    assert any(p.name.startswith(".tmp-") for p in (tmp_path / "blobs" / "sha256").iterdir())
