"""Wall time, CPU time and peak memory of the kernel+initrd split, against its floor and upstream in the same run.

Measures, each in a fresh process: ``make_kernel_initrd`` alone on a rootfs tar made by our
``build --format tar``; our whole ``linuxkit build --format kernel+initrd``; the floor; and, when an
upstream binary exists (``LINUXKIT_UPSTREAM``, default ``/work/upstream/bin/linuxkit``), upstream's
``build --format kernel+initrd`` of the same YAML from its own cache of the same images.

The floor is the work no kernel+initrd build can skip, on the same two threads ours uses: one thread
decompresses every layer blob of the images (ISA-L, to nowhere) while another compresses the very
cpio bytes of our initrd with our gzip level in our 1 MiB blocks (:data:`GZIP_LEVEL`, ISA-L); the
table prints each side's own time too. Goals: ours at most 1.5x the floor, our initrd at most 1.05x
upstream's bytes.

The kernel image holds a 14 MB kernel (pseudo-random, like a compressed kernel) and a kernel tar of
modules. The init image holds ``--mb`` MB of files in ``--layers`` layers; ``--content binary``
(the default) is like programs and libraries: files of 4 KiB to 4 MiB (log-uniform) cut from a
16 MiB stream of short byte sequences drawn Zipf-like from a vocabulary of 4096, which gzip
compresses about 2:1 (and not faster than real binaries); ``--content mixed`` is half text-like
and half incompressible, as this benchmark had before.

Python children run with compiled bytecode, as an installed linuxkit does: when the environment
sets ``PYTHONDONTWRITEBYTECODE``, they get a private ``PYTHONPYCACHEPREFIX`` instead.

``--small-files N`` adds N small text files (per-entry costs). ``--baseline SRC`` also times the
``linuxkit`` package found in directory ``SRC`` (e.g. an older version). Each command runs once to
warm up, then ``--repeat`` times, interleaved; the table shows median wall and CPU seconds and the
largest peak RSS. Run: ``.venv/bin/python benchmarks/bench_initrd.py [--mb 104] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from isal import isal_zlib  # noqa: E402
from tests.imagefactory import Entry, ImageSpec, directory, file, hardlink, symlink, write_layout_tar  # noqa: E402

from linuxkit.formats.initrd import GZIP_LEVEL  # noqa: E402
from linuxkit.formats.pipe import BLOCK  # noqa: E402

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


#: The floor: argv = level, block, times file, cpio, layer blobs. One thread decompresses the layers,
#: another compresses the cpio; each writes its own seconds to the times file.
FLOOR = (
    "import sys, threading, time\n"
    "from isal import isal_zlib\n"
    "level, block, times, cpio, layers = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]\n"
    "took = {}\n"
    "def decompress():\n"
    "    t = time.monotonic()\n"
    "    for path in layers:\n"
    "        d = isal_zlib.decompressobj(16 + isal_zlib.MAX_WBITS)\n"
    "        with open(path, 'rb') as f:\n"
    "            while chunk := f.read(block):\n"
    "                d.decompress(chunk)\n"
    "    took['decompress'] = time.monotonic() - t\n"
    "def compress():\n"
    "    t = time.monotonic()\n"
    "    z = isal_zlib.compressobj(level, isal_zlib.DEFLATED, 16 + isal_zlib.MAX_WBITS)\n"
    "    with open(cpio, 'rb') as f:\n"
    "        while chunk := f.read(block):\n"
    "            z.compress(chunk)\n"
    "    z.flush()\n"
    "    took['compress'] = time.monotonic() - t\n"
    "threads = [threading.Thread(target=decompress), threading.Thread(target=compress)]\n"
    "for th in threads: th.start()\n"
    "for th in threads: th.join()\n"
    "open(times, 'w').write(f\"{took['decompress']} {took['compress']}\")\n"
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


def _binary_stream(size: int, seed: int) -> bytes:
    """Bytes like machine code: short sequences (2-10 bytes) drawn Zipf-like from a vocabulary of
    4096; gzip -6 compresses them about 2.1:1, ISA-L level 3 about 2:1, at real binaries' speed."""
    rng = random.Random(seed)
    vocab = [rng.randbytes(rng.randint(2, 10)) for _ in range(4096)]
    cum = list(itertools.accumulate(1 / (i + 1) for i in range(len(vocab))))
    parts: list[bytes] = []
    have = 0
    while have < size:
        parts.append(b"".join(rng.choices(vocab, cum_weights=cum, k=65536)))
        have += len(parts[-1])
    return b"".join(parts)[:size]


def _binary_files(total: int, seed: int) -> list[Entry]:
    """Files of 4 KiB to 4 MiB (log-uniform), ``total`` bytes in all, each cut at a random place of
    one 16 MiB binary-like stream (farther apart than gzip's 32 KiB window: no file repeats another
    for the compressor)."""
    rng = random.Random(seed)
    stream = _binary_stream(16 << 20, seed)
    ring = stream + stream[: 4 << 20]
    entries: list[Entry] = [directory("usr/lib")]
    left, i = total, 0
    while left > 0:
        size = min(left, int(4096 * 2 ** rng.uniform(0, 10)))
        at = rng.randrange(len(stream))
        if i % 50 == 0:
            entries.append(directory(f"usr/lib/d{i // 50}"))
        entries.append(file(f"usr/lib/d{i // 50}/lib{i}.so", ring[at : at + size], mode=0o755))
        left -= size
        i += 1
    return entries


def make_images(work: Path, mb: int, small_files: int = 0, content: str = "binary", layers: int = 4) -> Path:
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
    entries: list[Entry] = [directory("bin"), directory("usr"), directory("usr/share")]
    if content == "binary":
        entries += _binary_files(mb << 20, 1)
    else:
        half = (mb << 20) // 2
        per = 256 << 10
        for i in range(half // per):
            entries.append(file(f"usr/share/t{i}.txt", _text(per, i)))
        for i in range(half // (1 << 20)):
            entries.append(Entry(f"usr/share/r{i}.bin", size=1 << 20))
    if small_files:  # per-entry costs: a real rootfs has thousands of small files
        entries.append(directory("usr/share/small"))
    for i in range(small_files):
        if i % 100 == 0:
            entries.append(directory(f"usr/share/small/d{i // 100}"))
        entries.append(file(f"usr/share/small/d{i // 100}/f{i}.txt", _text(300 + i % 2000, i)))
    # the payload in ``layers`` layers, each with every directory (as image layers repeat them)
    dirs = [e for e in entries if e.kind == "dir"]
    files = [e for e in entries if e.kind != "dir"]
    per_layer = -(-len(files) // max(1, layers))
    parts = [dirs + files[i : i + per_layer] for i in range(0, len(files), per_layer)]
    parts[-1] += [file("bin/busybox", _text(2 << 20, 7), mode=0o755), hardlink("bin/sh", "bin/busybox")]
    parts[-1] += [symlink("bin/ls", "busybox")]
    init = ImageSpec("example.org/bench/init:1", parts)
    layout = work / "images.tar"
    write_layout_tar(layout, [kernel, init])
    (work / "bench.yml").write_text(
        "kernel:\n  image: example.org/bench/kernel:1\n  cmdline: console=ttyS0\ninit:\n  - example.org/bench/init:1\n"
    )
    return layout


def layer_blobs(cache: Path) -> list[Path]:
    """Every gzip blob of the cache: the layers of the benchmark's images."""
    blobs = sorted((cache / "blobs" / "sha256").iterdir())
    return [b for b in blobs if b.read_bytes()[:2] == b"\x1f\x8b"]


def gunzip(src: Path, dest: Path) -> None:
    """Decompress our initrd (one gzip member) into ``dest``."""
    plain = isal_zlib.decompressobj(16 + isal_zlib.MAX_WBITS)
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        while chunk := fin.read(BLOCK):
            fout.write(plain.decompress(chunk))
        fout.write(plain.flush())


def run(
    mb: int,
    repeat: int,
    baseline: Path | None = None,
    small_files: int = 0,
    content: str = "binary",
    layers: int = 4,
) -> None:
    ours = [sys.executable, "-m", "linuxkit.cli.main", "-q"]
    upstream = os.environ.get("LINUXKIT_UPSTREAM", "/work/upstream/bin/linuxkit")
    with tempfile.TemporaryDirectory(prefix="lkbench-initrd-") as tmp:
        work = Path(tmp)
        if os.environ.pop("PYTHONDONTWRITEBYTECODE", None):
            # run as an installed linuxkit runs, with compiled bytecode (filled by the first runs),
            # not compiling every module again in each run
            os.environ["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        layout = make_images(work, mb, small_files, content, layers)
        cache, up_cache = work / "cache", work / "upcache"
        subprocess.run([*ours, "--cache", str(cache), "cache", "import", str(layout)], check=True)
        yml = str(work / "bench.yml")
        rootfs = work / "rootfs.tar"
        subprocess.run([*ours, "--cache", str(cache), "build", "--no-sbom", "--o", str(rootfs), yml], check=True)
        ours_build = [*ours, "--cache", str(cache), "build", "-f", "kernel+initrd", "--no-sbom", "--dir=o", yml]
        # our initrd's cpio: the bytes the floor compresses
        subprocess.run(ours_build, check=True, cwd=work)
        cpio = work / "initrd.cpio"
        gunzip(work / "o" / "bench-initrd.img", cpio)
        blobs = layer_blobs(cache)
        times = work / "floor-times"
        cmds = {
            "floor": [sys.executable, "-c", FLOOR, str(GZIP_LEVEL), str(BLOCK), str(times), str(cpio)],
            "split only": [sys.executable, "-c", SPLIT, str(rootfs), str(work / "split")],
            "ours build": ours_build,
        }
        cmds["floor"] += [str(b) for b in blobs]
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
        for cmd in cmds.values():  # warm-up: page cache, bytecode
            measure(cmd, work)
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in cmds}
        parts: list[tuple[float, float]] = []  # the floor's decompress and compress seconds
        for _ in range(repeat):  # interleaved, so a busy spell of the machine hits every command alike
            for name, cmd in cmds.items():
                results[name].append(measure(cmd, work))
                if name == "floor":
                    took = times.read_text().split()
                    parts.append((float(took[0]), float(took[1])))
        packed = sum(b.stat().st_size for b in blobs)
        print(
            f"rootfs tar {rootfs.stat().st_size / 1e6:.0f} MB, cpio {cpio.stat().st_size / 1e6:.0f} MB"
            f" ({content} content), {len(blobs)} layer blobs {packed / 1e6:.0f} MB; medians of {repeat} runs"
        )
        print(f"{'what':<16} {'wall s':>7} {'cpu s':>7} {'peak MiB':>9} {'vs floor':>9} {'vs upstream':>12}")
        med = {name: tuple(statistics.median(r[i] for r in runs) for i in range(2)) for name, runs in results.items()}
        rss = {name: max(r[2] for r in runs) for name, runs in results.items()}
        up = "upstream build" if "upstream build" in results else None
        for name in results:
            fv = f"{med[name][0] / med['floor'][0]:.2f}x"
            tv = f"{med[name][0] / med[up][0]:.2f}x" if up else "-"
            print(f"{name:<16} {med[name][0]:>7.2f} {med[name][1]:>7.2f} {rss[name]:>9.1f} {fv:>9} {tv:>12}")
        dec = statistics.median(p[0] for p in parts)
        comp = statistics.median(p[1] for p in parts)
        print(
            f"floor: decompressing the layers {dec:.2f}s alongside compressing the cpio {comp:.2f}s"
            f" (ISA-L level {GZIP_LEVEL}), in one process with two threads"
        )
        print(f"ours build / floor: {med['ours build'][0] / med['floor'][0]:.2f}x (goal <= 1.5x)")
        sizes = {}
        for label, d in (("ours", work / "o"), ("baseline", work / "b"), ("upstream", work / "u")):
            img = d / "bench-initrd.img"
            if img.exists():
                sizes[label] = img.stat().st_size
                ratio = cpio.stat().st_size / sizes[label]
                print(f"{label} initrd.img {sizes[label] / 1e6:.1f} MB (cpio compressed {ratio:.2f}:1)")
        if "upstream" in sizes:
            print(f"initrd size ours / upstream: {sizes['ours'] / sizes['upstream']:.3f}x (goal <= 1.05x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=104, help="payload of the init image in MiB")
    parser.add_argument("--content", choices=("binary", "mixed"), default="binary", help="see above")
    parser.add_argument("--layers", type=int, default=4, help="layers of the init image")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--small-files", type=int, default=0, help="also add this many small text files")
    parser.add_argument("--baseline", type=Path, help="also time the linuxkit package in this src directory")
    args = parser.parse_args()
    started = time.monotonic()
    run(args.mb, args.repeat, args.baseline, args.small_files, args.content, args.layers)
    print(f"total benchmark time {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
