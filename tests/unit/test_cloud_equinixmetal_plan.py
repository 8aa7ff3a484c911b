"""``push equinixmetal`` (files and the iPXE script written into a directory, as upstream) and the argument checks of
``run equinixmetal``, without a network."""

from __future__ import annotations

import argparse
import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from linuxkit.cli import cloud_equinixmetal_cmd as cmd
from linuxkit.cli.main import _normalise_argv, build_parser
from linuxkit.cloud import equinixmetal
from linuxkit.errors import UserError
from linuxkit.serve import ipxe


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(_normalise_argv(argv))


def outputs(tmp_path: Path, cmdline: str = "console=ttyS0 quiet") -> str:
    prefix = tmp_path / "lk"
    Path(f"{prefix}-kernel").write_bytes(gzip.compress(b"KERNEL" * 1000))
    Path(f"{prefix}-initrd.img").write_bytes(b"INITRD" * 1000)
    Path(f"{prefix}-cmdline").write_text(cmdline + "\n")
    return str(prefix)


def test_boot_cmdline_as_upstreams_script() -> None:
    assert (
        equinixmetal.boot_cmdline("console=ttyS0\n", "x86_64")
        == "ip=dhcp nomodeset ro serial console=ttyS1,115200 console=ttyS0"
    )
    assert equinixmetal.boot_cmdline("console=ttyS1,9600", "x86_64") == "ip=dhcp nomodeset ro serial console=ttyS1,9600"
    assert equinixmetal.boot_cmdline("x=1", "aarch64") == "root=/dev/ram0 ip=dhcp nomodeset ro x=1"
    assert equinixmetal.arch_of("c3.large.arm64") == "aarch64"
    assert equinixmetal.arch_of("baremetal_2a") == "aarch64"
    assert equinixmetal.arch_of("c3.small.x86") == "x86_64"


def test_push_copies_the_files_and_writes_serves_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = outputs(tmp_path)
    dst = tmp_path / "www"
    script = equinixmetal.push(equinixmetal.PushOptions(prefix, f"file://{dst}", base_url="http://h/lk"))
    assert script == dst / "lk-equinixmetal.ipxe"
    assert capsys.readouterr().out.strip() == str(script)
    full = "ip=dhcp nomodeset ro serial console=ttyS1,115200 console=ttyS0 quiet"
    assert script.read_text() == ipxe.script("lk", full)
    assert (dst / "lk-cmdline").read_text() == full + "\n"  # so linuxkit serve's /lk.ipxe is the same script
    assert (dst / "lk-kernel").read_bytes() == Path(f"{prefix}-kernel").read_bytes()  # copied as it is
    assert (dst / "lk-initrd.img").read_bytes() == Path(f"{prefix}-initrd.img").read_bytes()
    assert sorted(p.name for p in dst.iterdir()) == ["lk-cmdline", "lk-equinixmetal.ipxe", "lk-initrd.img", "lk-kernel"]


def test_push_decompresses_what_is_gzipped(tmp_path: Path) -> None:
    prefix = outputs(tmp_path)
    equinixmetal.push(equinixmetal.PushOptions(prefix, str(tmp_path / "d"), decompress=True, arch="aarch64"))
    assert (tmp_path / "d/lk-kernel").read_bytes() == b"KERNEL" * 1000
    assert (tmp_path / "d/lk-initrd.img").read_bytes() == b"INITRD" * 1000  # not gzip'ed: copied
    assert "root=/dev/ram0" in (tmp_path / "d/lk-equinixmetal.ipxe").read_text()


def test_push_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="kernel file does not exist"):
        equinixmetal.push(equinixmetal.PushOptions(str(tmp_path / "none"), str(tmp_path / "d")))
    prefix = outputs(tmp_path)
    with pytest.raises(UserError, match="destination"):
        equinixmetal.push(equinixmetal.PushOptions(prefix, ""))
    with pytest.raises(UserError, match="unknown destination format: s3"):
        equinixmetal.push(equinixmetal.PushOptions(prefix, "s3://bucket/x"))
    Path(f"{prefix}-cmdline").unlink()
    with pytest.raises(UserError, match="cannot open cmdline file"):
        equinixmetal.push(equinixmetal.PushOptions(prefix, str(tmp_path / "d")))
    assert not (tmp_path / "d").exists()  # checked before anything is written


def test_push_through_the_cli(tmp_path: Path) -> None:
    prefix = outputs(tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "linuxkit.cli.main",
            "push",
            "equinixmetal",
            "--destination",
            str(tmp_path / "o"),
            prefix,
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o/lk-equinixmetal.ipxe").is_file()


def run_opts(**changes: object) -> equinixmetal.RunOptions:
    base: dict[str, object] = dict(
        prefix="lk", base_url="http://h", token="t", project="p", plan="c3.small.x86", hostname="h", metro="am"
    )
    base.update(changes)
    return equinixmetal.RunOptions(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"base_url": ""}, "--base-url"),
        ({"token": ""}, "METAL_API_TOKEN, \\$METAL_AUTH_TOKEN, \\$PACKET_API_KEY"),
        ({"project": ""}, "project ID"),
        ({"keep": False, "console": False}, "makes little sense"),
    ],
)
def test_run_checks_before_any_call(changes: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        equinixmetal.run(run_opts(**changes))


def test_run_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in cmd.TOKEN_ENVS:
        monkeypatch.delenv(var, raising=False)
    assert cmd.token(None) == ""
    monkeypatch.setenv("PACKET_API_KEY", "old")
    assert cmd.token(None) == "old"
    monkeypatch.setenv("METAL_AUTH_TOKEN", "new")
    assert cmd.token(None) == "new"
    assert cmd.token("flag") == "flag"
    args = parse("run", "equinixmetal", "--console=false", "--always-pxe", "false", "--keep=true", "lk")
    assert (args.console, args.always_pxe, args.keep) == (False, False, True)
    args = parse("run", "equinixmetal", "lk")
    assert (args.console, args.always_pxe, args.keep) == (True, True, False)


def test_serve_flag_points_to_linuxkit_serve() -> None:
    with pytest.raises(UserError, match="--serve") as err:
        cmd.run(parse("run", "equinixmetal", "--serve", ":8080", "lk"), None)  # type: ignore[arg-type]
    assert "linuxkit serve" in (err.value.hint or "")


def test_cli_module_imports_nothing_heavy_and_help_works() -> None:
    code = (
        "import sys\n"
        "from linuxkit.cli.main import build_parser\n"
        "args = build_parser().parse_args(['run', 'equinixmetal', 'lk'])\n"
        "assert args.run == 'cloud_equinixmetal_cmd:run', args.run\n"
        "args = build_parser().parse_args(['push', 'equinixmetal'])\n"
        "assert args.run == 'cloud_equinixmetal_cmd:push', args.run\n"
        "print(sorted(m for m in sys.modules if m.startswith(('equinix', 'linuxkit.cloud', 'linuxkit.http'))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
    for verb in ("push", "run"):
        out = subprocess.run(
            [sys.executable, "-m", "linuxkit.cli.main", verb, "equinixmetal", "--help"], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert "--base-url" in out.stdout
