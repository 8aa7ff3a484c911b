"""A Dockerfile package for arm64 built on an amd64 host with buildah: without RUN steps it needs no
emulation (the arm64 base from our cache, a COPY on top); with RUN steps and no qemu-user binfmt handler
it is a user error naming the Debian packages to install."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from tests.conftest import RunLinuxkit
from tests.integration.test_pkg_build import BUILD_YML, GIT_ENV, make_repo, shared_debian_cache

from linuxkit.arch import host_arch
from linuxkit.packages.dockerfile import emulator_registered

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _app(root: Path, base: str, dockerfile_tail: str) -> Path:
    app = root / "pkg" / "app"
    app.mkdir()
    (app / "build.yml").write_text("image: app\norg: test\narches: [arm64]\n")
    (app / "greeting").write_text("hi from an arm64 Dockerfile package\n")
    (app / "Dockerfile").write_text(f"FROM {base}\nCOPY greeting /etc/greeting\n{dockerfile_tail}")
    env = {**os.environ, **GIT_ENV}
    subprocess.run(["git", "-C", str(root), "add", "."], check=True, env=env)
    subprocess.run(["git", "-C", str(root), "commit", "-qm", "app"], check=True, env=env)
    return app


@pytest.mark.skipif(shutil.which("buildah") is None, reason="buildah is not installed")
@pytest.mark.skipif(host_arch() == "arm64", reason="needs a host of another architecture")
def test_arm64_dockerfile_package_without_run_needs_no_emulation(linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    base_pkg = make_repo(root, BUILD_YML.replace("arches: [amd64]", "arches: [arm64]"))
    debs = {"LINUXKIT_DEBIAN_CACHE": str(shared_debian_cache())}
    linuxkit("pkg", "build", "--platforms", "linux/arm64", base_pkg, env=debs)
    base = linuxkit("pkg", "show-tag", base_pkg).stdout.decode().strip()
    app = _app(root, base, 'ENTRYPOINT ["/bin/busybox", "cat", "/etc/greeting"]\n')
    linuxkit("pkg", "build", "--platforms", "linux/arm64", app)
    name = linuxkit("pkg", "show-tag", "--canonical", app).stdout.decode().strip()
    out = tmp_path / "app.tar"
    linuxkit("cache", "export", "--platform", "linux/arm64", "--format", "filesystem", "--outfile", out, name)
    with tarfile.open(out) as tf:
        greeting = tf.extractfile("etc/greeting")
        assert greeting is not None and greeting.read() == b"hi from an arm64 Dockerfile package\n"
        busybox = tf.extractfile("bin/busybox")
        assert busybox is not None
        header = busybox.read(20)
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 183  # EM_AARCH64


@pytest.mark.skipif(host_arch() == "arm64", reason="needs a host of another architecture")
@pytest.mark.skipif(emulator_registered("arm64"), reason="this host runs arm64 programs through qemu-user")
def test_arm64_dockerfile_package_with_run_and_no_emulator_is_a_user_error(
    linuxkit: RunLinuxkit, tmp_path: Path
) -> None:
    root = tmp_path / "repo"
    make_repo(root)
    app = _app(root, "test/tiny:whatever", 'RUN ["/bin/busybox", "true"]\n')
    proc = linuxkit("pkg", "build", "--platforms", "linux/arm64", app, check=False)
    assert proc.returncode == 2, proc.stderr.decode()
    err = proc.stderr.decode()
    assert "has RUN steps" in err and "qemu-user-static binfmt-support" in err, err
    assert "Traceback" not in err
