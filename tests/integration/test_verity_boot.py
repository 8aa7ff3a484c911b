"""build --verity for real: examples/minimal.yml as kernel+squashfs and kernel+erofs with a dm-verity hash
tree (Debian's veritysetup), built twice (identical bytes), the tree checked by ``veritysetup verify``, and
booted by ``linuxkit run qemu`` (TCG): the root loader (dm_verity + Debian's dmsetup) verifies the root
and the system reaches its onboot marker. One byte flipped in the image's data area (not the tree): the
console shows the kernel's and the loader's verity errors, the guest powers off and the marker never
appears. A root hash on the command line with a loader built without --verity, or with an image that has
no tree, is refused the same way (never a fallback to the unverified disk). arm64: built and booted
(run qemu --arch aarch64), a flipped byte refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.bootkit import boot_argv, stop_qemu
from tests.conftest import ROOT

from linuxkit.formats.verity import BLOCK, parse_cmdline

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLE = ROOT / "examples" / "minimal.yml"
MARKER = "hello from an onboot container"
#: TCG on a busy 2-core machine: the boot to the marker takes ~15 s when the machine is quiet
BOOT_TIMEOUT = 600.0
IMAGES = {"kernel+squashfs": "m-squashfs.img", "kernel+erofs": "m-erofs.img"}


def _env(cache: Path) -> dict[str, str]:
    debs = Path(os.environ.get("LINUXKIT_TEST_CACHE", Path.home() / ".cache" / "linuxkit-tests")) / "debian"
    env = {**os.environ, "LINUXKIT_CACHE": str(cache), "LINUXKIT_DEBIAN_CACHE": str(debs), "COLUMNS": "200"}
    env.pop("SOURCE_DATE_EPOCH", None)
    return env


def _lk(
    cache: Path, *args: str | os.PathLike[str], check: bool = True, epoch: str = ""
) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(
        [sys.executable, "-m", "linuxkit.cli.main", *map(str, args)],
        capture_output=True,
        env={**_env(cache), **({"SOURCE_DATE_EPOCH": epoch} if epoch else {})},
        timeout=1800,
        check=False,
    )
    if check:
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-4000:]
    return proc


class Built:
    """``squashfs`` and ``again`` (the same build twice), ``erofs``, ``plain`` (kernel+squashfs without
    --verity): directories holding ``m-kernel``, ``m-cmdline``, ``m-initrd.img`` and the root image."""

    def __init__(self, root: Path) -> None:
        self.cache = root / "cache"
        self.root = root
        self.dirs: dict[str, Path] = {}
        for name, fmt, verity in (
            ("squashfs", "kernel+squashfs", True),
            ("again", "kernel+squashfs", True),
            ("erofs", "kernel+erofs", True),
            ("plain", "kernel+squashfs", False),
        ):
            out = self.dirs[name] = root / name
            _lk(self.cache, "build", "-f", fmt, "--name", "m", "--dir", out, *(["--verity"] if verity else []), EXAMPLE)

    def copy(self, name: str, to: str) -> Path:
        dest = self.root / to
        shutil.copytree(self.dirs[name], dest)
        return dest


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    missing = [t for t in ("qemu-system-x86_64", "veritysetup", "tar2sqfs", "mkfs.erofs") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing: {missing} (scripts/setup installs them)")
    return Built(tmp_path_factory.mktemp("verity"))


def _run_qemu(out: Path, arch: str = "x86_64", image: str = "m", extra: tuple[str, ...] = ()) -> list[str]:
    return [
        *(sys.executable, "-m", "linuxkit.cli.main", "run", "qemu", "--arch", arch, "--networking", "none"),
        *("--accel", "tcg", *extra, "--state", str(out / "m-state"), str(out / image)),
    ]


def _boot_to_marker(out: Path, arch: str = "x86_64", image: str = "m", extra: tuple[str, ...] = ()) -> str:
    try:
        return boot_argv(_run_qemu(out, arch, image, extra), MARKER, timeout=BOOT_TIMEOUT)
    finally:
        stop_qemu(out / "m-state" / "qemu.pid")


def _boot_until_power_off(out: Path, arch: str = "x86_64", image: str = "m", extra: tuple[str, ...] = ()) -> str:
    """A boot that must end by itself (the loader powers the guest off): the whole console."""
    start = time.monotonic()
    argv = _run_qemu(out, arch, image, extra)
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=BOOT_TIMEOUT, check=False)
    finally:
        stop_qemu(out / "m-state" / "qemu.pid")
    print(f"refused boot took {time.monotonic() - start:.1f}s")
    return proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")


def test_verity_builds_are_identical_and_the_tree_verifies(built: Built) -> None:
    for fmt, image in IMAGES.items():
        out = built.dirs["squashfs" if fmt == "kernel+squashfs" else "erofs"]
        assert sorted(p.name for p in out.iterdir()) == sorted(["m-kernel", "m-cmdline", "m-initrd.img", image])
        root = parse_cmdline((out / "m-cmdline").read_text())
        assert root is not None, (out / "m-cmdline").read_text()
        assert (out / "m-cmdline").read_text().startswith("console=ttyS0 console=ttyAMA0 linuxkit.verity=")
        size = (out / image).stat().st_size
        assert size > root.data_blocks * BLOCK
        # veritysetup checks every data block against the tree and the tree against the root hash
        verify = subprocess.run(
            [
                *("veritysetup", "verify", f"--hash-offset={root.data_blocks * BLOCK}", str(out / image)),
                *(str(out / image), root.root_hash),
            ],
            capture_output=True,
            text=True,
        )
        assert verify.returncode == 0, verify.stderr
    for name in ("m-kernel", "m-cmdline", "m-initrd.img", IMAGES["kernel+squashfs"]):
        assert (built.dirs["squashfs"] / name).read_bytes() == (built.dirs["again"] / name).read_bytes(), name
    # the file system still reads with its own tool (the tree sits after its end)
    listing = subprocess.run(
        ["unsquashfs", "-l", str(built.dirs["squashfs"] / IMAGES["kernel+squashfs"])], capture_output=True, text=True
    )
    assert "squashfs-root/containers/onboot/000-hello/config.json" in listing.stdout, listing.stderr
    # without --verity: no tree, no verity arguments, a smaller loader (no dmsetup, no dm modules)
    assert "linuxkit.verity" not in (built.dirs["plain"] / "m-cmdline").read_text()
    plain_loader = (built.dirs["plain"] / "m-initrd.img").stat().st_size
    assert plain_loader < (built.dirs["squashfs"] / "m-initrd.img").stat().st_size


@pytest.mark.parametrize("name", ["squashfs", "erofs"])
def test_verified_root_boots_to_the_marker(built: Built, name: str) -> None:
    console = _boot_to_marker(built.dirs[name])
    root = parse_cmdline((built.dirs[name] / "m-cmdline").read_text())
    assert root is not None
    assert f"verity: root image on /dev/vda verified (root hash {root.root_hash})" in console, console[-3000:]
    assert console.index("verity: root image on /dev/vda verified") < console.index("Welcome to LinuxKit")


def _flip_a_data_byte(out: Path) -> int:
    """Flip one bit of a byte in the middle of the image's data area (well before the hash area); its block."""
    root = parse_cmdline((out / "m-cmdline").read_text())
    assert root is not None
    offset = root.data_blocks * BLOCK // 2 + 123
    with open(out / IMAGES["kernel+squashfs"], "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x01]))
    return offset // BLOCK


def test_a_flipped_byte_in_the_data_stops_the_boot(built: Built) -> None:
    out = built.copy("squashfs", "flipped")
    block = _flip_a_data_byte(out)
    console = _boot_until_power_off(out)
    assert f"verity: 254:0: data block {block} is corrupted" in console, console[-3000:]
    assert "verity: root image on /dev/vda is corrupted" in console, console[-3000:]
    assert "reboot: Power down" in console
    assert MARKER not in console and "Welcome to LinuxKit" not in console
    # a byte of the hash tree itself (its top block, right after the superblock) is found the same way
    out = built.copy("squashfs", "flipped-tree")
    root = parse_cmdline((out / "m-cmdline").read_text())
    assert root is not None
    with open(out / IMAGES["kernel+squashfs"], "r+b") as fh:
        fh.seek(root.hash_start * BLOCK + 7)
        byte = fh.read(1)
        fh.seek(root.hash_start * BLOCK + 7)
        fh.write(bytes([byte[0] ^ 0x80]))
    console = _boot_until_power_off(out)
    assert "verity: root image on /dev/vda is corrupted" in console, console[-3000:]
    assert MARKER not in console and "Welcome to LinuxKit" not in console


def test_a_root_hash_without_a_verifying_loader_or_tree_is_refused(built: Built) -> None:
    # a loader built without --verity, given the verified build's command line
    out = built.copy("plain", "no-dmsetup")
    shutil.copy(built.dirs["squashfs"] / "m-cmdline", out / "m-cmdline")
    console = _boot_until_power_off(out)
    assert "verity: this root loader has no dmsetup" in console, console[-3000:]
    assert MARKER not in console and "Welcome to LinuxKit" not in console
    # the verifying loader and command line with an image that has no hash tree (the unverified build's)
    out = built.copy("squashfs", "no-tree")
    shutil.copy(built.dirs["plain"] / IMAGES["kernel+squashfs"], out / IMAGES["kernel+squashfs"])
    console = _boot_until_power_off(out)
    assert "verity: no disk holds a root image with its dm-verity hash tree" in console, console[-3000:]
    assert MARKER not in console and "Welcome to LinuxKit" not in console


@pytest.mark.parametrize(
    ("formats", "message"),
    [
        ("raw-efi", b"--verity works with the root-image formats only, not raw-efi"),
        ("uki", b"--verity builds one root-image format at a time"),
        ("kernel+iso", b"--verity works with the root-image formats only, not kernel+iso"),
        ("kernel+squashfs,kernel+erofs", b"--verity builds one root-image format at a time"),
    ],
)
def test_verity_with_another_format_is_a_user_error(built: Built, tmp_path: Path, formats: str, message: bytes) -> None:
    proc = _lk(built.cache, "build", "-f", formats, "--verity", "--dir", tmp_path, EXAMPLE, check=False)
    assert proc.returncode == 2, proc.stderr.decode(errors="replace")
    assert message in proc.stderr, proc.stderr
    assert b"Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir())


def test_arm64_verified_root_boots_and_a_flipped_byte_stops_it(built: Built) -> None:
    if shutil.which("qemu-system-aarch64") is None:
        pytest.skip("qemu-system-aarch64 is not installed (scripts/setup: qemu-system-arm)")
    out = built.root / "arm64"
    _lk(
        built.cache,
        "build",
        "--arch",
        "arm64",
        "-f",
        "kernel+squashfs",
        "--verity",
        "--name",
        "m",
        "--dir",
        out,
        EXAMPLE,
    )
    console = _boot_to_marker(out, "aarch64")
    assert "verity: root image on /dev/vda verified" in console, console[-3000:]
    shutil.rmtree(out / "m-state", ignore_errors=True)
    block = _flip_a_data_byte(out)
    console = _boot_until_power_off(out, "aarch64")
    assert f"verity: 254:0: data block {block} is corrupted" in console, console[-3000:]
    assert "verity: root image on /dev/vda is corrupted" in console, console[-3000:]
    assert MARKER not in console and "Welcome to LinuxKit" not in console


OVMF_SECBOOT = Path("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd")


def test_signed_uki_carries_the_root_hash_and_boots_the_verified_root_under_secure_boot(built: Built) -> None:
    tools = ("sbsign", "sbverify", "faketime", "openssl", "objcopy")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing or not OVMF_SECBOOT.is_file():
        pytest.skip(f"missing: {missing or OVMF_SECBOOT} (scripts/setup installs sbsigntool, faketime, ovmf)")
    keys = built.root / "keys"
    keys.mkdir()
    key, cert = keys / "k.key", keys / "k.crt"
    subprocess.run(
        [
            *("openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3650"),
            *("-subj", "/CN=linuxkit verity test", "-keyout", str(key), "-out", str(cert)),
        ],
        capture_output=True,
        check=True,
    )
    outs = [built.root / "uki-a", built.root / "uki-b"]
    for out in outs:
        _lk(
            built.cache,
            *("build", "-f", "uki,kernel+squashfs", "--verity", "--sign-key", key, "--sign-cert", cert),
            *("--name", "m", "--dir", out, EXAMPLE),
            epoch="1700000000",
        )
    out = outs[0]
    for name in ("m.efi", "m-cmdline", "m-initrd.img", IMAGES["kernel+squashfs"]):
        assert (out / name).read_bytes() == (outs[1] / name).read_bytes(), name
    verify = subprocess.run(["sbverify", "--cert", str(cert), str(out / "m.efi")], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    # the signed UKI's command line is the one with the root hash; its initrd is the verifying loader
    section = built.root / "cmdline.section"
    subprocess.run(
        ["objcopy", "-O", "binary", "--only-section=.cmdline", str(out / "m.efi"), str(section)],
        capture_output=True,
        check=True,
    )
    assert section.read_bytes().rstrip(b"\0") == (out / "m-cmdline").read_bytes()
    secure = ("--uefi", "--secure-boot", "--secure-boot-cert", str(cert), "--mem", "1024")
    disk = ("--disk", f"file={out / IMAGES['kernel+squashfs']},format=raw")
    console = _boot_to_marker(out, image="m.efi", extra=(*secure, *disk))
    assert "EFI stub: UEFI Secure Boot is enabled" in console, console[:3000]
    assert "verity: root image on /dev/vda verified" in console, console[-3000:]
    # the same signed UKI with a tampered root image: refused
    shutil.rmtree(out / "m-state", ignore_errors=True)
    block = _flip_a_data_byte(out)
    console = _boot_until_power_off(out, image="m.efi", extra=(*secure, *disk))
    assert f"verity: 254:0: data block {block} is corrupted" in console, console[-3000:]
    assert "verity: root image on /dev/vda is corrupted" in console, console[-3000:]
    assert MARKER not in console and "Welcome to LinuxKit" not in console
