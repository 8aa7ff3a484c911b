"""Resource bounds on hostile layers, and the cost of the safe tree writer.

1. Layer flattening (the first reader of every image) on hostile shapes at 1×, 2× and 4× the input,
   against a benign layer with the same number of entries measured in the same run: time must grow
   linearly with the input and peak memory stay under 300 MB (a refused input counts: the time and
   memory spent before refusing it).
   - ``deep``: distinct names 2040 components deep (each adds all its ancestors to the bookkeeping);
   - ``wide``: one deep directory holding many files (the whiteout check walks every ancestor);
   - ``longpax``: one PAX name of 64 KB × scale (refused at read).
2. The safe tree writer (:class:`linuxkit.safetree.SafeTree`, directory descriptors, no root needed)
   against Python's ``tarfile.extractall(filter="data")`` on the same ~20 000-entry tar.

Each case runs in a fresh process (its own peak RSS). Run:
``.venv/bin/python benchmarks/bench_hostile.py [--scales 1,2,4] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

CASE = r"""
import io, json, resource, sys, tarfile, time
from linuxkit.errors import LinuxKitError
from linuxkit.rootfs.flatten import flatten

class Source:
    ref = "bench"; digest = ""; config = {}
    def __init__(self, data): self.data = data
    def layer_count(self): return 1
    def open_layer(self, i): return io.BytesIO(self.data)

kind, scale = sys.argv[1], int(sys.argv[2])
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
    def add(name):
        tf.addfile(tarfile.TarInfo(name), io.BytesIO(b""))
    if kind == "deep":
        for i in range(60 * scale):
            add(f"x{i}/" + "a/" * 2040 + "f")
    elif kind == "wide":
        for i in range(500 * scale):
            add("a/" * 2040 + f"f{i}")
    elif kind == "longpax":
        add("a/" * (32768 * scale) + "f")
    else:
        for i in range(500 * scale):
            add(f"d{i % 50}/f{i}")
data = buf.getvalue()
start = time.perf_counter()
try:
    n = sum(1 for _ in flatten(Source(data)))
    outcome = f"{n} entries"
except LinuxKitError as exc:
    outcome = "refused: " + exc.message[:60]
elapsed = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"bytes": len(data), "s": elapsed, "rss": rss, "outcome": outcome}))
"""

EXTRACT = r"""
import resource, sys, tarfile, time
from pathlib import Path
kind, tar, dest = sys.argv[1], sys.argv[2], Path(sys.argv[3])
start = time.perf_counter()
if kind == "safetree":
    from linuxkit.tar.reader import read_entries
    from linuxkit.safetree import SafeTree
    with SafeTree(dest, 0, source="bench", owners=False, devices=False, xattrs=False) as tree, open(tar, "rb") as src:
        for entry in read_entries(src):
            tree.add(entry.header, entry.data)
        tree.finish()
else:
    with tarfile.open(tar) as tf:
        tf.extractall(dest, filter="data")
import json
print(json.dumps({"s": time.perf_counter() - start, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(code: str, *args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))


def bench_bounds(scales: list[int], repeat: int) -> None:
    print("flatten: hostile layer shapes against a benign layer (same run), median of", repeat)
    print(f"{'case':<9} {'scale':>5} {'tar MB':>7} {'time s':>7} {'×benign':>8} {'RSS MB':>7}  outcome")
    for scale in scales:
        base = statistics.median(float(run(CASE, "benign", str(scale))["s"]) for _ in range(repeat))
        for kind in ("deep", "wide", "longpax"):
            runs = [run(CASE, kind, str(scale)) for _ in range(repeat)]
            secs = statistics.median(float(r["s"]) for r in runs)
            rss = max(float(r["rss"]) for r in runs)
            size = int(runs[0]["bytes"]) / 1e6
            line = f"{kind:<9} {scale:>5} {size:>7.1f} {secs:>7.2f} {secs / base:>8.1f} {rss:>7.0f}"
            print(f"{line}  {runs[0]['outcome']}")


def bench_writer(repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tar = Path(tmp) / "tree.tar"
        with tarfile.open(tar, "w") as tf:
            for i in range(20000):
                info = tarfile.TarInfo(f"usr/share/d{i % 400}/f{i}")
                data = b"x" * (i % 300)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        print("\ntree writer: 20 000 entries in 400 directories, median of", repeat)
        times: dict[str, float] = {}
        for kind in ("tarfile", "safetree"):
            runs = []
            for i in range(repeat):
                runs.append(run(EXTRACT, kind, str(tar), str(Path(tmp) / f"{kind}{i}")))
            times[kind] = statistics.median(float(r["s"]) for r in runs)
            rss = max(float(r["rss"]) for r in runs)
            print(f"{kind:<9} {times[kind]:.2f} s  peak RSS {rss:.0f} MB")
        print(f"safetree / tarfile(filter='data'): {times['safetree'] / times['tarfile']:.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,2,4")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bench_bounds([int(s) for s in args.scales.split(",")], args.repeat)
    bench_writer(args.repeat)


if __name__ == "__main__":
    main()
