"""Interrupted commands clean up: a real ``linuxkit build`` sent SIGTERM, SIGHUP or SIGINT in the
middle of writing leaves nothing in the output directory (exit 128+N); temporary blobs a killed
process left in the cache are removed by the next pull, ``cache verify --repair`` and ``cache
clean``, while a live writer's are kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from tests.conftest import RunLinuxkit
from tests.imagefactory import Entry, ImageSpec, directory, file, write_layout_tar
from tests.integration.test_registry_client import Registry, registry  # noqa: F401 - fixture

from linuxkit.oci.layout import STALE_AFTER, TMP_PREFIX

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def big_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A cache with a kernel and a 96 MB incompressible init image, and the YAML using them."""
    work = tmp_path_factory.mktemp("big")
    big = [directory("big"), *(Entry(f"big/{i}", size=32 << 20) for i in range(3))]
    kernel = [file("kernel", b"K" * 4096), file("kernel.tar", b"")]
    write_layout_tar(
        work / "images.tar",
        [ImageSpec("example.org/t/kernel:1", [kernel]), ImageSpec("example.org/t/big:1", [big])],
    )
    cache = work / "cache"
    env = {**os.environ, "LINUXKIT_CACHE": str(cache)}
    cmd = [sys.executable, "-m", "linuxkit.cli.main", "cache", "import", str(work / "images.tar")]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    yml = work / "t.yml"
    yml.write_text(
        "kernel:\n  image: example.org/t/kernel:1\n  cmdline: console=ttyS0\ninit:\n  - example.org/t/big:1\n"
    )
    return cache, yml


def _default_signal_actions() -> None:
    """The build starts with every signal of the test at its default: a suite run under nohup would
    otherwise hand it SIGHUP ignored (which linuxkit rightly keeps ignored)."""
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)


@pytest.mark.parametrize("fmt", ["tar", "kernel+initrd"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signal_mid_build_leaves_no_temporary_files(
    big_cache: tuple[Path, Path], tmp_path: Path, sig: signal.Signals, fmt: str
) -> None:
    cache, yml = big_cache
    env = {**os.environ, "LINUXKIT_CACHE": str(cache), "COLUMNS": "200"}
    # The signal is sent once the first temporary name shows; on a fast or idle machine the build can
    # still finish first (exit 0, outputs complete): then the attempt says nothing and is made again.
    for attempt in range(6):
        out = tmp_path / f"out{attempt}"
        out.mkdir()
        cmd = [sys.executable, "-m", "linuxkit.cli.main", "build", "--format", fmt, "--dir", str(out), str(yml)]
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_default_signal_actions
        )
        try:
            deadline = time.monotonic() + 60
            while not any(out.iterdir()) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            assert proc.poll() is None, "the build ended before it could be interrupted"
            written = sorted(p.name for p in out.iterdir())
            assert all(name.startswith(".") for name in written), written  # only temporary names so far
            proc.send_signal(sig)
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err = stderr.decode(errors="replace")
        if proc.returncode == 0 and not any(p.name.startswith(".") for p in out.iterdir()):
            continue  # finished before the signal landed
        assert proc.returncode == 128 + sig, err
        assert ("interrupted" if sig == signal.SIGINT else f"terminated by {sig.name}") in err
        assert "Traceback" not in err and "Fatal Python error" not in err
        assert list(out.iterdir()) == []
        return
    pytest.fail("the build finished before the signal in every attempt")


HOLDER = textwrap.dedent(
    """
    import sys, time
    from linuxkit.oci.layout import AtomicFile, Layout
    layout = Layout(sys.argv[1])
    layout.ensure()
    layout.blobs_dir.mkdir(parents=True, exist_ok=True)
    out = AtomicFile(layout.blobs_dir / "blob")  # a blob being written, as a pull writes it
    out.write(b"partial blob" * 1000)
    out.file.flush()
    print(out.tmp, flush=True)
    time.sleep(600)
    """
)


def _writer(cache: Path) -> tuple[subprocess.Popen[str], Path]:
    """A real process writing a temporary blob into ``cache`` (and still running)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(cache)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    tmp = Path(proc.stdout.readline().strip())
    assert tmp.name.startswith(TMP_PREFIX) and tmp.exists()
    then = time.time() - STALE_AFTER - 60  # as old as a leftover of an earlier run
    os.utime(tmp, (then, then))
    return proc, tmp


def _killed_writer(cache: Path) -> Path:
    proc, tmp = _writer(cache)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert tmp.exists()  # SIGKILL: nothing could clean up
    return tmp


def test_leftover_blobs_are_removed_by_pull_verify_repair_and_clean(
    registry: Registry,  # noqa: F811
    linuxkit: RunLinuxkit,
    tmp_path: Path,
) -> None:
    name = f"{registry.host}/demo/hello:1"
    write_layout_tar(tmp_path / "img.tar", [ImageSpec(name, [[file("hello", "hi\n")]])])
    first = {"LINUXKIT_CACHE": str(tmp_path / "first")}
    linuxkit("cache", "import", "img.tar", env=first)
    linuxkit("cache", "push", name, env=first)

    cache = tmp_path / "cache"  # the fixture's cache
    stale = _killed_writer(cache)
    live, held = _writer(cache)
    try:
        linuxkit("cache", "pull", name)
        assert not stale.exists()  # removed by the next pull
        assert held.exists()  # a live writer's file is kept
        assert [p for p in (cache / "blobs" / "sha256").iterdir() if p.name.startswith(TMP_PREFIX)] == [held]
    finally:
        live.send_signal(signal.SIGKILL)
        live.wait()
    proc = linuxkit("cache", "verify", "--repair")
    assert not held.exists()  # its writer is dead now: a leftover
    assert "removed 1 temporary file(s) left behind by interrupted processes" in proc.stderr.decode()

    again = _killed_writer(cache)
    linuxkit("cache", "clean")
    assert not again.exists() and not cache.exists()
