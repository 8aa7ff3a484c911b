"""Our CLI against upstream's ``linuxkit`` binary on upstream's own corpus, in the same run.

The corpus is taken from a checkout of upstream's repository (``--upstream-src`` or
``$LINUXKIT_UPSTREAM_SRC``; this script builds nothing): every system YAML under ``examples/``,
``test/cases/`` and ``projects/`` (a YAML mapping with a ``kernel``, ``init``, ``onboot`` or
``services`` key) and every package directory (one holding ``build.yml``) under ``pkg/`` and
``test/``. For each, in fresh processes and interleaved (ours then upstream, the order flipped on
every round):

- ``linuxkit build --dry-run FILE`` (run from the YAML's directory, as upstream's tests do);
- ``linuxkit pkg show-tag DIR``;
- and ``linuxkit version`` (start-up cost alone).

Prints per-command medians in ms (median over files of each file's median), the ratio
ours/upstream of those medians and of the summed per-file medians, and which files give identical
stdout (and exit status), which differ and which fail on one side only or on both.

Our CLI runs as a user would run it (``.venv/bin/linuxkit``); whether it is an editable install is
printed. When the environment sets ``PYTHONDONTWRITEBYTECODE`` our children get a private
``PYTHONPYCACHEPREFIX`` (an installed linuxkit has its bytecode compiled), filled by a warm-up
run. Both sides get an empty ``--cache`` directory and HTTP(S) proxies pointing at a closed
loopback port, so nothing reaches the network.

Run: ``.venv/bin/python benchmarks/bench_corpus.py [--upstream-src DIR] [--upstream BIN]
[--repeat 3] [--version-repeat 21] [--diff-dir DIR] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_KEYS = {"kernel", "init", "onboot", "services"}
SYSTEM_DIRS = ("examples", "test/cases", "projects")
PACKAGE_DIRS = ("pkg", "test")
GO_LOG_STAMP = re.compile(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ")  # upstream logs its error twice
TOP_LEVEL_KEY = re.compile(r"^(kernel|init|onboot|services):", re.MULTILINE)
TIMEOUT = 120.0


@dataclass
class Outcome:
    rc: int
    stdout: str
    stderr: str


@dataclass
class Case:
    kind: str  # "build" or "show-tag"
    path: Path  # YAML file or package directory
    rel: str  # relative to the upstream checkout
    times: dict[str, list[float]] = field(default_factory=lambda: {"ours": [], "upstream": []})
    first: dict[str, Outcome] = field(default_factory=dict)


def closed_loopback_port() -> int:
    """A loopback port nobody listens on (bound then released), for the proxies."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def is_system_yaml(text: str) -> bool | None:
    """True for a system YAML, None for one that does not parse but has a top-level system key."""
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError:
        return None if TOP_LEVEL_KEY.search(text) else False
    return any(isinstance(d, dict) and SYSTEM_KEYS & set(d) for d in docs)


def discover(src: Path) -> tuple[list[Case], list[Case], list[str]]:
    systems: list[Case] = []
    unparsed: list[str] = []
    for top in SYSTEM_DIRS:
        base = src / top
        if not base.is_dir():
            continue
        for path in sorted(p for p in base.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file()):
            rel = str(path.relative_to(src))
            if path.name == "build.yml" or "/vendor/" in rel:
                continue
            kind = is_system_yaml(path.read_text(errors="replace"))
            if kind is None:
                unparsed.append(rel)  # still measured: both sides should reject it
            if kind is not False:
                systems.append(Case("build", path, rel))
    packages: list[Case] = []
    seen: set[Path] = set()
    for top in PACKAGE_DIRS:
        base = src / top
        if not base.is_dir():
            continue
        for build_yml in sorted(base.rglob("build.yml")):
            d = build_yml.parent
            if d not in seen and "/vendor/" not in str(d):
                seen.add(d)
                packages.append(Case("show-tag", d, str(d.relative_to(src))))
    return systems, packages, unparsed


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, Outcome]:
    start = time.perf_counter()
    try:
        p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, timeout=TIMEOUT, check=False)
        out = Outcome(p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))
    except subprocess.TimeoutExpired:
        out = Outcome(-999, "", f"timed out after {TIMEOUT:.0f} s")
    return time.perf_counter() - start, out


def editable_note(ours: Path) -> str:
    """Whether the ``linuxkit`` distribution behind the console script is an editable install."""
    try:
        interp = ours.read_text(errors="replace").splitlines()[0].removeprefix("#!").strip()
    except (OSError, IndexError):
        return "unknown (no console script)"
    code = (
        "import importlib.metadata as m, json\n"
        "d = m.distribution('linuxkit')\n"
        "u = json.loads(d.read_text('direct_url.json') or '{}')\n"
        "print(d.version, bool(u.get('dir_info', {}).get('editable')), u.get('url', ''))\n"
    )
    try:
        p = subprocess.run([interp, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    version, editable, url = [*p.stdout.strip().split(maxsplit=2), "", "", ""][:3]
    return f"linuxkit {version}, {'editable install of ' + url if editable == 'True' else 'regular install'}"


def error_line(text: str) -> str:
    """The first line of stderr that says what went wrong (not progress, hint or help lines)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("▸", "hint:")) and not GO_LOG_STAMP.match(ln)] or lines
    return useful[0][:200] if useful else "(no output)"


def first_difference(a: str, b: str) -> str:
    al, bl = a.splitlines(), b.splitlines()
    for i, (x, y) in enumerate(zip(al, bl, strict=False)):
        if x != y:
            return f"line {i + 1}: ours {x.strip()[:70]!r} / upstream {y.strip()[:70]!r}"
    if len(al) != len(bl):
        return f"ours {len(al)} lines, upstream {len(bl)} lines"
    return "same lines, whitespace or final newline differs"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--upstream-src",
        default=os.environ.get("LINUXKIT_UPSTREAM_SRC", "/work/upstream/src"),
        help="checkout of upstream's repository (default $LINUXKIT_UPSTREAM_SRC or /work/upstream/src)",
    )
    parser.add_argument(
        "--upstream",
        default=os.environ.get("LINUXKIT_UPSTREAM", "/work/upstream/bin/linuxkit"),
        help="upstream's linuxkit binary (default $LINUXKIT_UPSTREAM or /work/upstream/bin/linuxkit)",
    )
    parser.add_argument("--ours", default=str(ROOT / ".venv" / "bin" / "linuxkit"), help="our console script")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each file on each side")
    parser.add_argument("--version-repeat", type=int, default=21, help="runs of `linuxkit version` on each side")
    parser.add_argument("--only", choices=("build", "show-tag"), help="measure one command of the corpus only")
    parser.add_argument("--diff-dir", help="write each differing file's unified diff (ours vs upstream) here")
    parser.add_argument("--json", help="write every file's outcome and medians here")
    args = parser.parse_args()

    src = Path(args.upstream_src).resolve()
    upstream = Path(args.upstream)
    ours = Path(args.ours)
    if not (src / "examples").is_dir():
        raise SystemExit(f"{src} is not a checkout of upstream linuxkit (set --upstream-src or LINUXKIT_UPSTREAM_SRC)")
    for binary in (upstream, ours):
        if not os.access(binary, os.X_OK):
            raise SystemExit(f"{binary} is not executable")

    systems, packages, unparsed = discover(src)
    cases = [c for c in systems + packages if args.only in (None, c.kind)]

    with tempfile.TemporaryDirectory(prefix="bench-corpus-") as tmp:
        work = Path(tmp)
        proxy = f"http://127.0.0.1:{closed_loopback_port()}"
        env = dict(os.environ)
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
            env[var] = proxy
        env.pop("NO_PROXY", None)
        env.pop("no_proxy", None)
        env["LINUXKIT_CACHE"] = str(work / "cache")
        (work / "cache").mkdir()
        ours_env = dict(env)
        if ours_env.pop("PYTHONDONTWRITEBYTECODE", None):
            ours_env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        cache = ["--cache", str(work / "cache")]

        upstream_version = run([str(upstream), "version"], work, env)[1].stdout.strip().replace("\n", ", ")
        ours_version = run([str(ours), "version"], work, ours_env)[1].stdout.strip()  # also the warm-up
        print(f"upstream: {upstream} ({upstream_version})")
        print(f"ours:     {ours} ({ours_version}; {editable_note(ours)})")
        print(f"corpus:   {src}: {len(systems)} system YAMLs, {len(packages)} package directories", end="")
        print(f" ({len(unparsed)} of them not parsable as YAML)" if unparsed else "")
        print(f"repeat {args.repeat} per file, interleaved\n", flush=True)

        def argv_for(binary: Path, case: Case) -> tuple[list[str], Path]:
            if case.kind == "build":
                return [str(binary), "build", *cache, "--dry-run", case.path.name], case.path.parent
            return [str(binary), "pkg", "show-tag", *cache, str(case.path)], work

        sides = {"ours": (ours, ours_env), "upstream": (upstream, env)}
        for rnd in range(args.repeat):
            order = ["ours", "upstream"] if rnd % 2 == 0 else ["upstream", "ours"]
            for case in cases:
                for side in order:
                    binary, side_env = sides[side]
                    argv, cwd = argv_for(binary, case)
                    secs, outcome = run(argv, cwd, side_env)
                    case.times[side].append(secs)
                    case.first.setdefault(side, outcome)
            print(f"  round {rnd + 1}/{args.repeat} done", file=sys.stderr, flush=True)

        version_times: dict[str, list[float]] = {"ours": [], "upstream": []}
        for rnd in range(args.version_repeat):
            for side in ["ours", "upstream"] if rnd % 2 == 0 else ["upstream", "ours"]:
                binary, side_env = sides[side]
                version_times[side].append(run([str(binary), "version"], work, side_env)[0])

    # Timing table.
    print(
        f"{'command':<22}{'files':>6}{'ours ms':>10}{'upstream ms':>13}{'ratio':>8}{'sum ours s':>12}"
        f"{'sum upstr s':>13}{'ratio':>8}"
    )
    summary: dict[str, dict[str, float]] = {}
    for kind, label in (("build", "build --dry-run"), ("show-tag", "pkg show-tag")):
        group = [c for c in cases if c.kind == kind]
        if not group:
            continue
        med = {s: [statistics.median(c.times[s]) for c in group] for s in ("ours", "upstream")}
        m_o, m_u = statistics.median(med["ours"]), statistics.median(med["upstream"])
        s_o, s_u = sum(med["ours"]), sum(med["upstream"])
        summary[kind] = {
            "files": len(group),
            "median_ours_s": m_o,
            "median_upstream_s": m_u,
            "sum_ours_s": s_o,
            "sum_upstream_s": s_u,
        }
        print(
            f"{label:<22}{len(group):>6}{fmt_ms(m_o):>10}{fmt_ms(m_u):>13}{m_o / m_u:>7.1f}x"
            f"{s_o:>12.2f}{s_u:>13.2f}{s_o / s_u:>7.1f}x"
        )
    v_o, v_u = statistics.median(version_times["ours"]), statistics.median(version_times["upstream"])
    summary["version"] = {"runs": args.version_repeat, "median_ours_s": v_o, "median_upstream_s": v_u}
    print(f"{'version':<22}{'':>6}{fmt_ms(v_o):>10}{fmt_ms(v_u):>13}{v_o / v_u:>7.1f}x")

    # Output comparison.
    diff_dir = Path(args.diff_dir) if args.diff_dir else None
    if diff_dir:
        diff_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, list[dict[str, object]]] = {}
    for kind, label in (("build", "build --dry-run"), ("show-tag", "pkg show-tag")):
        group = [c for c in cases if c.kind == kind]
        if not group:
            continue
        buckets: dict[str, list[tuple[Case, str]]] = {
            "identical": [],
            "different": [],
            "ours fails": [],
            "upstream fails": [],
            "both fail": [],
        }
        for c in group:
            o, u = c.first["ours"], c.first["upstream"]
            if o.rc == 0 and u.rc == 0:
                if o.stdout == u.stdout:
                    buckets["identical"].append((c, ""))
                else:
                    buckets["different"].append((c, first_difference(o.stdout, u.stdout)))
                    if diff_dir:
                        name = c.rel.replace("/", "__") + ".diff"
                        (diff_dir / name).write_text(
                            "".join(
                                difflib.unified_diff(
                                    o.stdout.splitlines(True), u.stdout.splitlines(True), "ours", "upstream"
                                )
                            )
                        )
            elif o.rc != 0 and u.rc == 0:
                buckets["ours fails"].append((c, f"rc {o.rc}: {error_line(o.stderr)}"))
            elif o.rc == 0:
                buckets["upstream fails"].append((c, f"rc {u.rc}: {error_line(u.stderr)}"))
            else:
                same = " (same stdout)" if o.stdout == u.stdout else ""
                buckets["both fail"].append(
                    (c, f"ours rc {o.rc}: {error_line(o.stderr)} / upstream rc {u.rc}: {error_line(u.stderr)}{same}")
                )
        counts = ", ".join(f"{len(v)} {k}" for k, v in buckets.items())
        print(f"\n{label}: {counts}")
        for bucket, items in buckets.items():
            if bucket == "identical" or not items:
                continue
            print(f"  {bucket}:")
            for c, why in items:
                print(f"    {c.rel}: {why}")
        report[kind] = [
            {
                "path": c.rel,
                "bucket": b,
                "why": why,
                "ours_rc": c.first["ours"].rc,
                "upstream_rc": c.first["upstream"].rc,
                "ours_ms": statistics.median(c.times["ours"]) * 1000,
                "upstream_ms": statistics.median(c.times["upstream"]) * 1000,
            }
            for b, items in buckets.items()
            for c, why in items
        ]
    if unparsed:
        print(f"\nnot parsable as YAML (by PyYAML): {', '.join(unparsed)}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "upstream": upstream_version,
                    "ours": ours_version,
                    "summary": summary,
                    "files": report,
                    "unparsed": unparsed,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
