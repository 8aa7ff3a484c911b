"""How much each driver group of a kernel package adds: module bytes, raw and as our initrd compresses them.

The groups are the ``# --- NAME ---`` comments of the package's ``build.yml`` module list (see
``pkg/kernel-cloud/build.yml``). The modules (with their dependencies, from ``modules.dep``) come from the
package's image itself: a ``linuxkit build -f tar`` of a system holding only that kernel. Each group is
measured over the first group (the base) alone, so a module two groups share (``nvme``: AWS and GCE) counts
in both. Run: ``.venv/bin/python benchmarks/bench_kernel_groups.py [pkg/kernel-cloud]``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from isal import isal_zlib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from linuxkit.formats.initrd import GZIP_LEVEL  # noqa: E402
from linuxkit.packages.kmod import module_name  # noqa: E402


def groups_of(build_yml: Path) -> list[tuple[str, list[str]]]:
    groups: list[tuple[str, list[str]]] = []
    for line in build_yml.read_text().splitlines():
        if m := re.match(r"\s*# --- (.*?) ---", line):
            groups.append((m.group(1), []))
        elif groups and (m := re.match(r"\s*- ([A-Za-z0-9_-]+)\s*(#.*)?$", line)):
            groups[-1][1].append(module_name(m.group(1)))
    return groups


def gz(data: bytes) -> int:
    c = isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, 16 + isal_zlib.MAX_WBITS)
    return len(c.compress(data) + c.flush())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("package", nargs="?", default=str(ROOT / "pkg" / "kernel-cloud"))
    args = parser.parse_args()
    pkg = Path(args.package).resolve()
    groups = groups_of(pkg / "build.yml")
    with tempfile.TemporaryDirectory(prefix="bench-kgroups-") as tmp:
        yml = Path(tmp) / "k.yml"
        yml.write_text(f'kernel:\n  image: "@pkg:{os.path.relpath(pkg, tmp)}"\n')  # relative to the YAML
        subprocess.run(
            [sys.executable, "-m", "linuxkit.cli.main", "-q", "build", "-f", "tar", "--o", f"{tmp}/k.tar", yml],
            check=True,
        )
        files: dict[str, bytes] = {}
        deps: dict[str, list[str]] = {}
        kernel = 0
        with tarfile.open(f"{tmp}/k.tar") as tf:
            for member in tf:
                f = tf.extractfile(member) if member.isfile() else None
                if f is None:
                    continue
                if member.name.endswith(".ko"):
                    files[module_name(member.name)] = f.read()
                elif member.name.endswith("/modules.dep"):
                    for line in f.read().decode().splitlines():
                        mod, _, rest = line.partition(":")
                        deps[module_name(mod)] = [module_name(d) for d in rest.split()]
                elif member.name == "boot/kernel":
                    kernel = member.size

    def closure(names: list[str]) -> set[str]:
        return {n for name in names for n in (name, *deps.get(name, []))}

    base = closure(groups[0][1])
    total = sum(map(len, files.values()))
    print(f"kernel (vmlinuz): {kernel / 1e6:.1f} MB; {len(files)} modules, {total / 1e6:.1f} MB")
    print(f"{'group':52} {'modules':>7} {'raw MB':>7} {'gzip MB':>7}")
    for i, (title, names) in enumerate(groups):
        mods = closure(names) if i == 0 else closure(names) - base
        data = b"".join(files[m] for m in sorted(mods))
        print(f"{title[:52]:52} {len(mods):7d} {len(data) / 1e6:7.2f} {gz(data) / 1e6:7.2f}")
    every = b"".join(files[m] for m in sorted(files))
    print(f"{'all':52} {len(files):7d} {len(every) / 1e6:7.2f} {gz(every) / 1e6:7.2f}")


if __name__ == "__main__":
    main()
