"""Start-up discipline: the command line imports a verb's module only when that verb runs (see
``linuxkit.cli.parser``), so each verb loads what it uses. ``version``, ``build --dry-run FILE`` and
``pkg show-tag DIR`` are held to allow-lists of linuxkit modules: a new import on their path fails
here (add it to the list only if that verb really uses it, and measure its cost with
``python -X importtime``). A build from cached images (``tar``, ``kernel+initrd``) imports none of
the boot loaders, the package builder and the Debian client."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from linuxkit import log
from linuxkit.cli import common
from linuxkit.cli.common import CommonOptions
from linuxkit.cli.main import build_parser, verb_function

ROOT = Path(__file__).resolve().parents[2]
MINIMAL_YML = ROOT / "examples" / "minimal.yml"

#: the parser: what every verb imports before it runs (a verb's own flags are added only when it runs)
PARSER = {
    "linuxkit",
    "linuxkit.arch",  # the host's architecture for --arch (os.uname, not platform)
    "linuxkit.cli",
    "linuxkit.cli.common",
    "linuxkit.cli.main",
    "linuxkit.cli.parser",
    "linuxkit.errors",
}

#: ``build``'s flags: the format table's names for --help, no writer
BUILD_PARSER = {"linuxkit.formats", "linuxkit.formats.registry", "linuxkit.oci", "linuxkit.oci.image"}

#: load, validate and merge YAML files (what a dry run and build.yml share)
CONFIG = {
    "linuxkit.config",
    "linuxkit.config.paths",
    "linuxkit.config.schema",
    "linuxkit.config.validate",
    "linuxkit.config.yamlload",
    "linuxkit.log",  # plain lines unless stderr is a terminal: rich is not imported
    "linuxkit.oci",
    "linuxkit.oci.reference",
}

ALLOWED = {
    "version": PARSER | {"linuxkit.cli.version_cmd"},
    "build --dry-run": PARSER
    | BUILD_PARSER
    | CONFIG
    | {
        "linuxkit.cli.build_args",
        "linuxkit.cli.dry_run_cmd",
        "linuxkit.config.dump",
        "linuxkit.config.load",
        "linuxkit.containerspec",
        "linuxkit.containerspec.volumes",
        "linuxkit.gocompat",
        "linuxkit.gocompat.json",
        "linuxkit.gocompat.path",
        "linuxkit.gocompat.values",
        "linuxkit.gocompat.yaml",
        "linuxkit.sizes",
    },
    "pkg show-tag": PARSER
    | CONFIG
    | {
        "linuxkit.cli.pkg_tag_cmd",
        "linuxkit.packages",
        "linuxkit.packages.buildyml",
        "linuxkit.packages.tag",
        "linuxkit.runner",
    },
}

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


def linuxkit_modules(modules: set[str]) -> set[str]:
    return {m for m in modules if m == "linuxkit" or m.startswith("linuxkit.")}


def test_version_imports_the_parser_only() -> None:
    modules = modules_after("from linuxkit.cli.main import main; main(['version'])")
    assert sorted(linuxkit_modules(modules) - ALLOWED["version"]) == []
    assert {"yaml", "subprocess"}.isdisjoint(modules)
    # each of these cost 2-10 ms of a start that does not use them
    assert {"dataclasses", "inspect", "pathlib", "shutil", "platform", "threading"}.isdisjoint(modules)


PLAIN_YML = """\
kernel:
  image: linuxkit/kernel:6.12.59
  cmdline: console=ttyS0
init:
  - linuxkit/init:b5506cc74a6812dc40982cacfd2f4328f8a4b12a
services:
  - name: getty
    image: linuxkit/getty:v1.0.0
    binds:
      - etc:/etc
volumes:
  - name: etc
    image: alpine:3.20
files:
  - path: etc/hostname
    contents: linuxkit
"""


def test_dry_run_imports_config_loading_and_printing_only(tmp_path: Path) -> None:
    yml = tmp_path / "system.yml"
    yml.write_text(PLAIN_YML)
    modules = modules_after(f"from linuxkit.cli.main import main; main(['build', '--dry-run', {str(yml)!r}])")
    assert "linuxkit.config.dump" in modules  # it did run
    assert sorted(linuxkit_modules(modules) - ALLOWED["build --dry-run"]) == []
    assert {"rich", "subprocess", "ssl", "http", "tarfile", "pycdlib", "elftools"}.isdisjoint(modules)
    # dataclasses (with inspect) and pathlib cost 10-20 ms of this start: records on this path are
    # NamedTuples, schema classes Model subclasses
    assert {"dataclasses", "inspect", "pathlib"}.isdisjoint(modules)


def test_dry_run_with_pkg_references_adds_the_tag_only() -> None:
    argv = ["build", "--dry-run", str(MINIMAL_YML)]  # its images are @pkg:../pkg/...
    modules = modules_after(f"from linuxkit.cli.main import main; main({argv!r})")
    extra = {"linuxkit.packages", "linuxkit.packages.buildyml", "linuxkit.packages.tag", "linuxkit.runner"}
    assert "linuxkit.packages.tag" in modules
    assert sorted(linuxkit_modules(modules) - ALLOWED["build --dry-run"] - extra) == []


def test_show_tag_imports_build_yml_the_tag_and_git_only() -> None:
    pkg = ROOT / "pkg" / "init"
    modules = modules_after(f"from linuxkit.cli.main import main; main(['pkg', 'show-tag', {str(pkg)!r}])")
    assert "linuxkit.packages.tag" in modules  # it did run
    assert sorted(linuxkit_modules(modules) - ALLOWED["pkg show-tag"]) == []
    assert {"rich", "ssl", "http", "tarfile", "linuxkit.config.load"}.isdisjoint(modules)
    assert {"dataclasses", "inspect"}.isdisjoint(modules)


#: the boot loaders, the package builder and the Debian client (~85 ms of imports): a build loads
#: them only for a format with boot loaders or a ``@pkg:`` image to build
PACKAGE_BUILDER = (
    "linuxkit.formats.loaders",
    "linuxkit.cli.pkg_cmd",
    "linuxkit.packages.pkgbuild",
    "linuxkit.packages.debian_image",
    "linuxkit.debian",
    "elftools",
)


@pytest.mark.parametrize("fmt", ["tar", "kernel+initrd"])
def test_a_build_from_cached_images_imports_no_boot_loader_or_package_builder(tmp_path: Path, fmt: str) -> None:
    from tests.imagefactory import Entry, ImageSpec, file, write_layout_tar

    from linuxkit.oci.archive import import_archive
    from linuxkit.oci.cache import Cache

    kernel = ImageSpec("example.org/t/kernel:1", [[Entry("kernel", size=4096), file("kernel.tar", b"")]])
    init = ImageSpec("example.org/t/init:1", [[file("etc/hostname", "t")]])
    layout = tmp_path / "images.tar"
    write_layout_tar(layout, [kernel, init])
    with layout.open("rb") as stream:
        import_archive(Cache(tmp_path / "cache"), stream)
    yml = tmp_path / "t.yml"
    yml.write_text("kernel:\n  image: example.org/t/kernel:1\ninit:\n  - example.org/t/init:1\n")
    argv = ["--cache", str(tmp_path / "cache"), "build", "-f", fmt, "--dir", str(tmp_path / "out"), str(yml)]
    modules = modules_after(f"from linuxkit.cli.main import main; main({argv!r})")
    assert "linuxkit.build" in modules
    assert list((tmp_path / "out").iterdir())  # it did build
    assert sorted(m for m in modules if m.startswith(PACKAGE_BUILDER)) == []


def _targets(parser: argparse.ArgumentParser) -> list[str]:
    """Every ``module:function`` a parser (and its sub-parsers) can dispatch to."""
    found = []
    run = parser.get_default("run")
    if isinstance(run, str):
        found.append(run)
    elif run is not None:
        found += [run(argparse.Namespace(dry_run=dry)) for dry in (False, True)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                found += _targets(sub)
    return found


def test_every_verb_dispatches_to_a_function() -> None:
    targets = _targets(build_parser(lazy=False))
    # 8 cache, 7 pkg, build and its dry run, run qemu, metadata, schema, sbom, version, serve, push and run on
    # 7 clouds, run on 5 desktop hypervisors
    assert len(targets) == 42
    for target in targets:
        assert callable(verb_function(argparse.Namespace(run=target))), target


def test_every_boolean_flag_takes_cobras_true_false_spelling() -> None:
    """``--flag=true|false`` is rewritten before parsing for the names in BOOL_FLAGS: every store_true flag of
    every verb must be there (cobra accepts the spelling for all of upstream's booleans)."""
    missing: set[str] = set()

    def walk(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._StoreTrueAction):
                missing.update(o for o in action.option_strings if o.startswith("--") and o not in common.BOOL_FLAGS)
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)

    walk(build_parser(lazy=False))
    assert not missing


def test_constants_spelled_for_the_parser_match_their_modules() -> None:
    from linuxkit.oci.archive import FORMATS
    from linuxkit.packages.buildyml import BUILD_YML

    assert common.EXPORT_FORMATS == FORMATS
    assert common.BUILD_YML == BUILD_YML
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


LAZY_CASES = [
    ["version", "--short"],
    ["--cache", "/c", "build", "--dry-run", "-f", "tar", "x.yml"],
    ["build", "--cache", "/c", "-v", "2", "x.yml"],
    ["cache", "check", "--repair", "a"],
    ["cache", "export", "--format", "docker", "--outfile", "-", "a"],
    ["pkg", "show-tag", "--canonical", "--org", "o", "d1", "d2"],
    ["pkg", "build", "--push", "--debian-mirror", "http://m/debian", "d"],
    ["run", "qemu", "--mem", "512", "--publish", "2222:22", "p"],
    ["metadata", "create", "m.iso", "{}"],
    ["schema"],
]


@pytest.mark.parametrize("argv", LAZY_CASES, ids=lambda argv: " ".join(argv))
def test_the_lazy_parser_parses_as_the_whole_one(argv: list[str]) -> None:
    assert vars(build_parser().parse_args(argv)) == vars(build_parser(lazy=False).parse_args(argv))


def test_top_level_help_lists_every_verb_and_fills_none(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    out = capsys.readouterr().out
    for verb in ("build", "cache", "pkg", "run", "metadata", "schema", "version"):
        assert f"    {verb} " in out
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert all(len(p._actions) == 1 for p in subparsers.choices.values())  # -h only: nothing filled


def test_an_unknown_verb_is_refused_naming_the_verbs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["bulid", "x.yml"])
    assert exc.value.code == 2
    assert "invalid choice: 'bulid'" in capsys.readouterr().err
