"""`linuxkit build --arch` of a system whose `@pkg:` package does not list that architecture: a user
error before anything is locked or built (pkg/kernel-cloud is amd64 only; arm64 once locked and then failed
on x86-only modules)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import RunLinuxkit
from tests.integration.test_pkg_build import make_repo, shared_debian_cache

pytestmark = [pytest.mark.integration]


def test_build_for_an_arch_the_package_lacks_is_a_user_error(linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    pkg = make_repo(tmp_path / "c")  # arches: [amd64]
    (tmp_path / "c" / "system.yml").write_text('init:\n  - "@pkg:pkg/tiny"\n')
    debs = {"LINUXKIT_DEBIAN_CACHE": str(shared_debian_cache())}
    proc = linuxkit(
        "build",
        "--arch",
        "arm64",
        "-f",
        "tar",
        "--o",
        tmp_path / "arm.tar",
        tmp_path / "c" / "system.yml",
        env=debs,
        check=False,
    )
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "is built for amd64 only" in err and "not arm64" in err, err
    assert "Traceback" not in err
    assert not (pkg / "debian.lock").exists()  # nothing resolved for arm64
    assert not (tmp_path / "arm.tar").exists()
    # the package's own architecture still builds
    linuxkit("build", "-f", "tar", "--o", tmp_path / "amd.tar", tmp_path / "c" / "system.yml", env=debs)
    assert (tmp_path / "amd.tar").stat().st_size > 0
