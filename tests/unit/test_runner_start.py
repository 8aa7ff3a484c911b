"""``runner.start``: programs left running in the background, with real processes (sleep, sh)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from linuxkit import runner
from linuxkit.errors import ToolMissingError


def test_a_program_that_ends_gives_its_exit_code() -> None:
    proc = runner.start(["sh", "-c", "exit 7"])
    assert proc.wait(10) == 7
    assert proc.returncode == 7
    assert proc.poll() == 7


def test_wait_with_a_timeout_returns_none_while_the_program_runs() -> None:
    proc = runner.start(["sleep", "30"])
    try:
        began = time.monotonic()
        assert proc.wait(0.2) is None
        assert 0.2 <= time.monotonic() - began < 5
        assert proc.poll() is None and proc.returncode is None
    finally:
        code = proc.terminate()
    assert code == -signal.SIGTERM
    assert proc.poll() == -signal.SIGTERM


def test_terminate_kills_a_program_that_ignores_sigterm(tmp_path: Path) -> None:
    # exec keeps the ignored disposition: one process that only SIGKILL ends
    ready = tmp_path / "ready"
    proc = runner.start(["sh", "-c", 'trap "" TERM; : > "$1"; exec sleep 30', "sh", ready])
    deadline = time.monotonic() + 10
    while not ready.exists() and time.monotonic() < deadline:  # the trap is set
        time.sleep(0.01)
    began = time.monotonic()
    assert proc.terminate(grace=0.3) == -signal.SIGKILL
    assert time.monotonic() - began < 5


def test_terminate_and_kill_after_the_end_give_the_exit_code() -> None:
    proc = runner.start(["true"])
    assert proc.wait(10) == 0
    assert proc.terminate() == 0
    assert proc.kill() == 0


def test_the_context_manager_terminates_a_program_still_running() -> None:
    with runner.start(["sleep", "30"]) as proc:
        pid = proc.pid
    assert proc.returncode == -signal.SIGTERM
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped, not a zombie


def test_a_missing_program_names_its_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolMissingError) as err:
        runner.start(["qemu-img", "info", "x"])
    assert err.value.message == "qemu-img: program not found"
    assert "apt-get install qemu-utils" in (err.value.hint or "")


def test_a_missing_program_given_by_path_is_a_missing_tool(tmp_path: Path) -> None:
    with pytest.raises(ToolMissingError, match="program not found"):
        runner.start([tmp_path / "no-such-program"])


def test_output_goes_where_asked_and_the_environment_is_extended(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    with open(log, "wb") as out:
        proc = runner.start(
            ["sh", "-c", 'echo "$GREETING"; echo oops >&2'],
            stdin=runner.DEVNULL,
            stdout=out,
            stderr=runner.STDOUT,
            extra_env={"GREETING": "hello"},
            cwd=tmp_path,
        )
    assert proc.wait(10) == 0
    assert log.read_bytes() == b"hello\noops\n"


def test_a_new_session_leaves_our_process_group() -> None:
    with runner.start(["sleep", "30"], new_session=True) as proc:
        assert os.getsid(proc.pid) == proc.pid
        assert os.getpgid(proc.pid) != os.getpgid(0)
