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
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
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


def time_to_marker(
    kernel: Path,
    initrd: Path,
    marker: bytes,
    timeout: float = 120.0,
    timeline: list[tuple[float, str]] | None = None,
    extra: Sequence[str] = (),
) -> float:
    """Seconds from starting qemu to MARKER on the serial console; TIMELINE (if given) gets (time, line) pairs."""
    # the machine `linuxkit run qemu` starts for a kernel+initrd (q35 without its SATA controller, one CPU)
    argv = [
        "qemu-system-x86_64",
        "-machine",
        "q35,sata=off",
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
        "console=ttyS0 quiet",
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


def build(yml: Path, out: Path) -> tuple[Path, Path]:
    """``linuxkit build`` of YML (kernel+initrd) into OUT: (kernel, initrd)."""
    subprocess.run([sys.executable, "-m", "linuxkit.cli.main", "-q", "build", "--dir", out, yml], check=True)
    return out / f"{yml.stem}-kernel", out / f"{yml.stem}-initrd.img"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeline", action="store_true", help="print each console line's arrival time")
    parser.add_argument("--runc", action="store_true", help="also time minimal.yml with pkg/runc instead of pkg/crun")
    parser.add_argument("--example", default="minimal", help="examples/NAME.yml (or a YAML file) to time")
    parser.add_argument("--marker", help="console text that ends the boot (default: see above)")
    parser.add_argument("--nic", action="store_true", help="a virtio-net NIC on qemu's user network (system and floor)")
    args = parser.parse_args()
    yml = Path(args.example).resolve() if args.example.endswith(".yml") else ROOT / "examples" / f"{args.example}.yml"
    minimal = yml == ROOT / "examples" / "minimal.yml"
    marker = args.marker.encode() if args.marker else ONBOOT_MARKER if minimal else last_onboot_marker(yml)
    size_goal, boot_goal = (25, 1.0) if minimal else (40, 1.5)
    extra = ["-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0"] if args.nic else []
    with tempfile.TemporaryDirectory(prefix="bench-boot-") as tmp:
        out = Path(tmp)
        kernel, initrd = build(yml, out)
        size = kernel.stat().st_size + initrd.stat().st_size
        # the floor: the same kernel, a busybox /init that prints a marker
        floor_tar = out / "floor.tar"
        bootkit.marker_rootfs_tar(floor_tar, FLOOR_MARKER.decode(), "console=ttyS0 quiet", kernel=kernel)
        floor = make_kernel_initrd(floor_tar, out / "floor")
        runc_initrd = None
        if args.runc and minimal:
            text = (ROOT / "examples" / "minimal.yml").read_text().replace("@pkg:../pkg/crun", "@pkg:../pkg/runc")
            variant = out / "runc" / "minimal.yml"
            variant.parent.mkdir()
            # (upstream joins even an absolute @pkg: path to the YAML's directory)
            variant.write_text(text.replace("@pkg:../", f"@pkg:{os.path.relpath(ROOT, variant.parent)}/"))
            _, runc_initrd = build(variant, variant.parent)
        floors, systems, runcs = [], [], []
        for _ in range(args.repeat):
            floors.append(time_to_marker(floor.kernel, floor.initrd, FLOOR_MARKER, extra=extra))
            systems.append(time_to_marker(kernel, initrd, marker, extra=extra))
            if runc_initrd is not None:
                runcs.append(time_to_marker(kernel, runc_initrd, ONBOOT_MARKER))
        f, s = statistics.median(floors), statistics.median(systems)
        print(
            f"kernel+initrd: {size / 1e6:.1f} MB (kernel {kernel.stat().st_size / 1e6:.1f} MB, "
            f"initrd {initrd.stat().st_size / 1e6:.1f} MB; goal <= {size_goal} MB)"
        )
        print(f"floor (same kernel, busybox /init marker): {f:.2f} s  runs {[round(x, 2) for x in floors]}")
        print(f"{yml.stem} to {marker.decode()!r}: {s:.2f} s  runs {[round(x, 2) for x in systems]}")
        print(f"difference: {s - f:+.2f} s (goal <= +{boot_goal} s); ratio {s / f:.2f}x")
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
                time_to_marker(k, i, m, timeline=lines, extra=extra)
                print(f"--- console timeline: {title}")
                for t, text in lines:
                    print(f"{t:7.2f}  {text}")


if __name__ == "__main__":
    main()
