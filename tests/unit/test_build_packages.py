"""What ``linuxkit build`` asks of ``pkg build`` (a missing ``@pkg:`` image built, the Debian settings
of the flags) and the Debian settings the boot loaders are built with: the package builder is
imported only when one of these is called (see ``test_cli_startup``), with the same results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from linuxkit.cli.build_cmd import options_from_args
from linuxkit.cli.common import CommonOptions
from linuxkit.cli.main import build_parser
from linuxkit.oci.cache import Cache
from linuxkit.oci.image import Platform
from linuxkit.packages.debian_image import DebianSettings


class Stop(Exception):
    """Raised by the fake package builder once it has seen its options."""


def _capture(monkeypatch: pytest.MonkeyPatch, module: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def build_package(directory: object, opts: object) -> None:
        seen["directory"], seen["opts"] = directory, opts
        raise Stop

    monkeypatch.setattr(f"{module}.build_package", build_package)
    return seen


def _options(tmp_path: Path, *flags: str) -> Any:
    args = build_parser().parse_args(["--cache", str(tmp_path / "cache"), "build", *flags, "sys.yml"])
    return options_from_args(args, CommonOptions.from_args(args))


def test_a_missing_pkg_image_is_built_as_pkg_build_would(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen = _capture(monkeypatch, "linuxkit.cli.pkg_cmd")
    opts = _options(tmp_path, "--debian-mirror", "http://mirror.example/debian")
    assert opts.pkg_builder is not None
    with pytest.raises(Stop):
        opts.pkg_builder("pkg/init", Platform("linux", "arm64"), "linuxkit/init:dev")
    built = seen["opts"]
    assert seen["directory"] == "pkg/init"
    assert built.platforms == (Platform("linux", "arm64"),)
    assert built.also_name == "linuxkit/init:dev"
    assert built.tag.tag_template == "{{.Hash}}"
    assert built.cache.root == tmp_path / "cache"
    assert built.debian.mirror == "http://mirror.example/debian"


def test_the_debian_settings_come_from_the_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINUXKIT_DEBIAN_CACHE", str(tmp_path / "debs"))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "7")
    opts = _options(tmp_path, "--debian-security-mirror", "http://sec.example/debian-security")
    assert callable(opts.debian)
    settings = opts.debian()
    assert settings == DebianSettings(
        cache_dir=tmp_path / "debs", security_mirror="http://sec.example/debian-security", epoch=7
    )


@pytest.mark.parametrize("given", ["none", "settings", "function"])
def test_boot_loaders_take_the_settings_given_else_the_defaults(
    given: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from linuxkit.formats.loaders import boot_files_tree

    seen = _capture(monkeypatch, "linuxkit.formats.loaders")
    monkeypatch.setenv("LINUXKIT_DEBIAN_CACHE", str(tmp_path / "debs"))
    mine = DebianSettings(cache_dir=tmp_path / "mine", mirror="http://mirror.example/debian")
    debian = {"none": None, "settings": mine, "function": lambda: mine}[given]
    with pytest.raises(Stop):
        boot_files_tree(Cache(tmp_path / "cache"), Platform("linux", "amd64"), tmp_path / "dest", debian=debian)
    expected = DebianSettings(cache_dir=tmp_path / "debs") if given == "none" else mine
    assert seen["opts"].debian == expected
