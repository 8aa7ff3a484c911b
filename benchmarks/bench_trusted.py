"""What the trusted-system features cost a build of ``examples/minimal.yml``, each against the same
build without it, measured in the same run and interleaved (ratios, so noisy machines stay comparable):

* SBOM: ``build --format kernel+initrd`` (the merged ``sbom.spdx.json`` of every image's attestation)
  against ``--no-sbom``;
* Secure Boot: ``build --format uki --sign-key K --sign-cert C`` (sbsign under faketime) against the
  unsigned UKI;
* dm-verity: ``build --format kernel+squashfs --verity`` (veritysetup's hash tree, the loader's
  dmsetup) against plain ``kernel+squashfs``.

The images come from a cache filled once before timing (the repo's packages built from Debian: slow the
first time, needs the Debian mirror). Also prints the output sizes.

    .venv/bin/python benchmarks/bench_trusted.py [--repeat 3] [--cache DIR]
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
EXAMPLE = ROOT / "examples" / "minimal.yml"
EPOCH = "1700000000"

#: (name, format, extra flags of the feature); each is timed against the same format without them
CASES = (
    ("sbom", "kernel+initrd", ["--sbom"]),
    ("secure boot", "uki", ["--sign"]),
    ("dm-verity", "kernel+squashfs", ["--verity"]),
)


def build(fmt: str, flags: list[str], out: Path, env: dict[str, str]) -> float:
    argv = [sys.executable, "-m", "linuxkit.cli.main", "build", "--format", fmt, "--dir", str(out), *flags]
    start = time.monotonic()
    subprocess.run([*argv, str(EXAMPLE)], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.monotonic() - start


def make_key(tmp: Path) -> list[str]:
    key, cert = tmp / "db.key", tmp / "db.crt"
    subprocess.run(
        [
            *("openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650"),
            *("-subj", "/CN=bench", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return ["--sign-key", str(key), "--sign-cert", str(cert)]


def flags_for(extra: list[str], sign: list[str]) -> tuple[list[str], list[str]]:
    """(baseline flags, feature flags)"""
    if extra == ["--sbom"]:
        return ["--no-sbom"], []
    if extra == ["--sign"]:
        return [], sign
    return [], extra


def size_mb(out: Path) -> float:
    return sum(p.stat().st_size for p in out.iterdir() if p.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=None, help="the OCI cache to use (default: a fresh one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        cache = args.cache or tmp / "cache"
        env = {**os.environ, "LINUXKIT_CACHE": str(cache), "SOURCE_DATE_EPOCH": EPOCH}
        sign = make_key(tmp)
        start = time.monotonic()
        build("kernel+initrd", [], tmp / "warm", env)  # fills the cache; not timed against anything
        print(f"cache filled in {time.monotonic() - start:.1f} s")
        for name, fmt, extra in CASES:
            base_flags, feature_flags = flags_for(extra, sign)
            base, feature = [], []
            for i in range(args.repeat):  # interleaved, so drift hits both alike
                base.append(build(fmt, base_flags, tmp / f"{name}-base-{i}", env))
                feature.append(build(fmt, feature_flags, tmp / f"{name}-feature-{i}", env))
            b, f = statistics.median(base), statistics.median(feature)
            sizes = f"{size_mb(tmp / f'{name}-base-0'):.2f} → {size_mb(tmp / f'{name}-feature-0'):.2f} MB"
            times = f"without {b:6.2f} s  with {f:6.2f} s  ratio {f / b:4.2f}  (+{f - b:.2f} s)"
            print(f"{name:12} {fmt:16} {times}  {sizes}")


if __name__ == "__main__":
    main()
