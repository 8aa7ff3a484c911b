"""The cost of the config schema: its import in a fresh interpreter and the check of a config.

    .venv/bin/python benchmarks/bench_schema.py [--runs 20] [--old-rev bb0f600]

``--old-rev`` also times that commit's ``config/schema.py`` (pydantic models; needs pydantic
installed). The numbers are in the docstring of ``linuxkit.config.schema``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what the CLI has imported anyway before a verb loads the schema
PRELUDE = "import dataclasses, typing, functools, re"


def _fresh(code: str, runs: int, path: str | None = None) -> float:
    """Median ms of ``code`` after PRELUDE, in fresh interpreters (timed inside, so start-up is excluded)."""
    script = (
        f"import sys, time\n{PRELUDE}\n"
        + (f"sys.path.insert(0, {path!r})\n" if path else "")
        + f"t = time.perf_counter()\n{code}\nprint((time.perf_counter() - t) * 1000)\n"
    )
    times = [
        float(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
        for _ in range(runs)
    ]
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--old-rev", default="")
    args = parser.parse_args()
    print(f"import linuxkit.config.schema: {_fresh('import linuxkit.config.schema', args.runs):.1f} ms")
    check = (
        "from linuxkit.config import schema; from linuxkit.config.yamlload import load_yaml\n"
        f"v = load_yaml(open({str(ROOT / 'examples/linuxkit.yml')!r}, 'rb').read(), 'x').value\n"
        "t0 = time.perf_counter(); schema.check(schema.Moby, v); t1 = time.perf_counter()\n"
        "for _ in range(100): schema.check(schema.Moby, v)\n"
        "print('first', (t1 - t0) * 1000, 'then', (time.perf_counter() - t1) * 10, file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", "import sys, time\n" + check], capture_output=True, text=True)
    print(f"check examples/linuxkit.yml (ms): {out.stderr.strip()}")
    if args.old_rev:
        old = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{args.old_rev}:src/linuxkit/config/schema.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "old_schema.py").write_text(old)
            print(f"import pydantic: {_fresh('import pydantic', args.runs):.1f} ms")
            print(f"import {args.old_rev} schema (pydantic): {_fresh('import old_schema', args.runs, tmp):.1f} ms")
            t = time.perf_counter()
            code = (
                "import old_schema, yaml\n"
                f"v = yaml.safe_load(open({str(ROOT / 'examples/linuxkit.yml')!r}))\n"
                "t0 = time.perf_counter(); old_schema.Moby.model_validate(v); t1 = time.perf_counter()\n"
                "for _ in range(100): old_schema.Moby.model_validate(v)\n"
                "print('first', (t1 - t0) * 1000, 'then', (time.perf_counter() - t1) * 10, file=sys.stderr)"
            )
            out = subprocess.run(
                [sys.executable, "-c", f"import sys, time\nsys.path.insert(0, {tmp!r})\n" + code],
                capture_output=True,
                text=True,
            )
            print(f"pydantic check (ms): {out.stderr.strip()} ({time.perf_counter() - t:.1f} s)")


if __name__ == "__main__":
    main()
