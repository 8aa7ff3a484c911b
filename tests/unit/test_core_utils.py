"""The small shared pieces: the runner, atomic outputs, sizes, references, error formatting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from linuxkit import runner
from linuxkit.cli.common import CommonOptions
from linuxkit.cli.registries import registry_options
from linuxkit.errors import BuildError, ConfigError, Diagnostic, Location, ToolMissingError, UserError
from linuxkit.oci import reference
from linuxkit.outputs import OutputSet
from linuxkit.sizes import parse_size_mb


def test_missing_tool_names_its_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolMissingError) as err:
        runner.run(["qemu-img", "info", "x"])
    assert "qemu-img: program not found" in str(err.value)
    assert err.value.hint == "install it with: apt-get install qemu-utils"


def test_failed_command_is_a_sentence_with_its_stderr() -> None:
    with pytest.raises(BuildError) as err:
        runner.run(["sh", "-c", "echo boom >&2; exit 3"], capture=True)
    assert err.value.message == "sh failed with exit code 3: boom"
    assert err.value.hint is not None and err.value.hint.startswith("command: sh -c")


def test_killed_command_names_the_signal() -> None:
    with pytest.raises(BuildError, match="killed by SIGKILL"):
        runner.run(["sh", "-c", "kill -9 $$"])


def test_output_returns_stdout() -> None:
    assert runner.output(["printf", "a b\n"]) == "a b"


def test_output_set_commits_atomically(tmp_path: Path) -> None:
    with OutputSet() as outs:
        with outs.open(tmp_path / "new" / "deeper" / "a.img") as fh:
            fh.write(b"data")
        assert not (tmp_path / "new" / "deeper" / "a.img").exists()
        assert outs.commit() == [tmp_path / "new" / "deeper" / "a.img"]
    assert (tmp_path / "new" / "deeper" / "a.img").read_bytes() == b"data"
    assert sorted(p.name for p in (tmp_path / "new" / "deeper").iterdir()) == ["a.img"]


def test_output_set_abort_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), OutputSet() as outs:
        with outs.open(tmp_path / "made" / "a.img") as fh:
            fh.write(b"half")
        outs.path(tmp_path / "b.img")
        raise RuntimeError("interrupted")
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.parametrize(("text", "mb"), [("1024M", 1024), ("1G", 1024), ("2", 2048), ("512M", 512), ("4g", 4096)])
def test_sizes_as_upstream(text: str, mb: int) -> None:
    assert parse_size_mb(text) == mb


@pytest.mark.parametrize("text", ["", "abc", "1.5G", "-1G"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(UserError):
        parse_size_mb(text)


@pytest.mark.parametrize(
    ("short", "full"),
    [
        ("redis", "docker.io/library/redis:latest"),
        ("org/img:1", "docker.io/org/img:1"),
        ("localhost/img", "localhost/img:latest"),
        ("reg.example:5000/a/b:2", "reg.example:5000/a/b:2"),
        ("a/b@sha256:" + "1" * 64, "docker.io/a/b@sha256:" + "1" * 64),
    ],
)
def test_reference_expansion(short: str, full: str) -> None:
    assert reference.normalize(short) == full


def test_config_error_sorts_and_formats_every_diagnostic() -> None:
    err = ConfigError(
        [
            Diagnostic("second", Location("a.yml", 9, 1), "services[1]"),
            Diagnostic("first", Location("a.yml", 2, 5), "onboot[0].image", "did you mean x?"),
        ]
    )
    assert err.exit_code == 2
    assert str(err) == "a.yml:2:5: onboot[0].image: first\n  hint: did you mean x?\na.yml:9:1: services[1]: second"


def _common(mirrors: list[str]) -> CommonOptions:
    return CommonOptions("/c", 1, False, mirrors, [])


def test_mirrors_as_upstream_parses_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINUXKIT_MIRROR", "http://all.example docker.io=https://hub.example")
    opts = registry_options(_common(["ghcr.io=http://127.0.0.1:5000"]))
    assert opts.mirrors["*"] == "http://all.example"
    assert opts.mirrors["registry-1.docker.io"] == "https://hub.example"
    assert opts.mirrors["ghcr.io"] == "http://127.0.0.1:5000"
    with pytest.raises(UserError, match="must start with http"):
        registry_options(_common(["docker.io=hub.example"]))


def test_run_without_backend_means_qemu() -> None:
    from linuxkit.cli.main import _default_run_backend as default

    assert default(["run", "out/minimal"]) == ["run", "qemu", "out/minimal"]
    assert default(["--cache", "c", "run", "--mem", "512", "x"]) == ["--cache", "c", "run", "qemu", "--mem", "512", "x"]
    assert default(["run", "qemu", "x"]) == ["run", "qemu", "x"]
    assert default(["run", "--mem", "512", "qemu", "x"]) == ["run", "--mem", "512", "qemu", "x"]
    assert default(["build", "run"]) == ["build", "run"]
    assert default(["run", "--help"]) == ["run", "--help"]


def test_run_without_backend_takes_upstreams_default_of_each_os() -> None:
    from linuxkit.cli.main import _default_run_backend as default

    assert default(["run", "x"], "darwin") == ["run", "virtualization", "x"]
    assert default(["run", "x"], "win32") == ["run", "hyperv", "x"]
    assert default(["run", "x"], "linux") == ["run", "qemu", "x"]
    assert default(["run", "vbox", "x"], "darwin") == ["run", "vbox", "x"]
