"""Wall time and peak memory of ``linuxkit build --format tar`` against baselines in the same run."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.imagefactory import Entry, ImageSpec, directory, file, write_layout_tar  # noqa: E402

MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.monotonic()\n"
    "p = subprocess.run(sys.argv[2:], stdout=open(sys.argv[1], 'wb'), stderr=subprocess.DEVNULL)\n"
    "wall = time.monotonic() - t\n"
    "print(p.returncode, wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def measure(cmd: list[str], stdout: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of ``cmd`` run in a fresh process."""
    out = subprocess.run([sys.executable, "-c", MEASURE, str(stdout), *cmd], capture_output=True, check=True, text=True)
    code, wall, rss_kb = out.stdout.split()
    if code != "0":
        raise SystemExit(f"benchmark command failed ({code}): {' '.join(cmd)}")
    return float(wall), int(rss_kb) / 1024


def make_images(work: Path, total_mb: int) -> Path:
    """Three images sharing ``total_mb`` of incompressible files over several layers."""
    per_file = 4 * 1024 * 1024
    files = max(3, total_mb * 1024 * 1024 // per_file)
    specs = []
    for i in range(3):
        layers: list[list[Entry]] = []
        for layer_no in range(2):
            entries: list[Entry] = [directory(f"data{layer_no}")]
            for j in range(files // 6):
                entries.append(Entry(f"data{layer_no}/img{i}-f{j}", size=per_file, mode=0o644))
            entries.append(file(f"data{layer_no}/small", "x" * 100))
            layers.append(entries)
        specs.append(ImageSpec(f"example.org/bench/img{i}:1", layers, cmd=["/bin/true"]))
    layout = work / "images.tar"
    write_layout_tar(layout, specs)
    yml = work / "bench.yml"
    yml.write_text(
        "init:\n  - example.org/bench/img0:1\n"
        "onboot:\n  - name: one\n    image: example.org/bench/img1:1\n"
        "services:\n  - name: two\n    image: example.org/bench/img2:1\n"
    )
    return layout


def run(sizes: list[int], repeat: int) -> None:
    ours = [str(Path(sys.executable).parent / "linuxkit")]
    upstream = os.environ.get("LINUXKIT_UPSTREAM", "")
    print(f"{'payload':>8} {'tool':<10} {'wall s':>8} {'peak MiB':>9} {'vs floor':>9} {'vs upstream':>12}")
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="lkbench-") as tmp:
            work = Path(tmp)
            layout = make_images(work, size)
            cache = work / "cache"
            subprocess.run([*ours, "--cache", str(cache), "-q", "cache", "import", str(layout)], check=True)
            blobs = sorted(str(p) for p in (cache / "blobs" / "sha256").iterdir() if p.stat().st_size > 1_000_000)
            cmds = {
                "floor": ["zcat", *blobs],
                "ours": [*ours, "-q", "--cache", str(cache), "build", "--no-sbom", "--o", "-", str(work / "bench.yml")],
            }
            if upstream and Path(upstream).exists():
                cmds["upstream"] = [
                    upstream,
                    "-q",
                    "--cache",
                    str(cache),
                    "build",
                    "--no-sbom",
                    "--o",
                    "-",
                    str(work / "bench.yml"),
                ]
            results: dict[str, tuple[float, float]] = {}
            for name, cmd in cmds.items():
                runs = [measure(cmd, work / f"{name}.out") for _ in range(repeat)]
                results[name] = (statistics.median(r[0] for r in runs), max(r[1] for r in runs))
            out_mb = (work / "ours.out").stat().st_size / 1e6
            floor = results["floor"][0]
            for name, (wall, rss) in results.items():
                vs_up = f"{wall / results['upstream'][0]:.2f}x" if "upstream" in results else "-"
                print(f"{size:>6}MB {name:<10} {wall:>8.2f} {rss:>9.1f} {wall / floor:>8.2f}x {vs_up:>12}")
            print(f"{'':>8} (output {out_mb:.0f} MB)")
            shutil.rmtree(cache)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="25,100,200", help="image payloads in MB, comma separated")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    started = time.monotonic()
    run([int(s) for s in args.sizes.split(",")], args.repeat)
    print(f"total benchmark time {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
