"""``debian.lock``: the exact Debian packages a package image is built from, per architecture.

The lock pins name, version, suite, pool file, size and sha256 of every ``.deb`` (taken from the
signed archive indexes when it was made), so a build from a lock needs no index at all and gives the
same image anywhere. ``inputs`` is a digest of the ``debian:`` keys that decide the resolution
(packages, exclusions, suites): when they change, the lock is stale and is made again.

The file is YAML written with sorted keys and one package per block, so diffs stay readable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..debian.model import DebRef
from ..errors import UserError
from ..outputs import OutputSet

LOCK_NAME = "debian.lock"
LOCK_VERSION = 1
_HEADER = "# Made by `linuxkit pkg lock`; do not edit. The exact Debian packages of this image.\n"
_FIELDS = ("name", "version", "architecture", "suite", "filename", "size", "sha256")


def inputs_digest(
    packages: Sequence[str], exclude_packages: Sequence[str], suites: Sequence[str], components: Sequence[str] = ()
) -> str:
    """What a lock was resolved from; a different digest means the lock is stale. ``components`` counts
    only when given (``main`` alone, the default, leaves the digests of older locks as they were)."""
    inputs: dict[str, list[str]] = {
        "packages": list(packages),
        "exclude-packages": sorted(exclude_packages),
        "suites": list(suites),
    }
    if components:
        inputs["components"] = list(components)
    data = json.dumps(inputs, sort_keys=True)
    return "sha256:" + hashlib.sha256(data.encode()).hexdigest()


@dataclass
class Lock:
    inputs: str
    arches: dict[str, list[DebRef]] = field(default_factory=dict)

    def for_arch(self, arch: str, inputs: str) -> list[DebRef] | None:
        """The locked packages of ``arch`` when the lock is current for ``inputs``."""
        if self.inputs != inputs:
            return None
        return self.arches.get(arch)


def _ref(item: Any, path: Path, arch: str, index: int) -> DebRef:
    where = f"{path}: arches.{arch}[{index}]"
    if not isinstance(item, Mapping) or set(item) != set(_FIELDS):
        raise UserError(f"{where}: expected the keys {', '.join(_FIELDS)}", hint=_REMAKE)
    try:
        return DebRef(
            name=str(item["name"]),
            version=str(item["version"]),
            architecture=str(item["architecture"]),
            suite=str(item["suite"]),
            filename=str(item["filename"]),
            size=int(item["size"]),
            sha256=str(item["sha256"]),
        )
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where}: {exc}", hint=_REMAKE) from exc


_REMAKE = "remake it with: linuxkit pkg lock DIR"


def read_lock(path: Path) -> Lock | None:
    """The lock at ``path``, or ``None`` when there is none."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not a valid lock file: {exc}", hint=_REMAKE) from exc
    if not isinstance(doc, dict) or doc.get("version") != LOCK_VERSION or not isinstance(doc.get("arches"), dict):
        raise UserError(f"{path}: not a version {LOCK_VERSION} lock file", hint=_REMAKE)
    lock = Lock(inputs=str(doc.get("inputs", "")))
    for arch, items in doc["arches"].items():
        if not isinstance(items, list):
            raise UserError(f"{path}: arches.{arch} must be a list", hint=_REMAKE)
        lock.arches[str(arch)] = [_ref(item, path, str(arch), i) for i, item in enumerate(items)]
    return lock


def render_lock(lock: Lock) -> str:
    doc = {
        "version": LOCK_VERSION,
        "inputs": lock.inputs,
        "arches": {
            arch: [{k: getattr(ref, k) for k in _FIELDS} for ref in sorted(refs, key=lambda r: r.name)]
            for arch, refs in sorted(lock.arches.items())
        },
    }
    return _HEADER + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1000)


def write_lock(path: Path, lock: Lock) -> None:
    """Write ``lock`` atomically (unchanged content leaves the file untouched)."""
    text = render_lock(lock)
    if path.exists() and path.read_text() == text:
        return
    with OutputSet() as outputs:
        with outputs.open(path) as fh:
            fh.write(text.encode())
        outputs.commit()
