"""``push scaleway``/``run scaleway`` without a network: flags over variables over defaults, missing credentials,
inputs checked before any call, zone names, request bodies as the Scaleway API reference (Block Storage v1
``ImportSnapshotFromObjectStorage``, Instance v1 ``CreateImage``/``CreateServer``) spells them, and start-up."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from linuxkit.cli import cloud_scaleway_cmd as cmd
from linuxkit.cli.main import _normalise_argv, build_parser
from linuxkit.cloud import scaleway, scaleway_api
from linuxkit.errors import UserError


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(_normalise_argv(argv))


def test_flags_win_over_environment_then_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SCW_DEFAULT_ZONE", "SCW_DEFAULT_PROJECT_ID", "SCW_DEFAULT_ORGANIZATION_ID", "SCW_RUN_TYPE"):
        monkeypatch.delenv(var, raising=False)
    args = parse("run", "scaleway", "img")
    assert cmd.zone(args) == "fr-par-1"
    monkeypatch.setenv("SCW_DEFAULT_ZONE", "ams1")
    assert cmd.zone(args) == "nl-ams-1"  # upstream's zone names still work
    assert cmd.zone(parse("run", "scaleway", "--zone", "pl-waw-2", "img")) == "pl-waw-2"
    monkeypatch.setenv("SCW_DEFAULT_ORGANIZATION_ID", "org")
    assert cmd._credentials(args).project == "org"  # the organization's default project
    monkeypatch.setenv("SCW_DEFAULT_PROJECT_ID", "proj")
    assert cmd._credentials(args).project == "proj"
    assert cmd._credentials(parse("run", "scaleway", "--project-id", "flag", "img")).project == "flag"


def test_boolean_flags_take_cobra_spellings() -> None:
    args = parse("run", "scaleway", "--clean=true", "--no-attach=false", "img")
    assert args.clean is True and args.no_attach is False
    assert parse("push", "scaleway", "--no-clean=true", "x.qcow2").no_clean is True


def test_region_of_a_zone() -> None:
    assert scaleway_api.region_of("fr-par-2") == "fr-par"
    assert scaleway.object_storage_url("nl-ams-1") == "https://s3.nl-ams.scw.cloud"
    with pytest.raises(UserError, match="not a Scaleway zone"):
        scaleway_api.region_of("par")


def test_missing_credentials_name_the_variables() -> None:
    with pytest.raises(UserError) as err:
        scaleway.Credentials("", "", "").check(need_access_key=True)
    for name in ("$SCW_SECRET_KEY", "$SCW_ACCESS_KEY", "$SCW_DEFAULT_PROJECT_ID"):
        assert name in str(err.value)
    scaleway.Credentials("", "s", "p").check(need_access_key=False)  # run needs no access key


def test_push_checks_its_inputs_before_any_call(tmp_path: Path) -> None:
    creds = scaleway.Credentials("a", "s", "p")
    iso = tmp_path / "x.iso"
    iso.write_bytes(b"CD001" * 100)

    class NoCalls(scaleway_api.ScalewayApi):
        def call(self, *args: object, **kwargs: object) -> object:
            raise AssertionError("no call expected")

    api = NoCalls("s", "fr-par-1")
    with pytest.raises(UserError, match="not a QCOW2 image"):
        scaleway.push(scaleway.PushOptions(iso, creds, "fr-par-1", "b"), api)
    with pytest.raises(UserError, match="no bucket"):
        scaleway.push(scaleway.PushOptions(iso, creds, "fr-par-1", ""), api)
    with pytest.raises(UserError, match="unknown architecture"):
        scaleway.push(scaleway.PushOptions(iso, creds, "fr-par-1", "b", arch="mips"), api)
    with pytest.raises(UserError, match="cannot read"):
        scaleway.push(scaleway.PushOptions(tmp_path / "none.qcow2", creds, "fr-par-1", "b"), api)


def test_upstreams_helper_server_flags_are_explained() -> None:
    args = parse("push", "scaleway", "--ssh-key", "k", "--bucket", "b", "x.qcow2")
    with pytest.raises(UserError, match="--ssh-key: upstream's helper server"):
        cmd.push(args, None)  # type: ignore[arg-type]


def test_image_names_and_bodies() -> None:
    assert scaleway.image_name(Path("out/lk-efi.qcow2"), "") == "lk-efi"
    assert scaleway.image_name(Path("lk.qcow2"), "given") == "given"
    assert scaleway_api.import_snapshot_body("b", "k.qcow2", "n", "p") == {
        "bucket": "b",
        "key": "k.qcow2",
        "name": "n",
        "project_id": "p",
        "tags": ["linuxkit"],
    }
    assert scaleway_api.server_body("n", "DEV1-S", "i", "p")["dynamic_ip_required"] is True


def test_cli_module_imports_no_sdk_and_help_works() -> None:
    code = (
        "import sys\n"
        "from linuxkit.cli.main import _normalise_argv, build_parser\n"
        "import linuxkit.cli.cloud_scaleway_cmd\n"
        "args = build_parser().parse_args(['push', 'scaleway', '--bucket', 'b', 'x.qcow2'])\n"
        "assert args.run == 'cloud_scaleway_cmd:push', args.run\n"
        "args = build_parser().parse_args(['run', 'scaleway', 'img'])\n"
        "assert args.run == 'cloud_scaleway_cmd:run', args.run\n"
        "print(sorted(m for m in sys.modules if m.startswith(('boto', 'scaleway', 'linuxkit.cloud.scaleway'))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
    for verb in ("push", "run"):
        out = subprocess.run(
            [sys.executable, "-m", "linuxkit.cli.main", verb, "scaleway", "--help"], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert "--secret-key" in out.stdout and "--zone" in out.stdout


def test_a_missing_boto3_names_the_extra(tmp_path: Path) -> None:
    disk = tmp_path / "d.qcow2"
    disk.write_bytes(b"QFI\xfb" + bytes(100))
    code = (
        "import sys\n"
        "sys.modules['boto3'] = None\n"
        "from linuxkit.cloud import scaleway, scaleway_api\n"
        "class Api(scaleway_api.ScalewayApi):\n"
        "    def call(self, *a, **k): return {'images': []}\n"
        "from linuxkit.cli.main import main\n"
        "scaleway.ScalewayApi = Api\n"
        "sys.exit(main(['push', 'scaleway', '--access-key', 'a', '--secret-key', 's', '--project-id', 'p',"
        f" '--bucket', 'b', {str(disk)!r}]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'linuxkit[scaleway]'" in proc.stderr
