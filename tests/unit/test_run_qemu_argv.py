"""``run qemu``: flag parsing, boot detection and the qemu command line (pure parts)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from linuxkit.errors import UserError
from linuxkit.run import accel
from linuxkit.run.disks import DiskSpec, disk_size_mb, parse_disk, resolve_disks
from linuxkit.run.qemu import (
    Boot,
    PublishedPort,
    QemuConfig,
    check_ports_free,
    detect_boot,
    netdev_for,
    parse_publish,
    qemu_argv,
    state_mac,
)


def _kernel_cfg(tmp_path: Path, **kw: object) -> QemuConfig:
    boot = Boot("kernel", str(tmp_path / "vm"), str(tmp_path / "vm"))
    base: dict[str, object] = {
        "boot": boot,
        "state": tmp_path / "vm-state",
        "mem": 512,
        "accel": "tcg",
        "cmdline": "console=ttyS0",
        "netdev": "",
        "vm_uuid": "11111111-2222-3333-4444-555555555555",
    }
    base.update(kw)
    return QemuConfig(**base)  # type: ignore[arg-type]


def test_argv_matches_upstream_shape(tmp_path: Path) -> None:
    """Reference §11: upstream's command for ``--networking none --mem 512 --accel tcg`` (but q35's SATA
    controller, which nothing uses here, is left out: docs/compatibility.md)."""
    argv = qemu_argv("qemu-system-x86_64", _kernel_cfg(tmp_path))
    vm = str(tmp_path / "vm")
    assert argv == [
        "qemu-system-x86_64",
        "-smp", "1",
        "-m", "512",
        "-uuid", "11111111-2222-3333-4444-555555555555",
        "-pidfile", str(tmp_path / "vm-state" / "qemu.pid"),
        "-machine", "q35,sata=off,accel=tcg",
        "-object", "rng-random,id=rng0,filename=/dev/urandom",
        "-device", "virtio-rng-pci,rng=rng0",
        "-kernel", vm + "-kernel",
        "-initrd", vm + "-initrd.img",
        "-append", "console=ttyS0",
        "-net", "none",
        "-nographic",
    ]  # fmt: skip


def test_argv_user_networking_publish_disks_and_cds(tmp_path: Path) -> None:
    cfg = _kernel_cfg(
        tmp_path,
        netdev="user,id=t0",
        mac="02:00:00:00:00:01",
        publish=[PublishedPort(2222, 22), PublishedPort(5353, 53, "udp")],
        disks=[DiskSpec("a.qcow2", 1024, "qcow2"), DiskSpec("b.img")],
        isos=["data.iso"],
        extra_cmdline="quiet",
        usb=True,
        devices=["usb-tablet"],
        cpus=2,
    )
    argv = qemu_argv("qemu", cfg)
    joined = " ".join(argv)
    assert "-smp 2" in joined
    # virtio: the cloud kernel has no IDE/AHCI driver for q35's controller
    assert "-drive file=a.qcow2,format=qcow2,if=virtio,media=disk -drive file=b.img,if=virtio,media=disk" in joined
    assert "-device virtio-scsi-pci,id=scsi0" in joined
    assert "-drive file=data.iso,if=none,id=cd0,media=cdrom,readonly=on -device scsi-cd,drive=cd0,bus=scsi0.0" in joined
    assert "-cdrom" not in joined
    assert argv[argv.index("-append") + 1] == "console=ttyS0 quiet"
    assert "-device virtio-net-pci,netdev=t0,mac=02:00:00:00:00:01" in joined
    assert "-netdev user,id=t0,hostfwd=tcp::2222-:22,hostfwd=udp::5353-:53" in joined
    assert argv[-4:] == ["-nographic", "-usb", "-device", "usb-tablet"]


def test_argv_iso_boot_cdrom_and_data_cd_on_virtio_scsi(tmp_path: Path) -> None:
    cfg = _kernel_cfg(
        tmp_path,
        boot=Boot("iso", "x.iso", "x"),
        disks=[DiskSpec("d0"), DiskSpec("d1"), DiskSpec("d2")],
        isos=["x.iso", "data.iso"],
    )
    joined = " ".join(qemu_argv("qemu", cfg))
    assert "file=d2,if=virtio,media=disk" in joined
    assert "-boot d -cdrom x.iso -device virtio-scsi-pci,id=scsi0 -drive file=data.iso,if=none,id=cd0" in joined
    assert "-kernel" not in joined and "-append" not in joined
    # the boot ISO's -cdrom sits on q35's SATA controller
    assert "-machine q35,accel=tcg " in joined


def test_sata_stays_for_user_devices(tmp_path: Path) -> None:
    cfg = _kernel_cfg(tmp_path)
    cfg.devices = ["ide-hd,drive=x"]
    assert "q35,accel=tcg" in qemu_argv("qemu", cfg)


def test_argv_squashfs_uefi_and_uki(tmp_path: Path) -> None:
    sq = qemu_argv("q", _kernel_cfg(tmp_path, boot=Boot("squashfs", "p", "p")))
    assert sq[sq.index("-append") + 1] == "console=ttyS0 root=/dev/sda" and "-initrd" not in sq
    uki = qemu_argv("q", _kernel_cfg(tmp_path, boot=Boot("uki", "a.efi", "a", True), firmware="/fw.fd", cmdline=None))
    assert "if=pflash,format=raw,file=/fw.fd" in uki and uki[uki.index("-kernel") + 1] == "a.efi"
    assert "-append" not in uki


def test_argv_gui_and_foreign_arch(tmp_path: Path) -> None:
    assert "-nographic" not in qemu_argv("q", _kernel_cfg(tmp_path, gui=True))
    arm = qemu_argv("q", _kernel_cfg(tmp_path, arch="aarch64", accel="tcg"))
    assert arm[arm.index("-cpu") + 1] == "cortex-a57" and arm[arm.index("-machine") + 1] == "virt,accel=tcg"


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("8080:80", PublishedPort(8080, 80)),
        ("53:53/UDP", PublishedPort(53, 53, "udp")),
        ("1:2/tcp", PublishedPort(1, 2, "tcp")),
        ("10:20:30", PublishedPort(10, 20)),  # upstream ignores what follows a second colon
    ],
)
def test_parse_publish(value: str, want: PublishedPort) -> None:
    assert parse_publish(value) == want


@pytest.mark.parametrize("value", ["80", "a:80", "80:b", "0:80", "80:70000", "80:80/sctp", ""])
def test_parse_publish_rejects(value: str) -> None:
    with pytest.raises(UserError) as err:
        parse_publish(value)
    assert err.value.exit_code == 2


def test_busy_port_is_refused() -> None:
    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UserError, match=f"port {port}: already in use"):
            check_ports_free([PublishedPort(port, 22)])
    check_ports_free([PublishedPort(port, 22)])  # free again once closed


def test_parse_disk_and_defaults(tmp_path: Path) -> None:
    assert parse_disk("d.img") == DiskSpec("d.img")
    assert parse_disk("file=x,size=2G,format=raw") == DiskSpec("x", 2048, "raw")
    assert parse_disk("size=512M") == DiskSpec("", 512, "")
    assert disk_size_mb("3") == 3072
    resolved = resolve_disks([DiskSpec(size_mb=10), DiskSpec(size_mb=20), DiskSpec("y")], tmp_path)
    assert resolved == [
        DiskSpec(str(tmp_path / "disk.img"), 10, "qcow2"),
        DiskSpec(str(tmp_path / "disk1.img"), 20, "qcow2"),
        DiskSpec("y"),
    ]
    for bad in ("x,colour=red", "x,size=big"):
        with pytest.raises(UserError):
            parse_disk(bad)
    with pytest.raises(UserError, match="no size or name"):
        resolve_disks([DiskSpec(format="raw")], tmp_path)


def test_detect_boot(tmp_path: Path) -> None:
    p = str(tmp_path / "vm")
    with pytest.raises(UserError, match="nothing to boot"):
        detect_boot(p, kernel=False, iso=False, squashfs=False, uefi=False)
    Path(p + "-kernel").touch()
    assert detect_boot(p, kernel=False, iso=False, squashfs=False, uefi=False).kind == "kernel"
    Path(p + "-squashfs.img").touch()
    assert detect_boot(p, kernel=False, iso=False, squashfs=False, uefi=False).kind == "squashfs"
    for name, kind, prefix, uefi in [
        ("a.iso", "iso", "a", False),
        ("b-efi.iso", "iso", "b-efi", True),
        ("c.qcow2", "disk", "c", False),
        ("d-efi.img", "disk", "d-efi", True),
        ("e.efi", "uki", "e", True),
    ]:
        f = tmp_path / name
        f.touch()
        boot = detect_boot(str(f), kernel=False, iso=False, squashfs=False, uefi=False)
        assert (boot.kind, boot.prefix, boot.uefi) == (kind, str(tmp_path / prefix), uefi)


def test_networking_modes() -> None:
    assert netdev_for("user", []) == "user,id=t0"
    assert netdev_for("default", []) == "user,id=t0"
    assert netdev_for("none", []) == ""
    assert netdev_for("tap,tap0", []) == "tap,id=t0,ifname=tap0,script=no,downscript=no"
    assert netdev_for("bridge,br0", []) == "bridge,id=t0,br=br0"
    for bad, pub in [("tap", []), ("wifi", []), ("none", [PublishedPort(1, 1)])]:
        with pytest.raises(UserError):
            netdev_for(bad, pub)


def test_mac_is_kept_in_state(tmp_path: Path) -> None:
    mac = state_mac(tmp_path)
    first = int(mac.split(":")[0], 16)
    assert first & 1 == 0 and first & 2 == 2
    assert state_mac(tmp_path) == mac
    (tmp_path / "mac-addr").write_text("nonsense")
    with pytest.raises(UserError):
        state_mac(tmp_path)


def test_accel_choice_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accel, "kvm_works", lambda qemu: False)
    host = accel.host_arch()
    assert accel.choose_accel("kvm", "q", host, env={accel.ENV_ACCEL: "hvf"}) == "kvm"
    assert accel.choose_accel(None, "q", host, env={accel.ENV_ACCEL: "hvf"}) == "hvf"
    assert accel.choose_accel(None, "q", host, env={}) == "tcg"
    monkeypatch.setattr(accel, "kvm_works", lambda qemu: True)
    assert accel.choose_accel(None, "q", host, env={}) == "kvm"
    assert accel.choose_accel("kvm", "q", "s390x" if host != "s390x" else "x86_64", env={}) == "tcg"


def test_probe_image_layout() -> None:
    image = accel.probe_image()
    assert len(image) == 64 << 10
    assert image[0xFFF0] == 0xEA  # far jump at the reset vector
    assert image[:1] == b"\xfa"  # cli
    assert b"\xe6\xf4" in image  # out 0xf4, al


def test_kvm_probe_result_is_cached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(accel.os, "access", lambda path, mode: True)
    monkeypatch.setattr(accel, "_cache_key", lambda qemu: "key-" + qemu)
    calls: list[str] = []

    def probe(qemu: str, accel_name: str = "kvm", timeout: float = 0) -> bool:
        calls.append(qemu)
        return qemu == "good"

    monkeypatch.setattr(accel, "run_probe", probe)
    assert accel.kvm_works("good") is True
    assert accel.kvm_works("good") is True
    assert accel.kvm_works("bad") is False
    assert accel.kvm_works("bad") is False
    assert calls == ["good", "bad"]


def _fake_qemu(tmp_path: Path, script: str) -> str:
    fake = tmp_path / "qemu-system-x86_64"
    fake.write_text("#!/bin/sh\n" + script + "\n")
    fake.chmod(0o755)
    return str(fake)


def test_probe_passes_on_the_debug_exit_code(tmp_path: Path) -> None:
    assert accel.run_probe(_fake_qemu(tmp_path, "exit 3"), timeout=10) is True
    assert accel.run_probe(_fake_qemu(tmp_path, "exit 1"), timeout=10) is False


def test_probe_of_a_hanging_qemu_fails_at_its_timeout(tmp_path: Path) -> None:
    began = time.monotonic()
    assert accel.run_probe(_fake_qemu(tmp_path, "exec sleep 30"), timeout=0.3) is False
    assert time.monotonic() - began < 5


def test_probe_of_a_missing_qemu_fails(tmp_path: Path) -> None:
    assert accel.run_probe(str(tmp_path / "no-qemu"), timeout=1) is False


def _sector17(path: Path, record: bytes) -> None:
    with open(path, "wb") as fh:
        fh.seek(17 * 2048)
        fh.write(record.ljust(2048, b"\0"))


def test_detect_root_image_boots(tmp_path: Path) -> None:
    def kind(p: str) -> tuple[str, bool]:
        boot = detect_boot(p, kernel=False, iso=False, squashfs=False, uefi=False)
        return boot.kind, boot.loader

    erofs = str(tmp_path / "e")
    Path(erofs + "-kernel").touch()
    Path(erofs + "-erofs.img").touch()
    assert kind(erofs) == ("erofs", False)
    Path(erofs + "-initrd.img").touch()
    assert kind(erofs) == ("erofs", True)
    # a kernel+iso root image has no El Torito boot record; a boot CD next to a kernel+initrd does
    kiso = str(tmp_path / "k")
    Path(kiso + "-kernel").touch()
    Path(kiso + "-initrd.img").touch()
    _sector17(Path(kiso + ".iso"), b"\x01CD001\x01")
    assert kind(kiso) == ("kernel-iso", True)
    _sector17(Path(kiso + ".iso"), b"\x00CD001\x01EL TORITO SPECIFICATION")
    assert kind(kiso) == ("kernel", False)
    # --squashfs names the kind outright; the loader is used when it is there
    assert detect_boot(kiso, kernel=False, iso=False, squashfs=True, uefi=False).loader


def test_argv_root_images_with_loader(tmp_path: Path) -> None:
    p = str(tmp_path / "vm")
    for kind, root in (("squashfs", "/dev/vda"), ("erofs", "/dev/vda"), ("kernel-iso", "/dev/sr0")):
        args = qemu_argv("q", _kernel_cfg(tmp_path, boot=Boot(kind, p, p, loader=True)))
        assert args[args.index("-initrd") + 1] == p + "-initrd.img"
        assert args[args.index("-append") + 1] == f"console=ttyS0 root={root}"
    bare = qemu_argv("q", _kernel_cfg(tmp_path, boot=Boot("erofs", p, p)))
    assert "-initrd" not in bare and bare[bare.index("-append") + 1] == "console=ttyS0 root=/dev/vda"
    # the kernel+iso root image is the first virtio-scsi CD (the loader looks for /dev/sr0)
    cd = qemu_argv("q", _kernel_cfg(tmp_path, boot=Boot("kernel-iso", p, p, loader=True), isos=[p + ".iso", "d.iso"]))
    joined = " ".join(cd)
    assert f"-device virtio-scsi-pci,id=scsi0 -drive file={p}.iso,if=none,id=cd0,media=cdrom,readonly=on" in joined
    assert "-drive file=d.iso,if=none,id=cd1" in joined and "-cdrom" not in cd


def _qemu_opts(value: str) -> list[tuple[str, str]]:
    """Split an option string as qemu's QemuOpts parser does: ``,`` separates, ``,,`` is a comma.
    (A first part without ``=`` is the implied key: ``virtio-net-pci``, ``user``.)"""
    parts, current, i = [], "", 0
    while i < len(value):
        if value[i] == ",":
            if value[i + 1 : i + 2] == ",":
                current += ","
                i += 2
                continue
            parts.append(current)
            current = ""
        else:
            current += value[i]
        i += 1
    parts.append(current)
    return [(k, v) for k, _, v in (p.partition("=") for p in parts)]


def test_commas_in_paths_cannot_add_qemu_options(tmp_path: Path) -> None:
    """A disk, state dir, ISO or firmware path with commas stays one file name in every option string
    (qemu doubles commas to escape them); a protocol-looking relative name gets ``./``."""
    hostile = "disk,if=none,file=/etc/shadow,format=raw"
    state = tmp_path / "st,file=/etc/passwd"
    cfg = _kernel_cfg(
        tmp_path,
        boot=Boot("iso", "boot,file=/x.iso", "boot", uefi=True),
        state=state,
        disks=[DiskSpec(hostile), DiskSpec(str(state / "disk.img"), 1024, "qcow2"), DiskSpec("nbd:host:10809")],
        isos=["boot,file=/x.iso", str(state / "data.iso")],
        firmware=str(state / "fw-OVMF.fd"),
        netdev=netdev_for("tap,tap0,script=/tmp/evil", []),
        mac="02:00:00:00:00:01",
    )
    argv = qemu_argv("qemu", cfg)
    drives = [_qemu_opts(argv[i + 1]) for i, a in enumerate(argv) if a == "-drive"]
    files = [dict(d)["file"] for d in drives]
    for d in drives:
        assert [k for k, _ in d].count("file") == 1, d
    assert files == [
        hostile,
        str(state / "disk.img"),
        "./nbd:host:10809",
        str(state / "data.iso"),
        str(state / "fw-OVMF.fd"),
    ]
    assert dict(drives[0]) == {"file": hostile, "if": "virtio", "media": "disk"}
    assert dict(drives[-1]) == {"if": "pflash", "format": "raw", "file": str(state / "fw-OVMF.fd")}
    assert argv[argv.index("-drive") + 1] == "file=disk,,if=none,,file=/etc/shadow,,format=raw,if=virtio,media=disk"
    # options taken whole are not escaped (qemu would look for a file with doubled commas)
    assert argv[argv.index("-cdrom") + 1] == "boot,file=/x.iso"
    assert argv[argv.index("-pidfile") + 1] == str(state / "qemu.pid")
    netdev = _qemu_opts(argv[argv.index("-netdev") + 1])
    assert dict(netdev)["ifname"] == "tap0,script=/tmp/evil" and dict(netdev)["script"] == "no"
    assert [k for k, _ in netdev].count("script") == 1


def test_qemu_img_gets_the_disk_name_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from linuxkit.run import disks

    calls: list[list[str]] = []
    monkeypatch.setattr(disks, "find_tool", lambda name: name)
    monkeypatch.setattr(disks, "run", lambda argv, **kw: calls.append(argv))
    disks.create_missing([DiskSpec(str(tmp_path / "a,b.qcow2"), 16, "qcow2"), DiskSpec("json:{}", 16, "raw")])
    assert calls == [
        ["qemu-img", "create", "-f", "qcow2", str(tmp_path / "a,b.qcow2"), "16M"],
        ["qemu-img", "create", "-f", "raw", "./json:{}", "16M"],
    ]
