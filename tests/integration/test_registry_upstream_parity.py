"""The indexes ``pkg manifest`` and ``cache push --override`` leave in a registry are byte-identical to the
ones upstream's binary leaves from the same registry content (a real ``docker-registry``).

Upstream's binary is looked up at ``$LINUXKIT_UPSTREAM`` or /work/upstream/bin/linuxkit."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from tests.conftest import RunLinuxkit
from tests.imagefactory import ImageSpec, write_layout_tar
from tests.integration.test_cache_published import app
from tests.integration.test_pkg_multiarch import Target, by_arch, raw, skopeo
from tests.integration.test_registry_client import Registry, registry

from linuxkit.oci.cache import Cache

UPSTREAM = os.environ.get("LINUXKIT_UPSTREAM", "/work/upstream/bin/linuxkit")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.access(UPSTREAM, os.X_OK), reason=f"upstream linuxkit binary not found at {UPSTREAM}"),
]
__all__ = ["registry"]  # a fixture


def upstream(tmp_path: Path, *args: str | Path) -> str:
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "no-docker-config"), "HOME": str(tmp_path)}
    proc = subprocess.run([UPSTREAM, *map(str, args)], capture_output=True, env=env, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stderr.decode() + proc.stdout.decode()


def load(linuxkit: RunLinuxkit, tmp_path: Path, cache: str, specs: list[ImageSpec]) -> Path:
    tar = tmp_path / f"{cache}.tar"
    write_layout_tar(tar, specs, multiarch=True)
    linuxkit("--cache", tmp_path / cache, "cache", "import", tar)
    return tmp_path / cache


def digest(target: Target, ref: str) -> str:
    data = skopeo(target, "--raw", f"docker://{ref}")
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_pkg_manifest_makes_upstreams_index(linuxkit: RunLinuxkit, tmp_path: Path, registry: Registry) -> None:
    target = Target(registry.host)
    repo = f"{registry.host}/parity/tiny"
    images = load(linuxkit, tmp_path, "images", [app(repo + ":x", "a\n", "amd64"), app(repo + ":x", "b\n", "arm64")])
    cache = Cache(images)
    root = cache.find(repo + ":x")
    assert root is not None
    children = by_arch(json.loads(cache.layout.read_blob(root.digest)))
    linuxkit("--cache", images, "cache", "push", "--with-arch-tags", "--remote-name", f"{repo}:src", f"{repo}:x")
    for tag in ("mine", "theirs"):  # the TAG-<arch> images alone, no index under TAG yet
        for arch in ("amd64", "arm64"):
            linuxkit("pkg", "remote-tag", f"{repo}:src-{arch}", f"{repo}:{tag}-{arch}")
    pkg = tmp_path / "pkg" / "tiny"  # a package directory both read (upstream knows no debian: section)
    pkg.mkdir(parents=True)
    (pkg / "build.yml").write_text(f"image: tiny\norg: {registry.host}/parity\n")
    upstream(tmp_path, "pkg", "manifest", "--tag", "theirs", pkg)
    linuxkit("pkg", "manifest", "--tag", "mine", pkg)
    assert by_arch(raw(target, f"{repo}:mine")) == children
    assert digest(target, f"{repo}:mine") == digest(target, f"{repo}:theirs")


def test_cache_push_override_merges_like_upstream(linuxkit: RunLinuxkit, tmp_path: Path, registry: Registry) -> None:
    target = Target(registry.host)
    repo = f"{registry.host}/parity/multi"
    both = load(linuxkit, tmp_path, "both", [app(repo + ":1", "a1\n", "amd64"), app(repo + ":1", "b\n", "arm64")])
    amd = load(linuxkit, tmp_path, "amd", [app(repo + ":1", "a2\n", "amd64")])
    for tag in ("ours", "theirs"):
        linuxkit("--cache", both, "cache", "push", "--remote-name", f"{repo}:{tag}", f"{repo}:1")
    before = by_arch(raw(target, f"{repo}:ours"))
    upstream(tmp_path, "--cache", amd, "cache", "push", "--override", "--remote-name", f"{repo}:theirs", f"{repo}:1")
    linuxkit("--cache", amd, "cache", "push", "--override", "--remote-name", f"{repo}:ours", f"{repo}:1")
    after = by_arch(raw(target, f"{repo}:ours"))
    assert after["arm64"] == before["arm64"] and after["amd64"] != before["amd64"]
    assert digest(target, f"{repo}:ours") == digest(target, f"{repo}:theirs")
    # and without --override both leave the registry's image alone
    other = load(linuxkit, tmp_path, "other", [app(repo + ":1", "a3\n", "amd64")])
    kept = digest(target, f"{repo}:ours")
    assert "already exists in the registry, skipping" in upstream(
        tmp_path, "--cache", other, "cache", "push", "--remote-name", f"{repo}:theirs", f"{repo}:1"
    )
    linuxkit("--cache", other, "cache", "push", "--remote-name", f"{repo}:ours", f"{repo}:1")
    assert digest(target, f"{repo}:ours") == kept == digest(target, f"{repo}:theirs")
