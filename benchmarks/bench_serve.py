"""Throughput of ``linuxkit serve`` against ``python3 -m http.server``, serving the same initrd in the same run.

The file is ``examples/minimal.yml``'s ``minimal-initrd.img`` (built into a temporary directory; the
packages come from the cache, or the Debian archive on a first run), or ``--file PATH``. Both servers run
as subprocesses on loopback (ours: ``linuxkit serve --port 127.0.0.1:0``; the baseline: the standard
library's ``http.server`` under the same interpreter), and ``curl`` fetches the whole file from each,
alternately, ``--repeat`` times (one connection a fetch, the body to /dev/null), then ``--parallel``
clients at once. Prints the median time a fetch and MB/s of each, the servers' CPU time a fetch (from
``/proc/PID/stat``; each server idles while the other serves), and the ratios ours/baseline (>1: ours is
faster). No goal is asserted: loopback figures depend on the machine.

Run: ``.venv/bin/python benchmarks/bench_serve.py [--repeat 20] [--parallel 4] [--file PATH]``
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_initrd(out: Path) -> Path:
    argv = [sys.executable, "-m", "linuxkit.cli.main", "build", "--dir", str(out), str(ROOT / "examples/minimal.yml")]
    subprocess.run(argv, check=True, capture_output=True)
    return out / "minimal-initrd.img"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {proc.args}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the server did not answer: {proc.args}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def ours(directory: Path) -> Iterator[tuple[str, int]]:
    argv = [sys.executable, "-m", "linuxkit.cli.main", "serve", "--port", "127.0.0.1:0", "--directory", str(directory)]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        assert proc.stderr is not None
        found = re.search(rb"on http://127\.0\.0\.1:(\d+)/", proc.stderr.readline())
        assert found, "no listening line"
        url = f"http://127.0.0.1:{int(found.group(1))}/"
        # the request log goes to a pipe nobody reads: send it to /dev/null instead of filling the pipe
        drain = subprocess.Popen(["cat"], stdin=proc.stderr, stdout=subprocess.DEVNULL)
        wait_until_up(url, proc)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait()
        drain.wait()


@contextmanager
def baseline(directory: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(directory), str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until_up(url, proc)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait()


def fetch(url: str, size: int) -> float:
    """Seconds for curl to fetch ``url`` whole (checked against ``size``)."""
    out = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download} %{time_total}", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert int(out[0]) == size, f"{url}: {out[0]} bytes, expected {size}"
    return float(out[1])


def fetch_parallel(url: str, size: int, clients: int) -> float:
    """Wall seconds for ``clients`` curls fetching ``url`` at once."""
    start = time.monotonic()
    procs = [
        subprocess.Popen(["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}", url], stdout=subprocess.PIPE)
        for _ in range(clients)
    ]
    for p in procs:
        got, _ = p.communicate()
        assert p.returncode == 0 and int(got) == size
    return time.monotonic() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", type=Path, help="the file to serve (default: examples/minimal.yml's initrd, built now)")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--parallel", type=int, default=4)
    args = ap.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed (apt-get install curl)")
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        work = Path(tmp)
        if args.file is None:
            print("building examples/minimal.yml (kernel+initrd)...", flush=True)
            source = build_initrd(work / "out")
        else:
            source = args.file
        served = work / "served"
        served.mkdir()
        target = served / source.name
        shutil.copyfile(source, target)
        size = target.stat().st_size
        name = target.name
        print(f"file: {name}, {size / 1e6:.1f} MB; {args.repeat} fetches each, alternating; curl to /dev/null")
        times: dict[str, list[float]] = {"linuxkit serve": [], "python3 -m http.server": []}
        wall: dict[str, float] = {}
        cpu: dict[str, float] = {}
        with ours(served) as (url_ours, pid_ours), baseline(served) as (url_base, pid_base):
            urls = {"linuxkit serve": url_ours + name, "python3 -m http.server": url_base + name}
            pids = {"linuxkit serve": pid_ours, "python3 -m http.server": pid_base}
            for url in urls.values():
                fetch(url, size)  # warm-up: page cache, first connection
            # each server is idle while the other one serves: its CPU time over the loop is its fetches'
            cpu = {label: -cpu_seconds(pid) for label, pid in pids.items()}
            for _ in range(args.repeat):
                for label, url in urls.items():
                    times[label].append(fetch(url, size))
            cpu = {label: cpu[label] + cpu_seconds(pid) for label, pid in pids.items()}
            for label, url in urls.items():
                wall[label] = min(fetch_parallel(url, size, args.parallel) for _ in range(3))
        print(f"{'server':26} {'median s':>9} {'MB/s':>8} {'CPU ms/fetch':>13} {f'{args.parallel} at once MB/s':>18}")
        rates = {}
        for label, got in times.items():
            med = statistics.median(got)
            rates[label] = size / med / 1e6
            par = size * args.parallel / wall[label] / 1e6
            per_fetch = cpu[label] / args.repeat * 1000
            print(f"{label:26} {med:9.4f} {rates[label]:8.0f} {per_fetch:13.1f} {par:18.0f}")
        ratio = rates["linuxkit serve"] / rates["python3 -m http.server"]
        par_ratio = wall["python3 -m http.server"] / wall["linuxkit serve"]
        cpu_ratio = cpu["python3 -m http.server"] / max(cpu["linuxkit serve"], 1e-9)
        print(
            f"ratio ours/baseline: {ratio:.2f}x one at a time, {par_ratio:.2f}x with {args.parallel} at once; "
            f"server CPU a fetch: baseline/ours {cpu_ratio:.1f}x"
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("COLUMNS", "200")
    sys.exit(main())
