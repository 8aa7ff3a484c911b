"""``pkg manifest``, ``pkg remote-tag`` and ``cache ls`` load none of the package builder (the Debian
client and the image builder cost ~180 ms of a cold start): they only talk to a registry or read the tag."""

from __future__ import annotations

from pathlib import Path

from test_cli_startup import PACKAGE_BUILDER, modules_after


def builder_modules(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in PACKAGE_BUILDER))


def test_pkg_manifest_and_remote_tag_load_no_package_builder(tmp_path: Path) -> None:
    for argv in (
        ["pkg", "manifest", str(tmp_path / "nowhere")],  # fails reading build.yml: the verb ran
        ["pkg", "remote-tag", "bad ref", "x"],
    ):
        modules = modules_after(f"from linuxkit.cli.main import main; main({argv!r})")
        assert "linuxkit.cli.pkg_registry_cmd" in modules
        assert builder_modules(modules) == [], argv


def test_cache_rm_loads_no_package_builder(tmp_path: Path) -> None:
    argv = ["--cache", str(tmp_path), "cache", "rm", "--published-only", "example.org/x:1"]
    modules = modules_after(f"from linuxkit.cli.main import main; main({argv!r})")
    assert "linuxkit.cli.cache_remove_cmd" in modules
    assert builder_modules(modules) == []
