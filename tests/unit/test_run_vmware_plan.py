"""``run vmware``'s whole plan (the ``.vmx``, disk creation and conversion, ``vmrun``) for upstream's
flag combinations on each platform, against golden files (``tests/unit/data/run_plans/vmware/``,
whose README compares each with ``run_vmware.go``), and the checks that refuse bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from run_plan_golden import check_golden

from linuxkit.cli.main import _normalise_argv, build_parser
from linuxkit.errors import UserError
from linuxkit.run import plan as P
from linuxkit.run.disks import parse_disk
from linuxkit.run.vmware import VMwareOptions, build_vmx, plan_vmware, vmx_value


def options(*argv: str, platform: str = "linux") -> VMwareOptions:
    args = build_parser().parse_args(_normalise_argv(["run", "vmware", *argv]))
    return VMwareOptions(
        path=args.path,
        cpus=args.cpus,
        mem=args.mem,
        disks=tuple(parse_disk(d) for d in args.disk),
        state=args.state,
        platform=platform,
    )


@pytest.fixture
def images(tmp_path: Path) -> Path:
    for name in ("lk.vmdk", "lk-bios.img", "lk.qcow2", "data.vmdk", "lk.iso"):
        (tmp_path / name).write_bytes(b"\0" * 4096)
    return tmp_path


CASES: dict[str, tuple[list[str], str]] = {
    "prefix_linux": (["lk"], "linux"),
    "prefix_cpus_mem_state": (["--cpus", "4", "--mem", "4096", "--state", "st", "lk"], "linux"),
    "prefix_new_disk": (["--disk", "size=2G", "lk"], "linux"),
    "prefix_existing_disk": (["--disk", "data.vmdk", "lk"], "linux"),
    "prefix_fusion": (["lk"], "darwin"),
    "prefix_workstation_windows": (["lk"], "win32"),
    "vmdk_file": (["lk.vmdk"], "linux"),
    "raw_converted": (["--disk", "file=new.vmdk,size=100M", "lk-bios.img"], "linux"),
    "qcow2_converted": (["lk.qcow2"], "linux"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_plan_matches_golden(case: str, images: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(images)
    argv, platform = CASES[case]
    check_golden("vmware", case, plan_vmware(options(*argv, platform=platform)), images)


def test_vmx_values_cannot_add_keys() -> None:
    """A name with a quote or a newline stays one value (VMware's ``|XX`` escapes)."""
    assert vmx_value('a"b|c\nd') == "a|22b|7Cc|0Ad"
    vmx = build_vmx('x"\nguestOS = "windows', 1, 512, Path("/b.vmdk"), None)
    assert [line.split(" = ")[0] for line in vmx.splitlines()].count("guestOS") == 1
    assert vmx.count("\n") == len(vmx.splitlines())


def test_plan_touches_nothing(images: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(images)
    before = sorted(p.name for p in images.iterdir())
    plan = plan_vmware(options("--disk", "size=1G", "lk-bios.img"))
    assert sorted(p.name for p in images.iterdir()) == before
    assert [type(s).__name__ for s in plan.steps] == [
        "MakeDir",
        "RemoveOnFailure",
        "ConvertDisk",
        "CreateDisk",
        "WriteFile",
        "Run",
    ]
    assert isinstance(plan.steps[-1], P.Run) and plan.steps[-1].argv[:4] == ("vmrun", "-T", "ws", "start")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--disk", "size=1G", "--disk", "size=2G", "lk"], "single --disk"),
        (["--disk", "size=1G,format=qcow2", "lk"], "only vmdk"),
        (["--disk", "missing.vmdk", "lk"], "does not exist"),
        (["nothing"], "nothing.vmdk does not exist"),
        (["lk.iso"], "not an ISO"),
        (["missing.img"], "no such image"),
        (["--mem", "0", "lk"], "must be positive"),
    ],
)
def test_bad_input_is_a_user_error(
    argv: list[str], message: str, images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(images)
    with pytest.raises(UserError, match=message):
        plan_vmware(options(*argv))


def test_missing_vmrun_is_a_user_error_before_anything_is_written(
    images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from linuxkit.run.vmware import run_vmware

    monkeypatch.chdir(images)
    monkeypatch.setenv("PATH", str(images / "no-bin"))
    with pytest.raises(UserError, match="vmrun cannot be found") as err:
        run_vmware(options("--disk", "size=1G", "lk"))
    assert err.value.hint and "VMware Workstation" in err.value.hint
    assert not (images / "lk-state").exists()
