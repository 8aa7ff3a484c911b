"""Wall time and peak memory of the kernel+initrd split, against upstream in the same run.

Measures, each in a fresh process: ``make_kernel_initrd`` alone on a rootfs tar made by our
``build --format tar``; our whole ``linuxkit build --format kernel+initrd``; and, when an upstream
binary exists (``LINUXKIT_UPSTREAM``, default ``/work/upstream/bin/linuxkit``), upstream's
``build --format kernel+initrd`` of the same YAML from its own cache of the same images. The
kernel image holds a 14 MB kernel (pseudo-random, like a compressed kernel) and a kernel tar of
modules; the init image holds ``--mb`` MB of files, half text-like and half incompressible.

Run: ``.venv/bin/python benchmarks/bench_initrd.py [--mb 60] [--repeat 3]``.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.imagefactory import Entry, ImageSpec, directory, file, hardlink, symlink, write_layout_tar  # noqa: E402

MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.monotonic()\n"
    "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "wall = time.monotonic() - t\n"
    "print(p.returncode, wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)
SPLIT = (
    "import sys\nfrom pathlib import Path\nfrom linuxkit.formats.initrd import make_kernel_initrd\n"
    "make_kernel_initrd(Path(sys.argv[1]), Path(sys.argv[2]))\n"
)


def measure(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of ``cmd`` run in a fresh process."""
    out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, check=True, text=True, cwd=cwd)
    code, wall, rss_kb = out.stdout.split()
    if code != "0":
        raise SystemExit(f"benchmark command failed ({code}): {' '.join(cmd)}")
    return float(wall), int(rss_kb) / 1024


def _text(n: int, seed: int) -> bytes:
    words = [b"linuxkit", b"kernel", b"initrd", b"container", b"service", b"onboot", b"%d" % seed, b"\n"]
    out = bytearray()
    i = seed
    while len(out) < n:
        out += words[i % len(words)] + b" "
        i = (i * 1103515245 + 12345) & 0x7FFFFFFF
    return bytes(out[:n])


def make_images(work: Path, mb: int) -> Path:
    modules = io.BytesIO()
    with tarfile.open(fileobj=modules, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for i in range(40):
            data = _text(64 << 10, i)
            info = tarfile.TarInfo(f"lib/modules/6.1.0/kernel/m{i}.ko")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    kernel = ImageSpec(
        "example.org/bench/kernel:1",
        [[Entry("kernel", size=14 << 20), file("kernel.tar", modules.getvalue())]],
    )
    half = (mb << 20) // 2
    entries: list[Entry] = [directory("bin"), directory("usr"), directory("usr/share")]
    per = 256 << 10
    for i in range(half // per):
        entries.append(file(f"usr/share/t{i}.txt", _text(per, i)))
    for i in range(half // (1 << 20)):
        entries.append(Entry(f"usr/share/r{i}.bin", size=1 << 20))
    entries += [file("bin/busybox", _text(2 << 20, 7), mode=0o755), hardlink("bin/sh", "bin/busybox")]
    entries += [symlink("bin/ls", "busybox")]
    init = ImageSpec("example.org/bench/init:1", [entries])
    layout = work / "images.tar"
    write_layout_tar(layout, [kernel, init])
    (work / "bench.yml").write_text(
        "kernel:\n  image: example.org/bench/kernel:1\n  cmdline: console=ttyS0\ninit:\n  - example.org/bench/init:1\n"
    )
    return layout


def run(mb: int, repeat: int) -> None:
    ours = [sys.executable, "-m", "linuxkit.cli.main", "-q"]
    upstream = os.environ.get("LINUXKIT_UPSTREAM", "/work/upstream/bin/linuxkit")
    with tempfile.TemporaryDirectory(prefix="lkbench-initrd-") as tmp:
        work = Path(tmp)
        layout = make_images(work, mb)
        cache, up_cache = work / "cache", work / "upcache"
        subprocess.run([*ours, "--cache", str(cache), "cache", "import", str(layout)], check=True)
        yml = str(work / "bench.yml")
        rootfs = work / "rootfs.tar"
        subprocess.run([*ours, "--cache", str(cache), "build", "--no-sbom", "--o", str(rootfs), yml], check=True)
        cmds = {
            "split only": [sys.executable, "-c", SPLIT, str(rootfs), str(work / "split")],
            "ours build": [*ours, "--cache", str(cache), "build", "-f", "kernel+initrd", "--no-sbom", "--dir=o", yml],
        }
        if Path(upstream).exists():
            subprocess.run([upstream, "-q", "--cache", str(up_cache), "cache", "import", str(layout)], check=True)
            (work / "u").mkdir()
            cmds["upstream build"] = [upstream, "-q", "--cache", str(up_cache), "build", "-f", "kernel+initrd"]
            cmds["upstream build"] += ["--no-sbom", "--dir", "u", yml]
        results = {}
        for name, cmd in cmds.items():
            runs = [measure(cmd, work) for _ in range(repeat)]
            results[name] = (statistics.median(r[0] for r in runs), max(r[1] for r in runs))
        print(f"rootfs tar {rootfs.stat().st_size / 1e6:.0f} MB")
        print(f"{'what':<16} {'wall s':>8} {'peak MiB':>9} {'time vs upstream':>17} {'RSS vs upstream':>16}")
        up = results.get("upstream build")
        for name, (wall, rss) in results.items():
            tv = f"{wall / up[0]:.2f}x" if up else "-"
            rv = f"{rss / up[1]:.2f}x" if up else "-"
            print(f"{name:<16} {wall:>8.2f} {rss:>9.1f} {tv:>17} {rv:>16}")
        for label, d in (("ours", work / "o"), ("upstream", work / "u")):
            img = d / "bench-initrd.img"
            if img.exists():
                print(f"{label} initrd.img {img.stat().st_size / 1e6:.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=60, help="payload of the init image in MB")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    started = time.monotonic()
    run(args.mb, args.repeat)
    print(f"total benchmark time {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
