"""``linuxkit pkg build --push`` against a real ``docker-registry``, with a package built from the
Debian archive: what is pushed pulls back identical, releases are pushed, dirty packages are not."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests import plainhttp
from tests.conftest import RunLinuxkit
from tests.integration.test_pkg_build import GIT_ENV, lock_text, make_repo, manifest_digest, shared_debian_cache
from tests.integration.test_registry_client import serve_registry

pytestmark = pytest.mark.integration

__all__ = ["lock_text"]  # a fixture, shared with test_pkg_build


@pytest.fixture
def host(tmp_path: Path) -> Iterator[str]:
    """``127.0.0.1:PORT`` of a throwaway registry."""
    reg = tmp_path / "registry"
    reg.mkdir()
    with serve_registry(reg) as address:
        yield address


def debs() -> dict[str, str]:
    return {"LINUXKIT_DEBIAN_CACHE": str(shared_debian_cache())}


def tags(host: str, repository: str) -> list[str]:
    status, _, body = plainhttp.request("GET", f"http://{host}/v2/{repository}/tags/list", timeout=10)
    if status == 404:
        return []
    assert status == 200, body
    return sorted(json.loads(body).get("tags") or [])


def test_push_pulls_back_identical_with_arch_tags_and_releases(
    linuxkit: RunLinuxkit, tmp_path: Path, host: str, lock_text: str
) -> None:
    repo = make_repo(tmp_path / "src", lock=lock_text)
    org = f"{host}/test"  # upstream: an org may start with a registry host; the image goes there
    built = tmp_path / "built"
    proc = linuxkit("--cache", built, "pkg", "build", "--org", org, "--push", repo, env=debs())
    name = linuxkit("pkg", "show-tag", "--org", org, "--canonical", repo).stdout.decode().strip()
    tag = name.rsplit(":", 1)[1]
    assert name == f"{host}/test/tiny:{tag}" and "dirty" not in tag
    assert f"Pushed {name} sha256:".encode() in proc.stderr
    assert tags(host, "test/tiny") == [tag, f"{tag}-amd64"]

    pulled = tmp_path / "pulled"
    linuxkit("--cache", pulled, "cache", "pull", name)
    assert manifest_digest(linuxkit, pulled, name) == manifest_digest(linuxkit, built, name)
    linuxkit("--cache", pulled, "cache", "pull", f"{name}-amd64")
    assert manifest_digest(linuxkit, pulled, f"{name}-amd64") == manifest_digest(linuxkit, built, f"{name}-amd64")

    # --release with nothing left to build: the cached image is released and pushed under the release
    again = linuxkit("--cache", built, "pkg", "build", "--org", org, "--push", "--release", "v1.0", repo, env=debs())
    assert b"already in the cache" in again.stderr
    assert tags(host, "test/tiny") == sorted([tag, f"{tag}-amd64", "v1.0", "v1.0-amd64"])
    release = f"{host}/test/tiny:v1.0"
    linuxkit("--cache", pulled, "cache", "pull", release)
    assert manifest_digest(linuxkit, pulled, release) == manifest_digest(linuxkit, built, name)

    # without --release, a git tag on HEAD is the release (as upstream)
    subprocess.run(["git", "-C", str(repo), "tag", "v2.0"], check=True, env={**os.environ, **GIT_ENV})
    linuxkit("--cache", built, "pkg", "build", "--org", org, "--push", repo, env=debs())
    assert "v2.0" in tags(host, "test/tiny") and "v2.0-amd64" in tags(host, "test/tiny")


def test_dirty_package_is_refused_before_building(
    linuxkit: RunLinuxkit, tmp_path: Path, host: str, lock_text: str
) -> None:
    repo = make_repo(tmp_path / "src", lock=lock_text)
    (repo / "files" / "new.txt").write_text("not committed\n")
    cache = tmp_path / "cache-dirty"
    proc = linuxkit("--cache", cache, "pkg", "build", "--org", f"{host}/test", "--push", repo, env=debs(), check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "cannot push a dirty package" in err and "-dirty-" in err and "hint:" in err
    assert tags(host, "test/tiny") == []
    assert "tiny" not in linuxkit("--cache", cache, "cache", "ls").stderr.decode()  # nothing was built


def test_package_made_dirty_by_its_new_lock_is_built_but_not_pushed(
    linuxkit: RunLinuxkit, tmp_path: Path, host: str
) -> None:
    repo = make_repo(tmp_path / "src")  # no debian.lock committed: the build writes one
    cache = tmp_path / "cache-lock"
    proc = linuxkit("--cache", cache, "pkg", "build", "--org", f"{host}/test", "--push", repo, env=debs(), check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "Built " in err and "cannot push a dirty package" in err
    assert (repo / "debian.lock").is_file()
    assert tags(host, "test/tiny") == []
