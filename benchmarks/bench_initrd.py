"""Wall time, CPU time and peak memory of the kernel+initrd split, against upstream in the same run.

Measures, each in a fresh process: ``make_kernel_initrd`` alone on a rootfs tar made by our
``build --format tar``; our whole ``linuxkit build --format kernel+initrd``; and, when an upstream
binary exists (``LINUXKIT_UPSTREAM``, default ``/work/upstream/bin/linuxkit``), upstream's
``build --format kernel+initrd`` of the same YAML from its own cache of the same images. The
kernel image holds a 14 MB kernel (pseudo-random, like a compressed kernel) and a kernel tar of
modules; the init image holds ``--mb`` MB of files, half text-like and half incompressible.

``--small-files N`` adds N small text files (per-entry costs). ``--baseline SRC`` also times the
``linuxkit`` package found in directory ``SRC`` (e.g. an older version). Each command runs
``--repeat`` times, interleaved; the table shows median wall and CPU seconds and the largest peak
RSS. Run: ``.venv/bin/python benchmarks/bench_initrd.py [--mb 60] [--repeat 5] [--small-files N]``.
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
    "r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(p.returncode, wall, r.ru_utime + r.ru_stime, r.ru_maxrss)\n"
)
SPLIT = (
    "import sys\nfrom pathlib import Path\nfrom linuxkit.formats.initrd import make_kernel_initrd\n"
    "make_kernel_initrd(Path(sys.argv[1]), Path(sys.argv[2]))\n"
)


def measure(cmd: list[str], cwd: Path) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds (user + system, all threads), peak RSS in MiB) of ``cmd`` run in a
    fresh process. On a shared machine the CPU time is the steadier figure."""
    out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, check=True, text=True, cwd=cwd)
    code, wall, cpu, rss_kb = out.stdout.split()
    if code != "0":
        raise SystemExit(f"benchmark command failed ({code}): {' '.join(cmd)}")
    return float(wall), float(cpu), int(rss_kb) / 1024


def _text(n: int, seed: int) -> bytes:
    words = [b"linuxkit", b"kernel", b"initrd", b"container", b"service", b"onboot", b"%d" % seed, b"\n"]
    out = bytearray()
    i = seed
    while len(out) < n:
        out += words[i % len(words)] + b" "
        i = (i * 1103515245 + 12345) & 0x7FFFFFFF
    return bytes(out[:n])


def make_images(work: Path, mb: int, small_files: int = 0) -> Path:
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
    if small_files:  # per-entry costs: a real rootfs has thousands of small files
        entries.append(directory("usr/lib"))
    for i in range(small_files):
        if i % 100 == 0:
            entries.append(directory(f"usr/lib/d{i // 100}"))
        entries.append(file(f"usr/lib/d{i // 100}/f{i}.txt", _text(300 + i % 2000, i)))
    entries += [file("bin/busybox", _text(2 << 20, 7), mode=0o755), hardlink("bin/sh", "bin/busybox")]
    entries += [symlink("bin/ls", "busybox")]
    init = ImageSpec("example.org/bench/init:1", [entries])
    layout = work / "images.tar"
    write_layout_tar(layout, [kernel, init])
    (work / "bench.yml").write_text(
        "kernel:\n  image: example.org/bench/kernel:1\n  cmdline: console=ttyS0\ninit:\n  - example.org/bench/init:1\n"
    )
    return layout


def run(mb: int, repeat: int, baseline: Path | None = None, small_files: int = 0) -> None:
    ours = [sys.executable, "-m", "linuxkit.cli.main", "-q"]
    upstream = os.environ.get("LINUXKIT_UPSTREAM", "/work/upstream/bin/linuxkit")
    with tempfile.TemporaryDirectory(prefix="lkbench-initrd-") as tmp:
        work = Path(tmp)
        layout = make_images(work, mb, small_files)
        cache, up_cache = work / "cache", work / "upcache"
        subprocess.run([*ours, "--cache", str(cache), "cache", "import", str(layout)], check=True)
        yml = str(work / "bench.yml")
        rootfs = work / "rootfs.tar"
        subprocess.run([*ours, "--cache", str(cache), "build", "--no-sbom", "--o", str(rootfs), yml], check=True)
        cmds = {
            "split only": [sys.executable, "-c", SPLIT, str(rootfs), str(work / "split")],
            "ours build": [*ours, "--cache", str(cache), "build", "-f", "kernel+initrd", "--no-sbom", "--dir=o", yml],
        }
        if baseline is not None:
            # another copy of the package (e.g. the last commit's), same interpreter and venv
            env = f"PYTHONPATH={baseline}"
            cmds["baseline build"] = ["env", env, *ours, "--cache", str(cache), "build", "-f", "kernel+initrd"]
            cmds["baseline build"] += ["--no-sbom", "--dir=b", yml]
        if Path(upstream).exists():
            subprocess.run([upstream, "-q", "--cache", str(up_cache), "cache", "import", str(layout)], check=True)
            (work / "u").mkdir()
            cmds["upstream build"] = [upstream, "-q", "--cache", str(up_cache), "build", "-f", "kernel+initrd"]
            cmds["upstream build"] += ["--no-sbom", "--dir", "u", yml]
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in cmds}
        for _ in range(repeat):  # interleaved, so a busy spell of the machine hits every command alike
            for name, cmd in cmds.items():
                results[name].append(measure(cmd, work))
        print(f"rootfs tar {rootfs.stat().st_size / 1e6:.0f} MB; medians of {repeat} runs")
        print(
            f"{'what':<16} {'wall s':>7} {'cpu s':>7} {'peak MiB':>9} {'time vs upstream':>17} {'RSS vs upstream':>16}"
        )
        med = {name: tuple(statistics.median(r[i] for r in runs) for i in range(2)) for name, runs in results.items()}
        rss = {name: max(r[2] for r in runs) for name, runs in results.items()}
        up = "upstream build" if "upstream build" in results else None
        for name in results:
            tv = f"{med[name][0] / med[up][0]:.2f}x" if up else "-"
            rv = f"{rss[name] / rss[up]:.2f}x" if up else "-"
            print(f"{name:<16} {med[name][0]:>7.2f} {med[name][1]:>7.2f} {rss[name]:>9.1f} {tv:>17} {rv:>16}")
        for label, d in (("ours", work / "o"), ("baseline", work / "b"), ("upstream", work / "u")):
            img = d / "bench-initrd.img"
            if img.exists():
                print(f"{label} initrd.img {img.stat().st_size / 1e6:.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=60, help="payload of the init image in MB")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--small-files", type=int, default=0, help="also add this many small text files")
    parser.add_argument("--baseline", type=Path, help="also time the linuxkit package in this src directory")
    args = parser.parse_args()
    started = time.monotonic()
    run(args.mb, args.repeat, args.baseline, args.small_files)
    print(f"total benchmark time {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
