"""The command line starts without importing what its verbs run (start-up time), and the imports
that were moved into the verbs still resolve."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from linuxkit import log
from linuxkit.cli import cache_cmd, common, pkg_cmd
from linuxkit.cli.common import CommonOptions
from linuxkit.cli.main import build_parser

CLI_DIR = Path(__file__).resolve().parents[2] / "src" / "linuxkit" / "cli"

#: what no verb needs just to parse its arguments: the registry client, the config schema, the
#: build pipeline and the libraries they pull in
HEAVY = (
    "linuxkit.oci.registry",
    "linuxkit.oci.cache",
    "linuxkit.build",
    "linuxkit.images",
    "linuxkit.config.schema",
    "linuxkit.packages.buildyml",
    "linuxkit.metadata.iso",
    "linuxkit.run.qemu",
    "linuxkit.outputs",  # the format table names OutputSet for type checking only
    "linuxkit.http",
    "pydantic",
    "requests",
    "yaml",
    "pycdlib",
    "elftools",
)


def modules_after(code: str) -> set[str]:
    """``sys.modules`` of a fresh interpreter after running ``code`` (SystemExit is fine)."""
    script = (
        "import json, sys\n"
        f"try:\n    {code}\nexcept SystemExit:\n    pass\n"
        "sys.stdout.write('\\n' + json.dumps(sorted(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(json.loads(proc.stdout.splitlines()[-1]))


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_importing_main_and_building_the_parser_imports_nothing_heavy() -> None:
    modules = modules_after("from linuxkit.cli.main import build_parser; build_parser()")
    assert heavy_in(modules) == []
    assert "rich" not in modules  # not even the logging layer


@pytest.mark.parametrize("argv", [["--help"], ["pkg", "build", "--help"], ["cache", "export", "--help"]])
def test_help_imports_nothing_heavy(argv: list[str]) -> None:
    modules = modules_after(f"from linuxkit.cli.main import main; main({argv!r})")
    assert heavy_in(modules) == []


def test_version_imports_nothing_heavy() -> None:
    modules = modules_after("from linuxkit.cli.main import main; main(['version'])")
    assert heavy_in(modules) == []
    assert "rich" not in modules  # it prints with print()


def test_cache_ls_does_not_import_the_registry_client_or_the_build(tmp_path: Path) -> None:
    modules = modules_after(f"from linuxkit.cli.main import main; main(['--cache', {str(tmp_path)!r}, 'cache', 'ls'])")
    assert "linuxkit.oci.cache" in modules  # it did run
    # the cache writes atomically through outputs: that is the verb running, not start-up
    allowed = ("linuxkit.oci.cache", "linuxkit.outputs")
    assert [m for m in heavy_in(modules) if not m.startswith(allowed)] == []


def _function_imports(path: Path) -> list[tuple[str, int, list[str]]]:
    """``from X import a, b`` statements inside functions (module, level, names)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom):
                    found.append((inner.module or "", inner.level, [a.name for a in inner.names]))
    return found


@pytest.mark.parametrize("path", sorted(CLI_DIR.glob("*.py")), ids=lambda p: p.name)
def test_every_deferred_import_resolves(path: Path) -> None:
    package = "linuxkit.cli"
    for module, level, names in _function_imports(path):
        base = package.rsplit(".", level - 1)[0] if level > 1 else package
        target = importlib.import_module(f"{base}.{module}" if level and module else module or base)
        for name in names:
            if not hasattr(target, name):
                importlib.import_module(f"{target.__name__}.{name}")  # a submodule (``from .. import log``)


def test_constants_spelled_for_the_parser_match_their_modules() -> None:
    from linuxkit.oci.archive import FORMATS
    from linuxkit.packages.buildyml import BUILD_YML

    assert cache_cmd.FORMATS == FORMATS
    assert pkg_cmd.BUILD_YML == BUILD_YML
    assert (common.QUIET, common.DEBUG) == (log.QUIET, log.DEBUG)


def test_cache_dir_is_the_flag_else_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LINUXKIT_CACHE", str(tmp_path / "env"))
    args = build_parser().parse_args(["cache", "ls"])
    assert CommonOptions.from_args(args).cache_dir == tmp_path / "env"
    args = build_parser().parse_args(["--cache", str(tmp_path / "flag"), "cache", "ls"])
    assert CommonOptions.from_args(args).cache_dir == tmp_path / "flag"
    monkeypatch.delenv("LINUXKIT_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert CommonOptions.from_args(build_parser().parse_args(["cache", "ls"])).cache_dir == (
        tmp_path / "home" / ".linuxkit" / "cache"
    )
