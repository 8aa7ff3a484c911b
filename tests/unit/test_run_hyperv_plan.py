"""``run hyperv``'s whole plan (every PowerShell cmdlet line, the VHDX conversion) for upstream's flag
combinations, against golden files (``tests/unit/data/run_plans/hyperv/``, whose README compares each
with ``run_hyperv.go``); quoting that keeps names data; the wrong-OS error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from run_plan_golden import check_golden

from linuxkit.cli.main import _normalise_argv, build_parser
from linuxkit.errors import UserError
from linuxkit.run import plan as P
from linuxkit.run.disks import parse_disk
from linuxkit.run.hyperv import HyperVOptions, plan_hyperv, ps_quote, run_hyperv


def options(*argv: str, cwd: Path) -> HyperVOptions:
    args = build_parser().parse_args(_normalise_argv(["run", "hyperv", *argv]))
    return HyperVOptions(
        path=args.path,
        cpus=args.cpus,
        mem=args.mem,
        disks=tuple(parse_disk(d) for d in args.disk),
        name=args.name,
        keep=args.keep,
        switch=args.switch,
        cwd=str(cwd),
    )


@pytest.fixture
def images(tmp_path: Path) -> Path:
    for name in ("linuxkit-efi.iso", "lk-efi.img", "lk-efi.qcow2", "lk.vhdx", "data.vhdx"):
        (tmp_path / name).write_bytes(b"\0" * 4096)
    return tmp_path


CASES = {
    "efi_iso": ["linuxkit-efi.iso"],
    "efi_iso_switch_name_keep": ["--switch", "External LAN", "--name", "my vm", "--keep", "linuxkit-efi.iso"],
    "efi_iso_cpus_mem_disks": [
        "--cpus",
        "2",
        "--mem",
        "2048",
        "--disk",
        "size=1",
        "--disk",
        "size=512M",
        "--disk",
        "data.vhdx",
        "linuxkit-efi.iso",
    ],
    "raw_efi_converted": ["lk-efi.img"],
    "qcow2_efi_converted": ["--disk", "size=1G", "lk-efi.qcow2"],
    "vhdx_as_is": ["lk.vhdx"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_plan_matches_golden(case: str, images: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(images)
    check_golden("hyperv", case, plan_hyperv(options(*CASES[case], cwd=images)), images)


def test_names_stay_data_in_powershell() -> None:
    assert ps_quote("a'b") == "'a''b'"
    assert ps_quote("x\u2019; Remove-VM *") == "'x\u2019\u2019; Remove-VM *'"  # a curly quote closes too
    assert ps_quote("$(evil)") == "'$(evil)'"  # single quotes expand nothing


def test_vm_is_removed_at_the_end_unless_kept(images: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(images)
    plain = plan_hyperv(options("linuxkit-efi.iso", cwd=images)).steps
    kept = plan_hyperv(options("--keep", "linuxkit-efi.iso", cwd=images)).steps
    assert [s.argv[-1].split()[0] for s in plain if isinstance(s, P.RunAtEnd)] == ["Remove-VM", "Stop-VM"]
    assert not [s for s in kept if isinstance(s, P.RunAtEnd)]
    assert [s.argv[-1].split()[0] for s in kept if isinstance(s, P.RunOnFailure)] == ["Remove-VM", "Stop-VM"]
    # an existing VM of that name is refused before anything is made (Remove-VM works by name)
    first_new = next(i for i, s in enumerate(plain) if isinstance(s, P.Run) and "New-VM" in s.argv[-1])
    assert any("exists already" in s.argv[-1] for s in plain[:first_new] if isinstance(s, P.Run))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["lk.txt"], "boots an EFI ISO or an EFI disk image"),
        (["missing-efi.iso"], "no such image"),
        (["--disk", "size=1G,format=qcow2", "linuxkit-efi.iso"], "vhdx"),
        (["--disk", "missing.vhdx", "linuxkit-efi.iso"], "does not exist"),
        (["--cpus", "0", "linuxkit-efi.iso"], "must be positive"),
    ],
)
def test_bad_input_is_a_user_error(
    argv: list[str], message: str, images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(images)
    (images / "lk.txt").write_text("x")
    with pytest.raises(UserError, match=message):
        plan_hyperv(options(*argv, cwd=images))


@pytest.mark.skipif(sys.platform == "win32", reason="the check is for other systems")
def test_other_systems_get_a_clear_error(images: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(images)
    with pytest.raises(UserError, match="needs Windows with Hyper-V") as err:
        run_hyperv(options("linuxkit-efi.iso", cwd=images))
    assert err.value.hint and "run qemu" in err.value.hint
