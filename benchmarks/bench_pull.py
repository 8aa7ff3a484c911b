"""Wall time of ``linuxkit cache pull`` against ``skopeo copy docker://... oci:DIR`` in the same run.

A local ``docker-registry`` (Debian package) on a free loopback port serves one image with
~50 MB of incompressible layers; each round pulls it into an empty cache / an empty directory,
both tools fresh processes, alternating. Prints the medians and the ratio (goal: ours >= 2x),
and, as the floor no client can beat, ``curl`` fetching the same blobs in parallel to /dev/null,
with the ratio of ours to it (goal for ~500 MB in 10 layers: <= 1.2x end to end). A verifying
baseline adds what every client that checks and keeps the blobs must do: each blob piped through
``tee FILE`` (written) and ``openssl dgst -sha256`` (hashed), 6 at a time (its pipes copy the bytes
twice more than a client in one process has to, so it is no floor).

Our fresh processes run as an installed linuxkit does: with compiled bytecode. When the
environment sets ``PYTHONDONTWRITEBYTECODE`` (CI images do) every run would compile every module
again; the children then get a private ``PYTHONPYCACHEPREFIX`` instead, filled by a warm-up run.

Run: `.venv/bin/python benchmarks/bench_pull.py [--mb 50] [--layers 5] [--repeat 7]`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.imagefactory import Entry, ImageSpec, file, write_layout_tar  # noqa: E402

from linuxkit.oci.archive import import_archive  # noqa: E402
from linuxkit.oci.cache import Cache  # noqa: E402
from linuxkit.oci.registry import RegistryOptions, push  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_registry(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("docker-registry")
    if binary is None:
        raise SystemExit("docker-registry is not installed (apt-get install docker-registry)")
    port = free_port()
    config = work / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {work / 'registry-data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1) as resp:
                if resp.status == 200:
                    return proc, f"127.0.0.1:{port}"
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("docker-registry did not start")


def publish(work: Path, host: str, total_mb: int, layers: int) -> str:
    """Push one image of ``layers`` layers totalling ``total_mb`` MB of incompressible data."""
    per_layer = total_mb * 1000 * 1000 // layers
    spec = ImageSpec(
        "docker.io/bench/pull:1",
        [[Entry(f"data/layer{i}.bin", size=per_layer), file(f"data/small{i}", "x")] for i in range(layers)],
        cmd=["/bin/sh"],
    )
    tar = work / "image.tar"
    write_layout_tar(tar, [spec])
    cache = Cache(work / "src-cache")
    with tar.open("rb") as stream:
        import_archive(cache, stream)
    ref = f"{host}/bench/pull:1"
    push(cache, "bench/pull:1", ref, options=RegistryOptions(use_docker_config=False))
    return ref


IN_PROCESS = (
    "import sys, time\n"
    "from linuxkit.oci.cache import Cache\n"
    "from linuxkit.oci.registry import RegistryOptions, pull\n"
    "t = time.monotonic()\n"
    "pull(Cache(sys.argv[1]), sys.argv[2], options=RegistryOptions(use_docker_config=False))\n"
    "print(time.monotonic() - t)\n"
)


def in_process(cache: Path, ref: str) -> float:
    """The pull alone, without the interpreter's start and the CLI's imports."""
    out = subprocess.run(
        [sys.executable, "-c", IN_PROCESS, str(cache), ref], check=True, capture_output=True, text=True
    )
    return float(out.stdout)


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(
    cmd: list[str], env: dict[str, str] | None = None, cpu: list[tuple[float, float]] | None = None, registry: int = 0
) -> float:
    """Wall seconds of ``cmd``; with ``cpu``, also appends the CPU seconds of the command (its
    processes) and of the registry (process ``registry``) while it ran."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    served = process_cpu(registry) if cpu is not None else 0.0
    start = time.monotonic()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    took = time.monotonic() - start
    if cpu is not None:
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        cpu.append((used, process_cpu(registry) - served))
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr.decode(errors='replace')}")
    return took


def blob_urls(ref: str) -> list[str]:
    """The URL of every blob (config and layers) of ``ref``'s manifest."""
    host, _, rest = ref.partition("/")
    repo, _, tag = rest.rpartition(":")
    request = urllib.request.Request(
        f"http://{host}/v2/{repo}/manifests/{tag}", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        manifest = json.loads(resp.read())
    return [f"http://{host}/v2/{repo}/blobs/{blob['digest']}" for blob in [manifest["config"], *manifest["layers"]]]


def curl_config(work: Path, ref: str) -> Path | None:
    """A curl config fetching every blob of ``ref``'s manifest (to /dev/null); None without curl."""
    if shutil.which("curl") is None:
        return None
    lines = []
    for url in blob_urls(ref):
        lines += [f"url = {url}", "output = /dev/null"]
    config = work / "curl.cfg"
    config.write_text("\n".join(lines) + "\n")
    return config


#: The same blobs, 6 at a time, each ``curl | tee FILE | openssl dgst -sha256``: the work of any client
#: that verifies and keeps them, plus two pipes (``sha256sum`` is not used: it has no SHA-NI, 3x slower).
VERIFY = 'curl -sf "$1" | tee "$2" | openssl dgst -sha256 >/dev/null'


def verify_command(ref: str, out: Path) -> list[str] | None:
    """A command fetching every blob to a file in ``out`` while hashing it; None without curl/openssl."""
    if shutil.which("curl") is None or shutil.which("openssl") is None:
        return None
    args = []
    for url in blob_urls(ref):
        args += [url, str(out / url.rsplit(":", 1)[1])]
    script = 'printf "%s\\n" "$@" | xargs -P 6 -n 2 sh -c \'' + VERIFY + "' _"
    return ["sh", "-c", script, "_", *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=50, help="total layer size (MB)")
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    skopeo = shutil.which("skopeo")
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="bench-pull-") as tmp:
        work = Path(tmp)
        proc, host = start_registry(work)
        if env.pop("PYTHONDONTWRITEBYTECODE", None):
            env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        try:
            ref = publish(work, host, args.mb, args.layers)
            curl = curl_config(work, ref)
            verify = verify_command(ref, work / "verify")
            verifying: list[float] = []
            ours: list[float] = []
            inner: list[float] = []
            theirs: list[float] = []
            floor: list[float] = []
            cpu: dict[str, list[tuple[float, float]]] = {"ours": [], "curl": [], "verifying": []}
            command = [sys.executable, "-m", "linuxkit.cli.main", "--cache", "CACHE", "cache", "pull", ref]
            timed([c.replace("CACHE", str(work / "warm-up")) for c in command], env)
            shutil.rmtree(work / "warm-up")
            if skopeo:  # warmed up too: the same page cache for both
                timed([skopeo, "copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{work / 'warm-up'}:x"])
                shutil.rmtree(work / "warm-up")
            for i in range(args.repeat):
                cache = work / f"cache{i}"
                ours.append(timed([c.replace("CACHE", str(cache)) for c in command], env, cpu["ours"], proc.pid))
                shutil.rmtree(cache)
                inner.append(in_process(cache, ref))
                shutil.rmtree(cache)
                if skopeo:
                    out = work / f"oci{i}"
                    theirs.append(timed([skopeo, "copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{out}:x"]))
                    shutil.rmtree(out)
                if curl:
                    fetch = ["curl", "-sf", "--parallel", "--parallel-max", "6", "-K", str(curl)]
                    floor.append(timed(fetch, None, cpu["curl"], proc.pid))
                if verify:
                    (work / "verify").mkdir()
                    verifying.append(timed(verify, None, cpu["verifying"], proc.pid))
                    shutil.rmtree(work / "verify")
        finally:
            proc.terminate()
            proc.wait()
    ours_median = statistics.median(ours)
    print(f"image: {args.mb} MB in {args.layers} layers, {args.repeat} rounds")
    print(
        f"linuxkit cache pull: median {ours_median:.3f}s, min {min(ours):.3f}s,"
        f" {args.mb / ours_median:.0f} MB/s (all: {', '.join(f'{t:.3f}' for t in ours)})"
    )
    inner_median = statistics.median(inner)
    print(f"  of which the pull itself (in-process): median {inner_median:.3f}s, min {min(inner):.3f}s")
    if theirs:
        theirs_median = statistics.median(theirs)
        print(
            f"skopeo copy:         median {theirs_median:.3f}s, min {min(theirs):.3f}s,"
            f" {args.mb / theirs_median:.0f} MB/s (all: {', '.join(f'{t:.3f}' for t in theirs)})"
        )
        print(f"ratio skopeo/ours: {theirs_median / ours_median:.2f}x (goal >= 2x)")
        print(f"ratio skopeo/ours without our start-up: {theirs_median / inner_median:.2f}x")
    else:
        print("skopeo not installed (apt-get install skopeo): no baseline")
    if floor:
        print(
            f"floor (curl, the same blobs in parallel to /dev/null, no hashing or writing):"
            f" median {statistics.median(floor):.3f}s, min {min(floor):.3f}s"
        )
        floor_median = statistics.median(floor)
        print(f"ratio ours/floor: {ours_median / floor_median:.2f}x end to end (goal <= 1.2x),")
        print(f"  {inner_median / floor_median:.2f}x for the pull itself")
    if verifying:
        verify_median = statistics.median(verifying)
        print(
            f"verifying baseline (curl | tee FILE | openssl dgst -sha256, 6 at a time):"
            f" median {verify_median:.3f}s, min {min(verifying):.3f}s"
        )
        print(
            f"ratio ours/verifying baseline: {ours_median / verify_median:.2f}x end to end,"
            f" {inner_median / verify_median:.2f}x for the pull itself"
        )

    print("CPU seconds (medians; user + system) of the client and of the registry while it ran:")
    for name, used in cpu.items():
        if used:
            client = statistics.median(u[0] for u in used)
            served = statistics.median(u[1] for u in used)
            cores = os.cpu_count() or 1
            print(
                f"  {name:<10} client {client:.2f} + registry {served:.2f} = {client + served:.2f}"
                f" (no less than {(client + served) / cores:.2f}s of wall time on {cores} cores)"
            )


if __name__ == "__main__":
    main()
