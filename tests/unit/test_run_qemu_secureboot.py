"""``run qemu --secure-boot``: the firmware chosen, the machine (x86: q35 with SMM and a secure flash),
the variable store (Microsoft's copied, or one per enrolled certificate) and the flag rules. The real
enrolment and boots are in tests/integration/test_secure_boot.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from linuxkit.cli.main import build_parser
from linuxkit.errors import UserError
from linuxkit.run import secureboot
from linuxkit.run.qemu import Boot, QemuConfig, RunOptions, prepare, qemu_argv
from linuxkit.run.secureboot import OWNER_GUID, SecureFirmware, enroll_argv


def _firmware(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SecureFirmware:
    folder = tmp_path / "fw"
    folder.mkdir()
    for name, data in (("CODE.secboot.fd", b"code"), ("VARS.fd", b"empty"), ("VARS.ms.fd", b"microsoft")):
        (folder / name).write_bytes(data * 256)
    fw = SecureFirmware(str(folder / "CODE.secboot.fd"), str(folder / "VARS.fd"), str(folder / "VARS.ms.fd"), "ovmf")
    monkeypatch.setitem(secureboot.FIRMWARE, "x86_64", fw)
    monkeypatch.setitem(secureboot.FIRMWARE, "aarch64", fw._replace(package="qemu-efi-aarch64"))
    return fw


def _uki(tmp_path: Path) -> str:
    uki = tmp_path / "vm.efi"
    uki.write_bytes(b"MZ")
    return str(uki)


def _opts(path: str, **kw: object) -> RunOptions:
    base: dict[str, object] = {"path": path, "qemu": sys.executable, "accel": "tcg", "networking": "none"}
    base.update(kw)
    return RunOptions(**base)  # type: ignore[arg-type]


def test_x86_secure_boot_argv_has_smm_secure_flash_and_split_firmware(tmp_path: Path) -> None:
    cfg = QemuConfig(
        boot=Boot("uki", "a.efi", "a", True),
        state=tmp_path,
        arch="x86_64",
        accel="tcg",
        netdev="",
        vm_uuid="u",
        firmware="/fw/OVMF_CODE_4M.secboot.fd",
        firmware_vars="/st/vars.fd",
        secure_boot=True,
    )
    argv = qemu_argv("qemu-system-x86_64", cfg)
    machine = argv.index("-machine")
    assert argv[machine + 1] == "q35,sata=off,smm=on,accel=tcg"
    assert argv[machine + 2 : machine + 4] == ["-global", "driver=cfi.pflash01,property=secure,value=on"]
    drives = [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]
    assert drives == [
        "if=pflash,format=raw,readonly=on,file=/fw/OVMF_CODE_4M.secboot.fd",
        "if=pflash,format=raw,file=/st/vars.fd",
    ]
    assert argv[argv.index("-kernel") + 1] == "a.efi"
    # without --secure-boot: no SMM, no secure flash
    plain = qemu_argv("qemu-system-x86_64", QemuConfig(**{**cfg.__dict__, "secure_boot": False}))
    assert "-global" not in plain and "smm=on" not in plain[plain.index("-machine") + 1]


def test_aarch64_secure_boot_needs_no_smm(tmp_path: Path) -> None:
    cfg = QemuConfig(
        boot=Boot("disk", "a-efi.img", "a-efi", True),
        state=tmp_path,
        arch="aarch64",
        accel="tcg",
        netdev="",
        vm_uuid="u",
        firmware="/fw/AAVMF_CODE.fd",
        firmware_vars="/st/vars.fd",
        secure_boot=True,
    )
    argv = qemu_argv("qemu-system-aarch64", cfg)
    assert argv[argv.index("-machine") + 1] == "virt,accel=tcg" and "-global" not in argv


def test_prepare_enrolled_store_per_certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fw = _firmware(tmp_path, monkeypatch)
    calls: list[list[str]] = []

    class Done:
        returncode = 0
        stderr = b""

    def fake_run(argv: list[str], **kw: object) -> Done:
        calls.append(argv)
        Path(argv[argv.index("--output") + 1]).write_bytes(b"enrolled")
        return Done()

    monkeypatch.setattr(secureboot, "run", fake_run)
    cert = tmp_path / "db.crt"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    _, cfg = prepare(_opts(_uki(tmp_path), secure_boot=True, secure_boot_cert=str(cert)))
    assert cfg.secure_boot and cfg.firmware == fw.code
    store = Path(cfg.firmware_vars)
    assert store.parent == tmp_path / "vm-state" and store.name.startswith("fw-secureboot-")
    assert store.read_bytes() == b"enrolled" and len(calls) == 1
    assert calls[0][calls[0].index("--input") + 1] == fw.empty_vars
    # the store is kept (the firmware's boot entries survive); another certificate gets its own
    _, again = prepare(_opts(_uki(tmp_path), secure_boot=True, secure_boot_cert=str(cert)))
    assert again.firmware_vars == str(store) and len(calls) == 1
    cert.write_text("-----BEGIN CERTIFICATE-----\nother\n")
    _, other = prepare(_opts(_uki(tmp_path), secure_boot=True, secure_boot_cert=str(cert)))
    assert other.firmware_vars != str(store) and len(calls) == 2
    assert not list((tmp_path / "vm-state").glob(".*partial"))


def test_prepare_failed_enrolment_is_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _firmware(tmp_path, monkeypatch)

    class Failed:
        returncode = 1
        stderr = b"Traceback...\nValueError: Unable to load certificate\n"

    def fake_run(argv: list[str], **kw: object) -> Failed:
        Path(argv[argv.index("--output") + 1]).write_bytes(b"half")
        return Failed()

    monkeypatch.setattr(secureboot, "run", fake_run)
    bad = tmp_path / "bad.crt"
    bad.write_text("not a certificate")
    with pytest.raises(UserError, match="Unable to load certificate") as err:
        prepare(_opts(_uki(tmp_path), secure_boot=True, secure_boot_cert=str(bad)))
    assert "--sign-cert" in (err.value.hint or "")
    assert sorted(p.name for p in (tmp_path / "vm-state").iterdir()) == []


def test_prepare_default_store_is_microsofts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fw = _firmware(tmp_path, monkeypatch)
    _, cfg = prepare(_opts(_uki(tmp_path), secure_boot=True))
    assert Path(cfg.firmware_vars).read_bytes() == Path(fw.ms_vars).read_bytes()
    assert Path(cfg.firmware_vars).name == "fw-VARS.ms.fd"
    # --fw replaces the code only
    code = tmp_path / "mine.fd"
    code.write_bytes(b"c")
    _, mine = prepare(_opts(_uki(tmp_path), secure_boot=True, fw=str(code), arch="aarch64"))
    assert mine.firmware == str(code) and mine.arch == "aarch64"


def test_secure_boot_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fw = _firmware(tmp_path, monkeypatch)
    uki = _uki(tmp_path)
    with pytest.raises(UserError, match="--secure-boot-cert goes with --secure-boot"):
        prepare(_opts(uki, secure_boot_cert="db.crt"))
    (tmp_path / "k-kernel").write_bytes(b"k")
    (tmp_path / "k-initrd.img").write_bytes(b"i")
    with pytest.raises(UserError, match="not a kernel boot") as err:
        prepare(_opts(str(tmp_path / "k"), secure_boot=True, uefi=True))
    assert "X.efi" in (err.value.hint or "")
    disk = tmp_path / "bios.img"
    disk.write_bytes(b"\0" * 512)
    with pytest.raises(UserError, match="not a disk boot"):  # a BIOS disk: no --uefi, not -efi
        prepare(_opts(str(disk), secure_boot=True))
    with pytest.raises(UserError, match="not available on s390x"):
        prepare(_opts(uki, secure_boot=True, arch="s390x"))
    Path(fw.ms_vars).unlink()
    with pytest.raises(UserError, match="does not exist") as err:
        prepare(_opts(uki, secure_boot=True))
    assert "apt-get install ovmf" in (err.value.hint or "")


def test_enroll_argv_sets_pk_kek_db_and_secure_boot() -> None:
    argv = enroll_argv("/t/VARS.fd", "db.crt", "/st/out.fd", python="/py")
    assert argv[:3] == ["/py", "-m", "virt.firmware.vars"]
    assert argv[3:] == [
        "--input", "/t/VARS.fd", "--output", "/st/out.fd",
        "--delete", "PK", "--delete", "KEK", "--delete", "db",  # a template's own keys (Microsoft's) go first
        "--set-pk", OWNER_GUID, "db.crt", "--add-kek", OWNER_GUID, "db.crt", "--add-db", OWNER_GUID, "db.crt",
        "--secure-boot",
    ]  # fmt: skip


def test_aarch64_enrols_into_microsofts_store() -> None:
    """Debian's AAVMF_VARS.fd is all zeros (no variable store for virt-fw-vars): aarch64 enrols into the
    Microsoft store, whose PK, KEK and db :func:`enroll_argv` deletes first; x86 into the empty store."""
    arm, x86 = secureboot.FIRMWARE["aarch64"], secureboot.FIRMWARE["x86_64"]
    assert arm.enroll_template == arm.ms_vars == "/usr/share/AAVMF/AAVMF_VARS.ms.fd"
    assert x86.enroll_template == x86.empty_vars == "/usr/share/OVMF/OVMF_VARS_4M.fd"
    if Path(arm.empty_vars).is_file():
        with open(arm.empty_vars, "rb") as fh:
            assert not fh.read(4096).strip(b"\0")  # what made the template change: nothing to enrol into


def test_run_qemu_flags() -> None:
    args = build_parser(lazy=False).parse_args(
        ["run", "qemu", "--secure-boot", "--secure-boot-cert", "db.crt", "--uefi", "x-efi.img"]
    )
    assert args.secure_boot is True and args.secure_boot_cert == "db.crt"
    plain = build_parser(lazy=False).parse_args(["run", "qemu", "x.efi"])
    assert plain.secure_boot is False and plain.secure_boot_cert == ""
