"""config.json and runtime.json compared byte for byte with what upstream LinuxKit wrote for the same input.

The expected files under tests/data/containerspec/cases/*/expected/ come from upstream's binary (see the README there).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from linuxkit.config import schema
from linuxkit.containerspec.ids import allocate_ids
from linuxkit.containerspec.oci import container_spec, runtime_json, runtime_mount

CASES = Path(__file__).resolve().parents[1] / "data" / "containerspec" / "cases"


def _rootfs_mounts(prefix: str, readonly: bool, ref: str, seen: dict[str, str]) -> list[dict[str, Any]]:
    """What upstream's bundle writer puts in front of the runtime mounts (the rootfs engineer's job;
    reproduced here so that whole runtime.json files can be compared)."""
    root = f"{prefix}/{'rootfs' if readonly else 'lower'}"
    root = seen.setdefault(ref, root)
    if readonly:
        return [runtime_mount(f"/{prefix}/rootfs", "", f"/{root}", ["bind"])]
    return [
        runtime_mount(f"/{prefix}/tmp", "tmpfs", "tmpfs", []),
        runtime_mount(f"/{prefix}/tmp", "", "", ["remount", "private"]),
        runtime_mount(
            f"/{prefix}/rootfs",
            "overlay",
            "overlay",
            [f"lowerdir=/{root}", f"upperdir=/{prefix}/tmp/upper", f"workdir=/{prefix}/tmp/work"],
        ),
    ]


def _bundles(case: Path) -> list[tuple[str, bytes, bytes, bytes, bytes]]:
    moby = schema.parse(schema.Moby, yaml.safe_load((case / "input.yml").read_text()))
    images = json.loads((case / "images.json").read_text())
    ids = allocate_ids(moby)
    volumes = {v.name or "": v for v in moby.volumes or ()}
    seen: dict[str, str] = {}
    out = []
    for section, entries in (("onboot", moby.onboot), ("onshutdown", moby.onshutdown), ("services", moby.services)):
        for index, image in enumerate(entries or ()):
            bundle = f"{index:03d}-{image.name}" if section != "services" else image.name
            prefix = f"containers/{section}/{bundle}"
            spec = container_spec(image, images[image.image], ids, volumes)
            runtime = dict(spec.runtime)
            runtime["mounts"] = _rootfs_mounts(prefix, spec.readonly, image.image, seen) + runtime["mounts"]
            expected = case / "expected" / section / bundle
            out.append(
                (
                    prefix,
                    spec.config_json,
                    (expected / "config.json").read_bytes(),
                    runtime_json(runtime),
                    (expected / "runtime.json").read_bytes(),
                )
            )
    return out


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if (p / "input.yml").exists()))
def test_matches_upstream(case: str) -> None:
    bundles = _bundles(CASES / case)
    assert bundles
    for prefix, config, want_config, runtime, want_runtime in bundles:
        assert config.decode() == want_config.decode(), prefix
        assert config == want_config, prefix
        assert runtime.decode() == want_runtime.decode(), prefix
        assert runtime == want_runtime, prefix
