"""``linuxkit pkg verify``: pkg/busybox rebuilt from its lock matches what ``pkg build`` put in the cache,
and another image under its name is reported layer by layer (exit 1); a package pushed to a real
``docker-registry`` verifies against the registry (``--registry``) from an empty cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import ROOT, RunLinuxkit
from tests.imagefactory import ImageSpec, directory, file, write_layout_tar
from tests.integration.test_pkg_build import lock_text, make_repo  # noqa: F401 - fixture
from tests.integration.test_pkg_push import debs, host  # noqa: F401 - fixture

pytestmark = [pytest.mark.integration]

BUSYBOX = ROOT / "pkg" / "busybox"


def test_busybox_rebuild_matches_the_cache_and_another_image_does_not(linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    name = linuxkit("pkg", "show-tag", "--canonical", BUSYBOX).stdout.decode().strip()
    linuxkit("pkg", "build", BUSYBOX, env=debs())
    proc = linuxkit("pkg", "verify", BUSYBOX, env=debs())
    out = proc.stdout.decode()
    assert f"{name} (the cache " in out
    assert "linux/amd64: match sha256:" in out and "linux/arm64: match sha256:" in out
    assert "index: match sha256:" in out and "differs" not in out

    # another image under the package's name (one platform): its layer and config are named, exit 1
    spec = ImageSpec(name, [[directory("bin"), file("bin/busybox", "not busybox\n", 0o755)]])
    write_layout_tar(tmp_path / "other.tar", [spec])
    linuxkit("cache", "import", "other.tar")
    bad = linuxkit("pkg", "verify", BUSYBOX, env=debs(), check=False)
    out = bad.stdout.decode()
    assert bad.returncode == 1, bad.stderr
    assert "linux/amd64: differs: rebuilt sha256:" in out and "arm64" not in out  # only what was published
    assert "  config: rebuilt sha256:" in out and "  layer 0: rebuilt sha256:" in out
    assert "index: differs" in out
    assert f"the rebuild differs from what was published: {name}" in bad.stderr.decode()


def test_pushed_package_verifies_against_its_registry(
    linuxkit: RunLinuxkit,
    tmp_path: Path,
    host: str,  # noqa: F811
    lock_text: str,  # noqa: F811
) -> None:
    repo = make_repo(tmp_path / "src", lock=lock_text)
    org = f"{host}/test"
    missing = linuxkit("--cache", "empty", "pkg", "verify", "--org", org, "--registry", repo, env=debs(), check=False)
    assert missing.returncode == 2 and b"is not in its registry" in missing.stderr
    linuxkit("--cache", "built", "pkg", "build", "--org", org, "--push", repo, env=debs())
    proc = linuxkit("--cache", "empty", "pkg", "verify", "--org", org, "--registry", repo, env=debs())
    out = proc.stdout.decode()
    assert "(its registry):" in out and "linux/amd64: match" in out and "index: match" in out
