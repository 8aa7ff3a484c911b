"""``pkg build`` from Debian packages: cold (empty download cache) and warm, and the resolver alone.

* cold: ``linuxkit pkg build pkg/runc`` with an empty OCI cache and an empty Debian download cache
  (the lock is committed, so only the 8 locked ``.deb`` files are fetched; no index);
* warm: the same with the downloads cached (OCI cache empty again, so the image is built);
* skip: the same once more with the image in the cache (nothing to do);
* resolver: loading the merged bookworm + updates + security indexes (cached) and resolving
  runc + busybox-static + linux-image-cloud-amd64, in-process (goal: resolve < 1 s).

Run: ``.venv/bin/python benchmarks/bench_pkg_build.py [--repeat 3]``. Needs the Debian mirror.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.monotonic()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--package", default=str(ROOT / "pkg" / "runc"))
    args = parser.parse_args()
    lk = [sys.executable, "-m", "linuxkit.cli.main", "pkg", "build", "--platforms", "linux/amd64", args.package]
    cold, warm, skip = [], [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "LINUXKIT_CACHE": f"{tmp}/oci", "LINUXKIT_DEBIAN_CACHE": f"{tmp}/debs"}
            cold.append(timed(lk, env))
            env["LINUXKIT_CACHE"] = f"{tmp}/oci2"
            warm.append(timed(lk, env))
            skip.append(timed(lk, env))
    print(
        f"pkg build {Path(args.package).name}: cold {statistics.median(cold):.2f} s, "
        f"warm {statistics.median(warm):.2f} s, already built {statistics.median(skip):.2f} s "
        f"(medians of {args.repeat})"
    )

    from linuxkit.debian import Archive, debian_sources, resolve

    cache = Path(os.environ.get("LINUXKIT_DEBIAN_CACHE", Path.home() / ".linuxkit" / "debian"))
    archive = Archive(debian_sources(), "amd64", cache)
    start = time.monotonic()
    archive.load()
    loaded = time.monotonic() - start
    times = []
    for _ in range(args.repeat):
        start = time.monotonic()
        found = resolve(archive, ["runc", "busybox-static", "linux-image-cloud-amd64"])
        times.append(time.monotonic() - start)
    print(
        f"index load (3 suites, {len(archive.names())} names): {loaded:.2f} s; "
        f"resolve of 3 roots ({len(found)} packages): {statistics.median(times) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
