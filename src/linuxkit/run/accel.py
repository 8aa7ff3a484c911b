"""Which qemu accelerator to use: an explicit choice, else a probe that KVM really runs guests.

Upstream picks ``kvm:tcg`` whenever ``/dev/kvm`` exists; on hosts where KVM opens but cannot run
a 64-bit guest (nested hypervisors without the needed features) qemu then hangs instead of falling
back. The probe boots a 173-byte firmware that goes from real mode to long mode and writes to
qemu's ``isa-debug-exit`` port: exit code 3 within a few seconds means KVM works. The answer is
cached per host, kernel and qemu version under the user cache directory.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

from .. import log
from ..errors import LinuxKitError
from ..runner import DEVNULL, output, start

ENV_ACCEL = "LINUXKIT_QEMU_ACCEL"
PROBE_TIMEOUT = 5.0

# Assembled from a small GNU as source (see docs): real mode → protected mode → identity-mapped
# 2 MB page → long mode → ``out 0xf4, 1`` → hlt. Loaded as a 64 KB ``-bios`` image at 0xF0000.
_PROBE_CODE = bytes.fromhex(
    "fa2e660f0116a8000f20c06683c8010f22c066ea1a000f00080066b810008ed88ec08ed0bf0010000031c0b9000c0000"
    "f3abc7050010000003200000c7050020000003300000c70500300000830000000f20e083c8200f22e0b8001000000f22"
    "d8b9800000c00f320d000100000f300f20c00d000000800f22c0ea81000f001800b001e6f4f4ebfd0000000000000000"
    "ffff0000009acf00ffff00000092cf00ffff0000009aaf001f0088000f"
)
_RESET_VECTOR = bytes.fromhex("ea000000f0")  # ljmp 0xf000:0000, at 0xFFF0
_PROBE_OK = 3  # isa-debug-exit: (1 << 1) | 1


def probe_image() -> bytes:
    image = bytearray(64 << 10)
    image[: len(_PROBE_CODE)] = _PROBE_CODE
    image[0xFFF0 : 0xFFF0 + len(_RESET_VECTOR)] = _RESET_VECTOR
    return bytes(image)


def probe_argv(qemu: str, accel: str, firmware: Path) -> list[str]:
    return [
        qemu,
        "-machine",
        f"q35,accel={accel}",
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
        "-m",
        "16",
        "-bios",
        str(firmware),
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
    ]


def run_probe(qemu: str, accel: str = "kvm", timeout: float = PROBE_TIMEOUT) -> bool:
    """Does ``accel`` run a 64-bit guest with this qemu? (``False`` on timeout or any failure.)"""
    with tempfile.TemporaryDirectory(prefix="linuxkit-accel.") as tmp:
        firmware = Path(tmp) / "probe.bin"
        firmware.write_bytes(probe_image())
        try:
            with start(probe_argv(qemu, accel, firmware), stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL) as proc:
                code = proc.wait(timeout)
                if code is None:  # hangs: that is the failure the probe is for
                    proc.kill()
        except (LinuxKitError, OSError):
            return False
        return code == _PROBE_OK


def _cache_file() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "linuxkit" / "qemu-accel.json"


def _cache_key(qemu: str) -> str:
    try:
        version = output([qemu, "--version"]).splitlines()[0]
    except (LinuxKitError, IndexError):
        version = "?"  # still cached, under a key that a working qemu never has
    return f"{platform.node()}|{platform.release()}|{os.path.realpath(qemu)}|{version}"


def kvm_works(qemu: str) -> bool:
    """Cached :func:`run_probe` for KVM (``False`` right away without a usable ``/dev/kvm``)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    cache = _cache_file()
    key = _cache_key(qemu)
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    if isinstance(known.get(key), bool):
        return bool(known[key])
    works = run_probe(qemu, "kvm")
    known[key] = works
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known, indent=1, sort_keys=True))
        os.replace(tmp, cache)
    except OSError as exc:
        log.debug(f"cannot cache the KVM probe result: {exc}")
    return works


def host_arch() -> str:
    machine = platform.machine()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def choose_accel(flag: str | None, qemu: str, arch: str, env: dict[str, str] | None = None) -> str:
    """``--accel`` if given, else ``$LINUXKIT_QEMU_ACCEL``, else ``kvm`` when the probe passes,
    else ``tcg``. A foreign ``arch`` always runs under TCG (as upstream, which drops acceleration)."""
    env = dict(os.environ) if env is None else env
    if arch != host_arch():
        log.info(f"Disable acceleration as {arch} != {host_arch()}")
        return "tcg"
    if flag:
        return flag
    if env.get(ENV_ACCEL):
        return env[ENV_ACCEL]
    if kvm_works(qemu):
        return "kvm"
    if os.path.exists("/dev/kvm"):
        log.info("KVM is present but cannot run a 64-bit guest here; falling back to TCG")
    return "tcg"
