"""Temporary cache files left by killed processes are removed; ones a live writer holds are not."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from linuxkit.oci.layout import STALE_AFTER, TMP_PREFIX, AtomicFile, Layout


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
