"""Size and boot time of ``examples/minimal.yml`` against a trivial-init floor, in the same run.

* size: bytes of ``minimal-kernel`` + ``minimal-initrd.img`` (goal ≤ 25 MB; upstream's headline: 35 MB);
* boot: seconds from starting qemu (TCG) to the onboot container's output on the serial console,
  against the SAME kernel booting an initrd whose ``/init`` is a static busybox printing a marker
  (the floor: kernel boot + initrd unpack). Goal: minimal ≤ floor + 1.0 s.

The packages are built from the Debian archive on the first run (cached afterwards: ``LINUXKIT_CACHE``,
``LINUXKIT_DEBIAN_CACHE``). Run: ``.venv/bin/python benchmarks/bench_boot.py [--repeat 3] [--timeline]``;
``--timeline`` also prints every console line of one boot of each with its time since qemu started.

``--example platform-aws --marker TEXT --nic`` times another example the same way (its kernel, its floor):
``platform-aws.yml`` (pkg/kernel-cloud) has the goals kernel+initrd ≤ 40 MB and boot ≤ floor + 1.5 s. The
default marker of another example is the console line of its last onboot container's end; ``--nic`` gives
the machine (and its floor) a virtio-net NIC on qemu's user network, for examples that run DHCP.

``--arch arm64`` builds the example for arm64 and boots it as ``linuxkit run qemu --arch aarch64`` does under
TCG (``-M virt -cpu cortex-a57``, console ``ttyAMA0``); the floor is the same arm64 kernel with arm64's static
busybox (taken from the build's own rootfs: pkg/init's, from Debian's busybox-static). Rounds are interleaved
(floor, system, floor, system...) and the median of the paired differences is printed too. Goal for arm64
(issue 15): minimal ≤ floor + 2 s.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import bootkit  # noqa: E402

from linuxkit.formats.initrd import make_kernel_initrd  # noqa: E402

ONBOOT_MARKER = b"hello from an onboot container"
FLOOR_MARKER = b"FLOOR-MARKER"
#: the machine `linuxkit run qemu` starts for a kernel+initrd, by architecture (one CPU, TCG), and its console
MACHINES = {
    "amd64": (["qemu-system-x86_64", "-machine", "q35,sata=off"], "console=ttyS0 quiet"),
    "arm64": (["qemu-system-aarch64", "-machine", "virt", "-cpu", "cortex-a57"], "console=ttyAMA0 quiet"),
}


def time_to_marker(
    kernel: Path,
    initrd: Path,
    marker: bytes,
    timeout: float = 120.0,
    timeline: list[tuple[float, str]] | None = None,
    extra: Sequence[str] = (),
    arch: str = "amd64",
) -> float:
    """Seconds from starting qemu to MARKER on the serial console; TIMELINE (if given) gets (time, line) pairs."""
    # the machine `linuxkit run qemu` starts for a kernel+initrd (x86: q35 without its SATA controller)
    machine, cmdline = MACHINES[arch]
    argv = [
        *machine,
        "-accel",
        "tcg",
        "-smp",
        "1",
        "-m",
        "512",
        "-nographic",
        "-no-reboot",
        "-nodefaults",
        "-serial",
        "stdio",
        "-kernel",
        str(kernel),
        "-initrd",
        str(initrd),
        "-append",
        cmdline,
        *extra,
    ]
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    seen = b""
    line_start = 0
    try:
        while time.monotonic() - start < timeout:
            chunk = proc.stdout.read()
            if chunk:
                now = time.monotonic() - start
                seen += chunk
                if timeline is not None:
                    # a line is stamped with the time its end arrived (output is polled every 10 ms)
                    while (nl := seen.find(b"\n", line_start)) >= 0:
                        timeline.append((now, seen[line_start:nl].decode(errors="replace").rstrip("\r")))
                        line_start = nl + 1
                if marker in seen:
                    if timeline is not None and line_start < len(seen):
                        timeline.append((now, seen[line_start:].decode(errors="replace").rstrip("\r\n")))
                    return now
            else:
                time.sleep(0.01)
        raise RuntimeError(f"marker {marker!r} not seen:\n{seen.decode(errors='replace')[-2000:]}")
    finally:
        proc.kill()
        proc.wait()


def last_onboot_marker(yml: Path) -> bytes:
    """The console line that ends the last onboot container of YML (pkg/runc's runner: ``onboot NNN-NAME: exit``)."""
    import yaml

    onboot = yaml.safe_load(yml.read_text()).get("onboot") or []
    if not onboot:
        raise SystemExit(f"{yml.name} has no onboot container: give --marker")
    return f"onboot {len(onboot) - 1:03d}-{onboot[-1]['name']}: exit status".encode()


def build(yml: Path, out: Path, arch: str = "amd64") -> tuple[Path, Path]:
    """``linuxkit build`` of YML (kernel+initrd; for arm64 also its rootfs tar) into OUT: (kernel, initrd)."""
    argv: list[str | Path] = [sys.executable, "-m", "linuxkit.cli.main", "-q", "build", "--dir", out]
    if arch != "amd64":
        argv += ["--arch", arch]
        subprocess.run([*argv, "--format", "tar", yml], check=True)  # tar is built alone
    subprocess.run([*argv, "--format", "kernel+initrd", yml], check=True)
    return out / f"{yml.stem}-kernel", out / f"{yml.stem}-initrd.img"


def busybox_of(rootfs: Path) -> bytes:
    """``bin/busybox`` of a rootfs tar (an arm64 build's: pkg/init's static busybox)."""
    with tarfile.open(rootfs) as tf:
        member = tf.extractfile("bin/busybox")
        if member is None:
            raise SystemExit(f"{rootfs} has no bin/busybox")
        return member.read()


def floor_rootfs_tar(path: Path, kernel: Path, busybox: bytes, cmdline: str) -> Path:
    """:func:`tests.bootkit.marker_rootfs_tar`'s floor with another architecture's busybox."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data, mode in (
            ("bin", None, 0o755),
            ("bin/busybox", busybox, 0o755),
            ("boot", None, 0o755),
            ("boot/cmdline", cmdline.encode(), 0o644),
            ("boot/kernel", kernel.read_bytes(), 0o644),
            ("init", bootkit.init_script(FLOOR_MARKER.decode()).encode(), 0o755),
        ):
            info = tarfile.TarInfo(name)
            info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeline", action="store_true", help="print each console line's arrival time")
    parser.add_argument("--runc", action="store_true", help="also time minimal.yml with pkg/runc instead of pkg/crun")
    parser.add_argument("--example", default="minimal", help="examples/NAME.yml (or a YAML file) to time")
    parser.add_argument("--marker", help="console text that ends the boot (default: see above)")
    parser.add_argument("--nic", action="store_true", help="a virtio-net NIC on qemu's user network (system and floor)")
    parser.add_argument("--arch", choices=sorted(MACHINES), default="amd64", help="build and boot for this arch")
    args = parser.parse_args()
    arch = args.arch
    yml = Path(args.example).resolve() if args.example.endswith(".yml") else ROOT / "examples" / f"{args.example}.yml"
    minimal = yml == ROOT / "examples" / "minimal.yml"
    marker = args.marker.encode() if args.marker else ONBOOT_MARKER if minimal else last_onboot_marker(yml)
    size_goal, boot_goal = (25, 1.0 if arch == "amd64" else 2.0) if minimal else (40, 1.5)
    extra = ["-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0"] if args.nic else []
    with tempfile.TemporaryDirectory(prefix="bench-boot-") as tmp:
        out = Path(tmp)
        kernel, initrd = build(yml, out, arch)
        size = kernel.stat().st_size + initrd.stat().st_size
        # the floor: the same kernel, a busybox /init that prints a marker
        floor_tar = out / "floor.tar"
        if arch == "amd64":
            bootkit.marker_rootfs_tar(floor_tar, FLOOR_MARKER.decode(), "console=ttyS0 quiet", kernel=kernel)
        else:
            floor_rootfs_tar(floor_tar, kernel, busybox_of(out / f"{yml.stem}.tar"), MACHINES[arch][1])
        floor = make_kernel_initrd(floor_tar, out / "floor")
        runc_initrd = None
        if args.runc and minimal and arch == "amd64":
            text = (ROOT / "examples" / "minimal.yml").read_text().replace("@pkg:../pkg/crun", "@pkg:../pkg/runc")
            variant = out / "runc" / "minimal.yml"
            variant.parent.mkdir()
            # (upstream joins even an absolute @pkg: path to the YAML's directory)
            variant.write_text(text.replace("@pkg:../", f"@pkg:{os.path.relpath(ROOT, variant.parent)}/"))
            _, runc_initrd = build(variant, variant.parent)
        floors, systems, runcs = [], [], []
        for _ in range(args.repeat):
            floors.append(time_to_marker(floor.kernel, floor.initrd, FLOOR_MARKER, extra=extra, arch=arch))
            systems.append(time_to_marker(kernel, initrd, marker, extra=extra, arch=arch))
            if runc_initrd is not None:
                runcs.append(time_to_marker(kernel, runc_initrd, ONBOOT_MARKER))
        f, s = statistics.median(floors), statistics.median(systems)
        print(
            f"kernel+initrd: {size / 1e6:.1f} MB (kernel {kernel.stat().st_size / 1e6:.1f} MB, "
            f"initrd {initrd.stat().st_size / 1e6:.1f} MB; goal <= {size_goal} MB)"
        )
        print(f"floor (same kernel, busybox /init marker): {f:.2f} s  runs {[round(x, 2) for x in floors]}")
        print(f"{yml.stem} to {marker.decode()!r}: {s:.2f} s  runs {[round(x, 2) for x in systems]}")
        paired = statistics.median(b - a for a, b in zip(floors, systems, strict=True))
        print(f"difference: {s - f:+.2f} s (goal <= +{boot_goal} s); ratio {s / f:.2f}x")
        print(f"median of the paired differences (interleaved rounds): {paired:+.2f} s ({arch})")
        if runc_initrd is not None:
            r = statistics.median(runcs)
            print(
                f"with pkg/runc instead (initrd {runc_initrd.stat().st_size / 1e6:.1f} MB): {r:.2f} s "
                f"runs {[round(x, 2) for x in runcs]}, {r - f:+.2f} s over the floor"
            )
        if args.timeline:
            for title, (k, i, m) in (
                ("floor", (floor.kernel, floor.initrd, FLOOR_MARKER)),
                (args.example, (kernel, initrd, marker)),
            ):
                lines: list[tuple[float, str]] = []
                time_to_marker(k, i, m, timeline=lines, extra=extra, arch=arch)
                print(f"--- console timeline: {title}")
                for t, text in lines:
                    print(f"{t:7.2f}  {text}")


if __name__ == "__main__":
    main()
