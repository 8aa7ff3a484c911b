"""``run qemu --arch aarch64 --uefi``: AAVMF as two pflash units (the code read-only, the VM's own copy
of the variable store), how the firmware is found, and the boot ISO on virtio-scsi (``virt`` has no
IDE controller for ``-cdrom``); x86's command lines stay as they were."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from linuxkit.errors import UserError
from linuxkit.run import qemu
from linuxkit.run.qemu import Boot, QemuConfig, RunOptions, find_aavmf, prepare, qemu_argv


def _cfg(tmp_path: Path, boot: Boot, **kw: object) -> QemuConfig:
    base: dict[str, object] = {
        "boot": boot,
        "state": tmp_path / "st",
        "arch": "aarch64",
        "accel": "tcg",
        "netdev": "",
        "vm_uuid": "11111111-2222-3333-4444-555555555555",
        "firmware": "/fw/AAVMF_CODE.fd",
        "firmware_vars": str(tmp_path / "st" / "fw-AAVMF_VARS.fd"),
    }
    base.update(kw)
    return QemuConfig(**base)  # type: ignore[arg-type]


def _drives(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]


def test_uki_boots_with_code_read_only_and_private_vars(tmp_path: Path) -> None:
    argv = qemu_argv("qemu-system-aarch64", _cfg(tmp_path, Boot("uki", "a.efi", "a", True)))
    assert _drives(argv) == [
        "if=pflash,format=raw,readonly=on,file=/fw/AAVMF_CODE.fd",
        f"if=pflash,format=raw,file={tmp_path}/st/fw-AAVMF_VARS.fd",
    ]
    assert argv[argv.index("-kernel") + 1] == "a.efi"
    assert "-cdrom" not in argv and "-boot" not in argv


def test_iso_boots_from_the_first_cd_on_virtio_scsi(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, Boot("iso", "a-efi.iso", "a-efi", True), isos=["a-efi.iso", "/st/data.iso"])
    argv = qemu_argv("qemu-system-aarch64", cfg)
    assert "-cdrom" not in argv and "-boot" not in argv
    at = argv.index("virtio-scsi-pci,id=scsi0")
    assert argv[at + 1 : at + 9] == [
        "-drive", "file=a-efi.iso,if=none,id=cd0,media=cdrom,readonly=on",
        "-device", "scsi-cd,drive=cd0,bus=scsi0.0",
        "-drive", "file=/st/data.iso,if=none,id=cd1,media=cdrom,readonly=on",
        "-device", "scsi-cd,drive=cd1,bus=scsi0.0",
    ]  # fmt: skip
    # the firmware comes after the CDs, as x86's
    assert argv.index("if=pflash,format=raw,readonly=on,file=/fw/AAVMF_CODE.fd") > at


def test_x86_iso_and_firmware_are_unchanged(tmp_path: Path) -> None:
    cfg = _cfg(
        tmp_path,
        Boot("iso", "a-efi.iso", "a-efi", True),
        arch="x86_64",
        isos=["a-efi.iso", "/st/data.iso"],
        firmware="/st/fw-OVMF.fd",
        firmware_vars="",
    )
    argv = qemu_argv("qemu-system-x86_64", cfg)
    assert argv[argv.index("-boot") + 1] == "d" and argv[argv.index("-cdrom") + 1] == "a-efi.iso"
    assert _drives(argv) == [
        "file=/st/data.iso,if=none,id=cd0,media=cdrom,readonly=on",
        "if=pflash,format=raw,file=/st/fw-OVMF.fd",
    ]


def _firmware(folder: Path, code: str = "AAVMF_CODE.fd", template: str = "AAVMF_VARS.fd") -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / code).write_bytes(b"code" * 1024)
    (folder / template).write_bytes(b"vars" * 1024)
    return folder / code, folder / template


def test_find_aavmf_default_explicit_and_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, template = _firmware(tmp_path / "aavmf")
    other_code, other_template = _firmware(tmp_path / "qemu", "edk2-aarch64-code.fd", "edk2-arm-vars.fd")
    missing = (str(tmp_path / "none" / other_code.name), str(tmp_path / "none" / other_template.name))
    monkeypatch.setattr(qemu, "AAVMF_PATHS", (missing, (str(code), str(template))))
    assert find_aavmf("") == (str(code), str(template))  # the first pair installed
    # --fw names the code; its variable store is the one beside it: a known pair's (qemu's own edk2
    # names them differently), or ..VARS.. for ..CODE..
    assert find_aavmf(str(other_code)) == (str(other_code), str(other_template))
    renamed_code, renamed_template = _firmware(tmp_path / "mine", "MY_CODE.fd", "MY_VARS.fd")
    assert find_aavmf(str(renamed_code)) == (str(renamed_code), str(renamed_template))
    # without one beside it, the installed template
    lone = tmp_path / "lone" / "MY_CODE.fd"
    lone.parent.mkdir()
    lone.write_bytes(b"x")
    assert find_aavmf(str(lone)) == (str(lone), str(template))
    with pytest.raises(UserError, match="does not exist") as err:
        find_aavmf(str(tmp_path / "nope.fd"))
    assert "qemu-efi-aarch64" in (err.value.hint or "")
    monkeypatch.setattr(qemu, "AAVMF_PATHS", (missing,))
    with pytest.raises(UserError, match="needs AAVMF firmware") as err:
        find_aavmf("")
    assert "apt-get install qemu-efi-aarch64" in (err.value.hint or "")
    with pytest.raises(UserError, match="no UEFI variable store"):
        find_aavmf(str(lone))


def test_prepare_copies_only_the_variable_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, template = _firmware(tmp_path / "aavmf")
    monkeypatch.setattr(qemu, "AAVMF_PATHS", ((str(code), str(template)),))
    uki = tmp_path / "vm.efi"
    uki.write_bytes(b"MZ")
    opts = RunOptions(path=str(uki), qemu=sys.executable, accel="tcg", arch="aarch64", networking="none")
    _, cfg = prepare(opts)
    state = tmp_path / "vm-state"
    assert cfg.firmware == str(code) and cfg.firmware_vars == str(state / "fw-AAVMF_VARS.fd")
    assert (state / "fw-AAVMF_VARS.fd").read_bytes() == template.read_bytes()
    assert sorted(p.name for p in state.iterdir()) == ["fw-AAVMF_VARS.fd"]
    # the VM's variables survive a second run (the copy is not made again)
    (state / "fw-AAVMF_VARS.fd").write_bytes(b"written by the firmware")
    _, again = prepare(opts)
    assert Path(again.firmware_vars).read_bytes() == b"written by the firmware"


def test_prepare_x86_keeps_one_ovmf_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ovmf = tmp_path / "OVMF.fd"
    ovmf.write_bytes(b"ovmf")
    uki = tmp_path / "vm.efi"
    uki.write_bytes(b"MZ")
    opts = RunOptions(path=str(uki), qemu=sys.executable, accel="tcg", arch="x86_64", networking="none", fw=str(ovmf))
    _, cfg = prepare(opts)
    assert cfg.firmware == str(tmp_path / "vm-state" / "fw-OVMF.fd") and cfg.firmware_vars == ""
