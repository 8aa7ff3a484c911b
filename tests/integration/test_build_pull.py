"""``linuxkit build`` pulls what the cache lacks; ``cache push``/``cache pull`` through the CLI,
against a real ``docker-registry`` on loopback."""

from __future__ import annotations

import tarfile
from pathlib import Path

from tests.conftest import RunLinuxkit
from tests.imagefactory import ImageSpec, directory, file, write_layout_tar
from tests.integration.test_registry_client import Registry, registry  # noqa: F401 - fixture


def test_cache_push_then_build_pulls_into_empty_cache(
    registry: Registry,  # noqa: F811
    linuxkit: RunLinuxkit,
    tmp_path: Path,
) -> None:
    name = f"{registry.host}/demo/hello:1"
    write_layout_tar(
        tmp_path / "img.tar",
        [ImageSpec(name, [[directory("bin"), file("bin/hello", "#!/bin/sh\necho hi\n", 0o755)]], cmd=["/bin/hello"])],
    )
    first = {"LINUXKIT_CACHE": str(tmp_path / "first")}
    linuxkit("cache", "import", "img.tar", env=first)
    linuxkit("cache", "push", name, env=first)

    (tmp_path / "s.yml").write_text(f"onboot:\n  - name: hello\n    image: {name}\n")
    fresh = {"LINUXKIT_CACHE": str(tmp_path / "fresh")}
    proc = linuxkit("build", "--format", "tar", "--no-sbom", "--dir", "out", "s.yml", env=fresh)
    assert f"Pulling {name}" in proc.stderr.decode()
    with tarfile.open(tmp_path / "out" / "s.tar") as tar:
        assert "containers/onboot/000-hello/lower/bin/hello" in tar.getnames()
    listed = linuxkit("cache", "ls", env=fresh).stderr.decode()
    assert name in listed

    # the same digest in both caches, and `cache pull` of an image already there is a no-op success
    first_ls = linuxkit("cache", "ls", env=first).stderr.decode()
    digest = next(line.split()[-1] for line in first_ls.splitlines() if line.startswith(name))
    assert digest in listed
    linuxkit("cache", "pull", name, env=fresh)


def test_build_pull_of_unknown_image_is_located(
    registry: Registry,  # noqa: F811
    linuxkit: RunLinuxkit,
    tmp_path: Path,
) -> None:
    (tmp_path / "s.yml").write_text(f"services:\n  - name: x\n    image: {registry.host}/nope/nothing:1\n")
    proc = linuxkit("build", "--format", "tar", "--dir", "out", "s.yml", check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1
    assert "s.yml:3:12: services[0].image: image " in err
    assert "could not be pulled" in err
    assert not (tmp_path / "out").exists()
