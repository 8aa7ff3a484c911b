"""Temporary cache files left by killed processes are removed, by one sweep per cache and process;
ones a live writer holds are not."""

from __future__ import annotations

import fcntl
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from registry_fakes import FakeTransport, Reply, Sent

from linuxkit.oci.cache import Cache
from linuxkit.oci.digest import of_bytes
from linuxkit.oci.layout import STALE_AFTER, TMP_PREFIX, AtomicFile, Layout
from linuxkit.oci.mediatypes import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST
from linuxkit.oci.registry import RegistryOptions, pull


def _old(path: Path, age: float = STALE_AFTER + 60) -> Path:
    then = time.time() - age
    os.utime(path, (then, then), follow_symlinks=False)
    return path


def test_only_unlocked_old_temporary_files_are_removed(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.ensure()
    layout.blobs_dir.mkdir(parents=True)
    dead = layout.blobs_dir / f"{TMP_PREFIX}blob-dead"
    dead.write_bytes(b"partial")
    _old(dead)
    index_tmp = tmp_path / f"{TMP_PREFIX}index.json-0123"
    index_tmp.write_bytes(b"{")
    _old(index_tmp)
    young = layout.blobs_dir / f"{TMP_PREFIX}blob-young"
    young.write_bytes(b"just created")
    live = AtomicFile(layout.blobs_dir / "blob")  # a writer of this process, still writing
    live.write(b"in progress")
    _old(live.tmp)
    foreign = layout.blobs_dir / f"{TMP_PREFIX}blob-foreign"  # locked by another open file (another process)
    foreign.write_bytes(b"x")
    _old(foreign)
    holder = os.open(foreign, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    link = layout.blobs_dir / f"{TMP_PREFIX}blob-link"
    (tmp_path / "precious").write_bytes(b"keep")
    link.symlink_to(tmp_path / "precious")
    _old(link)
    try:
        removed = layout.remove_stale_temps()
        assert sorted(removed) == sorted([dead, index_tmp])
        assert young.exists() and live.tmp.exists() and foreign.exists() and link.is_symlink()
        assert (tmp_path / "precious").read_bytes() == b"keep"
        assert layout.exists()  # index.json itself untouched
        assert (
            live.commit(layout.blobs_dir / "final").read_bytes() == b"in progress"
        )  # the live writer finished undisturbed
    finally:
        os.close(holder)
    assert layout.remove_stale_temps() == [foreign]  # its holder is gone now
    assert layout.remove_stale_temps(min_age=0) == [young]


def test_commit_renames_before_the_lock_is_dropped(tmp_path: Path) -> None:
    """A cleaner that finds the file unlocked must never find it still under its temporary name."""
    out = AtomicFile(tmp_path / "f")
    out.write(b"data")
    seen: list[bool] = []
    real_close = out.file.close

    def close() -> None:
        seen.append(out.tmp.exists())
        real_close()

    out.file.close = close  # type: ignore[method-assign]
    out.commit()
    assert seen == [False] and (tmp_path / "f").read_bytes() == b"data"


def test_a_missing_layout_has_nothing_to_clean(tmp_path: Path) -> None:
    assert Layout(tmp_path / "none").remove_stale_temps() == []
    assert not (tmp_path / "none").exists()


def _leftover(directory: Path, name: str) -> Path:
    path = directory / f"{TMP_PREFIX}{name}"
    path.write_bytes(b"partial")
    return _old(path)


@pytest.fixture
def sweeps(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The cache roots of every sweep (``Layout.remove_stale_temps``) made during the test."""
    roots: list[Path] = []
    real = Layout.remove_stale_temps

    def counting(self: Layout, min_age: float = STALE_AFTER) -> list[Path]:
        roots.append(self.root)
        return real(self, min_age)

    monkeypatch.setattr(Layout, "remove_stale_temps", counting)
    return roots


def test_the_sweep_before_pulls_runs_once_per_directory_and_process(tmp_path: Path, sweeps: list[Path]) -> None:
    layout = Layout(tmp_path / "cache")
    layout.ensure()
    layout.blobs_dir.mkdir(parents=True)
    first = _leftover(layout.blobs_dir, "blob-first")
    with ThreadPoolExecutor(8) as pool:  # parallel pulls of one build
        results = list(pool.map(lambda _i: Layout(tmp_path / "cache").remove_stale_temps_once(), range(8)))
    assert sorted(results, key=len) == [[]] * 7 + [[first]] and len(sweeps) == 1
    later = _leftover(layout.blobs_dir, "blob-later")
    (tmp_path / "link").symlink_to(tmp_path / "cache")
    assert Layout(tmp_path / "link").remove_stale_temps_once() == []  # the same directory by another path
    assert Layout(f"{tmp_path}/cache/.").remove_stale_temps_once() == []
    assert later.exists() and len(sweeps) == 1
    other = Layout(tmp_path / "other")
    other.ensure()
    assert other.remove_stale_temps_once() == [] and len(sweeps) == 2  # another cache: swept on its own
    assert layout.remove_stale_temps() == [later]  # an explicit sweep (cache verify --repair) always runs


def test_an_explicit_sweep_spares_the_pulls_theirs(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.ensure()
    assert layout.remove_stale_temps() == []
    stale = _leftover(tmp_path, "index.json-1")
    assert layout.remove_stale_temps_once() == [] and stale.exists()


def test_pulls_into_one_cache_sweep_it_once(tmp_path: Path, sweeps: list[Path]) -> None:
    config, layer = b"{}", b"layer"
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": of_bytes(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": of_bytes(layer), "size": len(layer)}],
        }
    ).encode()
    blobs = {of_bytes(config): config, of_bytes(layer): layer}

    def handler(req: Sent) -> Reply:
        path = req.url.split("registry.example", 1)[1]
        if "/manifests/" in path:
            return 200, {"Content-Type": OCI_MANIFEST}, manifest
        if "/blobs/" in path:
            return 200, {}, blobs[path.rsplit("/", 1)[1]]
        return 200, {}, b""

    options = RegistryOptions(transport=FakeTransport(handler), use_docker_config=False, sleep=lambda _s: None)
    pull(Cache(tmp_path), "registry.example/x:1", options=options)
    stale = _leftover(Layout(tmp_path).blobs_dir, "blob-dead")
    pull(Cache(tmp_path), "registry.example/x:2", options=options)
    assert sweeps == [tmp_path] and stale.exists()
    assert sorted(Cache(tmp_path).images()) == ["registry.example/x:1", "registry.example/x:2"]
