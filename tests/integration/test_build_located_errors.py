"""The command line on inputs found wrong late or elsewhere: a package's ``build.yml``, sources a
dry run does not read, alias bombs, and problems only seen once the images are read; each located
at FILE:LINE:COL with the exit code of its kind and no traceback."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from tests.conftest import RunLinuxkit

# upstream's pkg/kmsg/build.yml: an unquoted integer mode
KMSG_BUILD_YML = (Path(__file__).parent.parent / "data" / "upstream-kmsg-build.yml").read_text()


def git_repo(root: Path, packages: dict[str, str]) -> None:
    """A git repository with one package directory (build.yml + Dockerfile) per entry."""
    for name, build_yml in packages.items():
        (root / "pkg" / name).mkdir(parents=True)
        (root / "pkg" / name / "build.yml").write_text(build_yml)
        (root / "pkg" / name / "Dockerfile").write_text("FROM scratch\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "pkgs"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, env=env, capture_output=True)


def check_user_error(proc: subprocess.CompletedProcess[bytes], *patterns: str) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    for pattern in patterns:
        assert re.search(pattern, err, re.M), (pattern, err)
    return err


def test_integer_device_mode_in_build_yml_is_kept_as_written(linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    git_repo(tmp_path, {"kmsg": KMSG_BUILD_YML})
    tag = linuxkit("pkg", "show-tag", "pkg/kmsg").stdout.decode().strip()
    assert re.fullmatch(r"linuxkit/kmsg:[0-9a-f]{40}", tag), tag
    (tmp_path / "sys.yml").write_text('onboot:\n  - name: kmsg\n    image: "@pkg:pkg/kmsg"\n')
    out = linuxkit("build", "--dry-run", "sys.yml").stdout.decode()
    assert f"image: docker.io/{tag}\n" in out


def test_build_yml_errors_point_into_build_yml(linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    git_repo(tmp_path, {"bad": "image: bad\nnetwrok: true\nconfig:\n  devices:\n    - path: /dev/x\n      mode: [1]\n"})
    proc = linuxkit("pkg", "show-tag", "pkg/bad", check=False)
    check_user_error(
        proc, r"^\S*pkg/bad/build\.yml:2:1: netwrok: unknown key", r"^\S*pkg/bad/build\.yml:6:13: config\."
    )
    (tmp_path / "sys.yml").write_text('onboot:\n  - name: bad\n    image: "@pkg:pkg/bad"\n')
    proc = linuxkit("build", "--dry-run", "sys.yml", check=False)
    check_user_error(
        proc,
        r"^\S*pkg/bad/build\.yml:2:1: netwrok: unknown key",
        r"^\S*pkg/bad/build\.yml:6:13: config\.devices\[0\]\.mode: must be a string, not a list",
        r"^sys\.yml:3:12: onboot\[0\]\.image: cannot resolve '@pkg:pkg/bad': the package has errors",
    )


def test_dry_run_warns_about_a_source_that_does_not_exist_yet(linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    (tmp_path / "f.yml").write_text("files:\n  - path: etc/motd\n    source: later/motd\n")
    proc = linuxkit("build", "--dry-run", "f.yml")
    assert "source: later/motd" in proc.stdout.decode()
    assert re.search(
        r"warning: f\.yml:3:13: files\[0\]\.source: source file not found: later/motd", proc.stderr.decode()
    )
    # a real build reads it: still a located user error
    check_user_error(
        linuxkit("build", "f.yml", check=False), r"^f\.yml:3:13: files\[0\]\.source: source file not found"
    )


def test_alias_bomb_is_located_at_the_alias(linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    words = ",".join(f"item-{i:04d}-padding" for i in range(200))
    lists = "".join(f"l{j}: &l{j} [" + ",".join(["*w"] * 30) + "]\n" for j in range(10))
    (tmp_path / "bomb.yml").write_text(f"w: &w [{words}]\n{lists}all: [" + ",".join(["*l0"] * 50) + "]\n")
    proc = linuxkit("build", "--dry-run", "bomb.yml", check=False)
    check_user_error(proc, r"^bomb\.yml:9:19: document contains excessive aliasing")


@pytest.fixture
def cached_images(linuxkit: RunLinuxkit, tmp_path: Path) -> None:
    """In the private cache: a kernel image without a kernel, an image whose label has an unknown key."""
    import rootfs_fakes

    label = {"config": {"Labels": {"org.mobyproject.config": '{"capabilites": ["all"]}'}}}
    images = {
        "docker.io/library/nokernel:1": rootfs_fakes.FakeSource(
            "k", [rootfs_fakes.layer(rootfs_fakes.file("vmlinuz", "k"))]
        ),
        "docker.io/library/labelled:1": rootfs_fakes.FakeSource(
            "l", [rootfs_fakes.layer(rootfs_fakes.file("x", "x"))], label
        ),
        "docker.io/library/plain:1": rootfs_fakes.FakeSource("p", [rootfs_fakes.layer(rootfs_fakes.file("y", "y"))]),
    }
    (tmp_path / "images.tar").write_bytes(rootfs_fakes.oci_layout_tar(images))
    linuxkit("cache", "import", "images.tar")
    (tmp_path / "out").mkdir()


@pytest.mark.parametrize(
    ("yml", "code", "pattern"),
    [
        (
            "kernel:\n  image: nokernel:1\n",
            1,
            r"^error: s\.yml:2:10: kernel\.image: did not find kernel in kernel image docker\.io/library/nokernel:1",
        ),
        (
            "services:\n  - name: a\n    image: plain:1\n  - name: b\n    image: labelled:1\n",
            1,
            r"^error: s\.yml:5:12: services\[1\]\.image: b \(labelled:1\): image .*label: capabilites: unknown key",
        ),
        (
            "services:\n  - name: a\n    image: plain:1\n    binds: [/etc:/etc, nope:/data]\n",
            2,
            r"^s\.yml:4:24: services\[0\]\.binds\[1\]: bind 'nope:/data' uses volume 'nope', which is not defined",
        ),
        (
            "volumes:\n  - name: ro\n    readonly: true\nonboot:\n  - name: a\n    image: plain:1\n"
            "    binds:\n      - ro:/data\n",
            2,
            r"^s\.yml:8:9: onboot\[0\]\.binds\[0\]: volume ro is read-only, but bind 'ro:/data' would mount it",
        ),
    ],
    ids=["kernel-without-kernel", "label-unknown-key", "undefined-volume", "read-only-volume-bound-rw"],
)
def test_problems_found_in_images_or_volumes_are_located(
    cached_images: None, linuxkit: RunLinuxkit, tmp_path: Path, yml: str, code: int, pattern: str
) -> None:
    (tmp_path / "s.yml").write_text(yml)
    proc = linuxkit("build", "--format", "tar", "--dir", "out", "s.yml", check=False)
    err = proc.stderr.decode()
    assert proc.returncode == code, err
    assert re.search(pattern, err, re.M), err
    assert "Traceback" not in err and "internal error" not in err
    assert list((tmp_path / "out").iterdir()) == []
