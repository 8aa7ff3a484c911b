"""Package tags as ``pkg show-tag`` computes them, and strict ``build.yml`` reading."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from linuxkit.errors import ConfigError, UserError
from linuxkit.packages.buildyml import DEFAULT_ARCHES, parse_build_yml
from linuxkit.packages.tag import PackageTag, TagOptions, package_tag, render_template

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
UPSTREAM = "/work/upstream/bin/linuxkit"


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True, env=env, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "pkg" / "foo").mkdir(parents=True)
    (root / "other").mkdir()
    (root / "pkg" / "foo" / "build.yml").write_text("image: foo\n")
    (root / "pkg" / "foo" / "Dockerfile").write_text("FROM scratch\n")
    (root / "other" / "data").write_text("x\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    return root


def tree(repo: Path, path: str) -> str:
    return git(repo, "rev-parse", f"HEAD:{path}").strip()


def content_hash(pkg: Path, names: list[str]) -> str:
    digest = hashlib.sha256()
    for name in names:
        digest.update((pkg / name).read_bytes())
    return digest.hexdigest()[:7]


def test_clean_tag_is_the_tree_hash(repo: Path) -> None:
    tag = package_tag(str(repo / "pkg" / "foo"))
    assert tag.name == f"linuxkit/foo:{tree(repo, 'pkg/foo')}"
    assert tag.canonical == f"docker.io/linuxkit/foo:{tree(repo, 'pkg/foo')}"
    assert not tag.dirty


def test_repo_root_uses_the_commit_tree(repo: Path) -> None:
    (repo / "build.yml").write_text("image: root\norg: me\n")
    git(repo, "add", "build.yml")
    git(repo, "commit", "-qm", "root")
    assert package_tag(str(repo)).name == f"me/root:{git(repo, 'show', '-s', '--format=%T').strip()}"


def test_dirty_by_modification(repo: Path) -> None:
    pkg = repo / "pkg" / "foo"
    (pkg / "Dockerfile").write_text("FROM alpine\n")
    tag = package_tag(str(pkg))
    # tracked files in ls-files order (sorted), contents as they are now
    assert tag.tag == f"{tree(repo, 'pkg/foo')}-dirty-{content_hash(pkg, ['Dockerfile', 'build.yml'])}"
    assert tag.dirty


def test_dirty_by_untracked_file(repo: Path) -> None:
    pkg = repo / "pkg" / "foo"
    (pkg / "new").write_text("new\n")
    (pkg / "sub").mkdir()
    os.symlink("Dockerfile", pkg / "link")
    expected = content_hash(pkg, ["Dockerfile", "build.yml", "new"])  # tracked first, then untracked; no symlinks
    assert package_tag(str(pkg)).tag == f"{tree(repo, 'pkg/foo')}-dirty-{expected}"


def test_changes_elsewhere_do_not_dirty(repo: Path) -> None:
    (repo / "other" / "data").write_text("changed\n")
    assert package_tag(str(repo / "pkg" / "foo")).tag == tree(repo, "pkg/foo")


def test_extra_sources_are_combined_with_sha1(repo: Path) -> None:
    pkg = repo / "pkg" / "foo"
    (pkg / "build.yml").write_text("image: foo\nextra-sources:\n  - ../../other:/other\n")
    git(repo, "commit", "-qam", "extra")
    expected = hashlib.sha1((tree(repo, "pkg/foo") + tree(repo, "other")).encode()).hexdigest()
    assert package_tag(str(pkg)).tag == expected


def test_a_change_in_an_extra_source_dirties_the_package(repo: Path) -> None:
    pkg = repo / "pkg" / "foo"
    (pkg / "build.yml").write_text("image: foo\nextra-sources:\n  - ../../other:/other\n")
    git(repo, "commit", "-qam", "extra")
    clean = package_tag(str(pkg))
    assert not clean.dirty
    (repo / "other" / "data").write_text("changed\n")
    first = package_tag(str(pkg))
    assert first.dirty and first.tag.startswith(clean.tag + "-dirty-")
    (repo / "other" / "data").write_text("changed again\n")
    assert package_tag(str(pkg)).tag != first.tag  # the suffix follows the sources' content


def test_options(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = str(repo / "pkg" / "foo")
    h = tree(repo, "pkg/foo")
    assert package_tag(pkg, TagOptions(hash="abc")).name == "linuxkit/foo:abc"
    assert package_tag(pkg, TagOptions(tag_template="v1-{{ .Hash }}")).tag == f"v1-{h}"
    assert package_tag(pkg, TagOptions(org="acme")).name == f"acme/foo:{h}"
    monkeypatch.setenv("USER", "me")
    assert package_tag(pkg, TagOptions(dev=True)).name == "me/foo:dev"
    forced = package_tag(pkg, TagOptions(force_dirty=True))
    assert forced.tag.startswith(f"{h}-dirty-")


def test_outside_git_is_latest(tmp_path: Path) -> None:
    (tmp_path / "build.yml").write_text("image: x\norg: o\n")
    tag = package_tag(str(tmp_path))
    assert (tag.name, tag.canonical, tag.hash) == ("o/x:latest", "docker.io/o/x:latest", "")


def test_render_template() -> None:
    assert render_template("{{.Hash}}", "h") == "h"
    assert render_template("a {{- .Hash -}} b", "h") == "ahb"
    with pytest.raises(UserError, match="only"):
        render_template("{{.Other}}", "h")


def test_build_yml_defaults_and_strictness() -> None:
    info = parse_build_yml("image: foo\nconfig:\n  binds: [/a:/b]\n", "build.yml")
    assert (info.org, info.tag, info.dockerfile, info.arches) == ("linuxkit", "{{.Hash}}", "Dockerfile", DEFAULT_ARCHES)
    assert info.config is not None and info.config.binds == ["/a:/b"]
    with pytest.raises(ConfigError) as err:
        parse_build_yml("image: foo\nnetwrok: true\nconfig:\n  bogus: 1\n", "build.yml")
    assert [d.headline() for d in err.value.diagnostics] == [
        "build.yml:2:1: netwrok: unknown key",
        "build.yml:4:3: config.bogus: unknown key",
    ]
    assert err.value.diagnostics[0].hint == "did you mean 'network'?"
    with pytest.raises(ConfigError, match=r"build\.yml:1:1: image is required"):
        parse_build_yml("org: x\n", "build.yml")
    with pytest.raises(ConfigError, match="lacks a digest"):
        parse_build_yml("image: x\ndepends:\n  docker-images:\n    list: [alpine:3.20]\n", "build.yml")


# upstream's pkg/kmsg/build.yml (pkg/getty has the same devices): an unquoted integer mode
KMSG_BUILD_YML = (Path(__file__).parent.parent / "data" / "upstream-kmsg-build.yml").read_text()


def test_build_yml_string_fields_take_any_scalar_as_written() -> None:
    # go-yaml v3 decodes a scalar into a Go string as its source text (build.yml has no JSON schema)
    info = parse_build_yml(KMSG_BUILD_YML, "build.yml")
    assert info.config is not None and info.config.devices is not None
    device = info.config.devices[0]
    assert (device.mode, device.major, device.minor) == ("0666", 1, 11)
    info = parse_build_yml("image: 1234\norg: 0x1F\nconfig:\n  binds: [1.50]\n  hostname: true\n", "build.yml")
    assert (info.image, info.org) == ("1234", "0x1F")
    assert info.config is not None and (info.config.binds, info.config.hostname) == (["1.50"], "true")


def test_build_yml_type_errors_are_still_located() -> None:
    with pytest.raises(ConfigError) as err:
        parse_build_yml("image: x\nconfig:\n  devices:\n    - major: '1'\n      mode: [1]\n", "build.yml")
    assert [d.headline() for d in err.value.diagnostics] == [
        "build.yml:4:14: config.devices[0].major: must be an integer, not a string",
        "build.yml:5:13: config.devices[0].mode: must be a string, not a list",
    ]


def test_show_tag_of_a_package_with_an_integer_device_mode(repo: Path) -> None:
    (repo / "pkg" / "foo" / "build.yml").write_text(KMSG_BUILD_YML)
    git(repo, "commit", "-qam", "kmsg")
    assert package_tag(str(repo / "pkg" / "foo")).name == f"linuxkit/kmsg:{tree(repo, 'pkg/foo')}"


@pytest.mark.skipif(not os.access(UPSTREAM, os.X_OK), reason="no upstream linuxkit binary at " + UPSTREAM)
def test_against_upstream_show_tag(repo: Path) -> None:
    pkg = repo / "pkg" / "foo"

    def both() -> tuple[str, PackageTag]:
        out = subprocess.run([UPSTREAM, "pkg", "show-tag", "--canonical", str(pkg)], capture_output=True, check=True)
        return out.stdout.decode().strip(), package_tag(str(pkg))

    up, ours = both()
    assert up == ours.canonical
    (pkg / "Dockerfile").write_text("changed\n")
    (pkg / "untracked").write_text("u\n")
    up, ours = both()
    assert up == ours.canonical and "-dirty-" in up
