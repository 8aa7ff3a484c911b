"""Build time and peak RSS of each disk/ISO/cloud/UKI/root-image format, for a small rootfs (Debian cloud
kernel, some of its modules, busybox) and, with ``--big``, the same plus a ~1 GB incompressible payload.
Each format is built in a fresh process; ratios are against a ``cat rootfs.tar > /dev/null`` floor
measured in the same run.

    .venv/bin/python benchmarks/bench_formats.py [--big] [--formats raw-bios,uki]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.bootkit import cloud_modules, marker_rootfs_tar  # noqa: E402

FORMATS = (
    "kernel+initrd",  # reference: the split every bootable format starts with
    "uki",
    "iso-bios",
    "iso-efi",
    "raw-bios",
    "raw-efi",
    "aws",
    "qcow2-bios",
    "qcow2-efi",
    "vhd",
    "dynamic-vhd",
    "vmdk",
    "gcp",
    "kernel+squashfs",
    "kernel+erofs",
    "kernel+iso",
)

BUILD_ONE = (
    "import sys\n"
    "from pathlib import Path\n"
    "from linuxkit.formats.registry import FormatContext, all_formats\n"
    "from linuxkit.outputs import OutputSet\n"
    "fmt, rootfs, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])\n"
    "with OutputSet() as o:\n"
    "    ctx = FormatContext(out / 'bench', 0, 'x86_64', False, o, boot_files=Path('/'), epoch=0)\n"
    "    all_formats()[fmt].writer(ctx, rootfs)\n"
    "    o.commit()\n"
)


def measure(cmd: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MiB of the process and its waited-for children) of ``cmd``."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {cmd}")
    return wall, usage.ru_maxrss / 1024


def big_rootfs(small: Path, dest: Path, payload_mb: int) -> Path:
    with tarfile.open(small) as src, tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as out:
        for member in src.getmembers():
            out.addfile(member, src.extractfile(member) if member.isfile() else None)
        info = tarfile.TarInfo("payload.bin")
        info.size = payload_mb << 20
        info.mode = 0o644

        class Random:
            def read(self, n: int) -> bytes:
                return os.urandom(n)

        out.addfile(info, Random())  # type: ignore[arg-type]
    return dest


def run(rootfs: Path, formats: list[str], label: str) -> None:
    floor = min(measure(["sh", "-c", f"cat {rootfs} > /dev/null"])[0] for _ in range(3))
    size = rootfs.stat().st_size / (1 << 20)
    print(f"\n## {label}: rootfs {size:.0f} MiB, cat floor {floor:.3f} s")
    print(f"{'format':<14} {'seconds':>8} {'x floor':>8} {'peak RSS MiB':>13} {'output MiB':>11}")
    for fmt in formats:
        with tempfile.TemporaryDirectory(dir=rootfs.parent) as out:
            wall, rss = measure([sys.executable, "-c", BUILD_ONE, fmt, str(rootfs), out])
            produced = sum(p.stat().st_size for p in Path(out).iterdir()) / (1 << 20)
        print(f"{fmt:<14} {wall:8.2f} {wall / floor:8.1f} {rss:13.0f} {produced:11.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--big", action="store_true", help="also run with a ~1 GB payload")
    parser.add_argument("--payload-mb", type=int, default=1000)
    parser.add_argument("--formats", default=",".join(FORMATS))
    args = parser.parse_args()
    formats = args.formats.split(",")
    work = Path(tempfile.mkdtemp(prefix="bench-formats."))
    try:
        # with the kernel's modules the kernel+squashfs/erofs/iso root loaders need
        small = marker_rootfs_tar(work / "small.tar", "BENCH", modules=cloud_modules())
        run(small, formats, "small")
        if args.big:
            run(big_rootfs(small, work / "big.tar", args.payload_mb), formats, f"big (+{args.payload_mb} MiB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
