"""``run vbox``'s whole plan for upstream's main flag combinations, against golden files
(``tests/unit/data/run_plans/vbox/``, whose README compares each with ``run_vbox.go``), and the checks
that refuse bad input before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from run_plan_golden import check_golden

from linuxkit.cli.main import _normalise_argv, build_parser
from linuxkit.errors import UserError
from linuxkit.run import plan as P
from linuxkit.run.disks import parse_disk
from linuxkit.run.vbox import VBoxOptions, parse_network, plan_vbox


def options(*argv: str) -> VBoxOptions:
    """The options ``linuxkit run vbox ARGV`` gives (through the real parser)."""
    args = build_parser().parse_args(_normalise_argv(["run", "vbox", *argv]))
    return VBoxOptions(
        path=args.path,
        cpus=args.cpus,
        mem=args.mem,
        disks=tuple(parse_disk(d) for d in args.disk),
        name=args.name,
        state=args.state,
        iso=args.iso,
        uefi=args.uefi,
        gui=args.gui,
        keep=args.keep,
        vboxmanage=args.vboxmanage,
        networks=tuple(parse_network(n) for n in args.networking),
    )


@pytest.fixture
def images(tmp_path: Path) -> Path:
    for name in ("lk.iso", "lk-efi.iso", "lk-bios.img", "lk.qcow2", "data.vdi", "bios-image"):
        (tmp_path / name).write_bytes(b"\0" * 4096)
    return tmp_path


CASES = {
    "iso": ["lk.iso"],
    "iso_efi_uefi": ["--uefi", "--cpus", "2", "--mem", "2048", "lk-efi.iso"],
    "iso_flag_on_other_name": ["--iso", "bios-image"],
    "raw_disk": ["lk-bios.img"],
    "qcow2_keep_gui_name_state": ["--keep", "--gui", "--name", "test vm", "--state", "st", "lk.qcow2"],
    "disks": ["--disk", "size=1G", "--disk", "file=data.vdi", "--disk", "new.vmdk,size=512M,format=vmdk", "lk.iso"],
    "disks_format_from_name": [
        "--disk",
        "a.vmdk,size=1G",
        "--disk",
        "b.vhd,size=1G",
        "--disk",
        "c.img,size=1G",
        "lk.iso",
    ],
    "networking": [
        "--networking",
        "nat",
        "--networking",
        "type=hostonly,hostadapter=vboxnet0",
        "--networking",
        "bridged,adapter=eth0",
        "--networking",
        "intnet",
        "lk.iso",
    ],
    "vboxmanage_path": ["--vboxmanage", "/opt/vbox/VBoxManage", "lk.iso"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_plan_matches_golden(case: str, images: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(images)
    check_golden("vbox", case, plan_vbox(options(*CASES[case])), images)


def test_plan_touches_nothing(images: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(images)
    before = sorted(p.name for p in images.iterdir())
    plan_vbox(options("--disk", "size=1G", "lk-bios.img"))
    assert sorted(p.name for p in images.iterdir()) == before


def test_every_cleanup_runs_at_the_end_unless_kept(images: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(images)
    plain = plan_vbox(options("--disk", "d.vdi,size=1G", "lk.iso")).steps
    kept = plan_vbox(options("--keep", "--disk", "d.vdi,size=1G", "lk.iso")).steps
    assert [s.argv[1] for s in plain if isinstance(s, P.RunAtEnd)] == [
        "unregistervm",
        "closemedium",
        "storagectl",
        "controlvm",
    ]
    # kept: powered off at the end, unregistered only when a step fails
    assert [s.argv[1] for s in kept if isinstance(s, P.RunAtEnd)] == ["controlvm"]
    assert [s.argv[1] for s in kept if isinstance(s, P.RunOnFailure)] == ["unregistervm", "closemedium", "storagectl"]
    # the --disk images are detached before --delete (handlers run newest first)
    order = [s.argv[1] for s in reversed(plain) if isinstance(s, P.RunAtEnd)]
    assert order.index("storagectl") < order.index("unregistervm")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--networking", "wifi", "lk.iso"], "unknown network type 'wifi'"),
        (["--networking", "nat,speed=1", "lk.iso"], "unknown network config: speed"),
        (["--networking", "bridged", "lk.iso"], "bridged needs an adapter"),
        (["--disk", "size=1G,format=raw", "lk.iso"], "creates vdi, vmdk or vhd"),
        (["--disk", "missing.vdi", "lk.iso"], "does not exist"),
        (["missing.iso"], "no such image"),
        (["lk.txt"], "boots an ISO or a disk image"),
        (["--cpus", "0", "lk.iso"], "must be positive"),
    ],
)
def test_bad_input_is_a_user_error(
    argv: list[str], message: str, images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(images)
    with pytest.raises(UserError, match=message):
        plan_vbox(options(*argv))


def test_long_state_path_is_refused(images: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(images)
    with pytest.raises(UserError, match="too long for a Unix socket"):
        plan_vbox(options("--state", "s" * 120, "lk.iso"))
