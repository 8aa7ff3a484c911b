"""The desktop run plan executor (:mod:`linuxkit.run.plan`): steps reach the runner in order, files
are written by temporary name + rename without following a symlink, a failing step runs the
failure handlers newest first (and the end handlers always), a ``Call`` imports its function only
when it runs. The hypervisors are fakes here that only record their argv: this checks the wiring,
never the plans (their goldens and the real ``qemu-img`` runs do that)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from linuxkit.errors import BuildError
from linuxkit.run import plan as P

ROOT = Path(__file__).resolve().parents[2]

RECORDER = """\
#!{python}
import os, sys
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(" ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + "\\n")
fail = os.environ.get("FAKE_FAIL_ON")
sys.exit(3 if fail and fail in sys.argv[1:] else 0)
"""


@pytest.fixture
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tool-a`` and ``tool-b`` on PATH, each appending its argv to ``$FAKE_LOG``."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("tool-a", "tool-b"):
        script = bindir / name
        script.write_text(RECORDER.format(python=sys.executable))
        script.chmod(0o755)
    log = tmp_path / "log"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    return log


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_steps_run_in_order_and_end_handlers_after(fake_tools: Path, tmp_path: Path) -> None:
    state = tmp_path / "state" / "sub"
    plan = P.Plan("t").add(
        P.MakeDir(state),
        P.RunAtEnd(("tool-b", "end", "1")),
        P.RunOnFailure(("tool-b", "failure-only")),
        P.WriteFile(state / "conf", b"k = v\n", mode=0o600),
        P.Run(("tool-a", "first")),
        P.RunAtEnd(("tool-b", "end", "2")),
        P.Run(("tool-a", "second")),
    )
    P.execute(plan)
    assert lines(fake_tools) == ["tool-a first", "tool-a second", "tool-b end 2", "tool-b end 1"]
    assert (state / "conf").read_bytes() == b"k = v\n"
    assert (state / "conf").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in state.iterdir()] == ["conf"]  # no temporary file left


def test_failure_runs_handlers_newest_first_and_stops(fake_tools: Path, tmp_path: Path) -> None:
    made = tmp_path / "made.img"
    plan = P.Plan("t").add(
        P.RunAtEnd(("tool-b", "end")),
        P.RunOnFailure(("tool-b", "undo-1")),
        P.RemoveOnFailure(made),
        P.CreateDisk(made, "qcow2", 1),
        P.RunOnFailure(("tool-b", "undo-2")),
        P.Run(("tool-a", "breaks")),
        P.Run(("tool-a", "never")),
    )
    os.environ["FAKE_FAIL_ON"] = "breaks"
    try:
        with pytest.raises(BuildError, match="tool-a failed with exit code 3"):
            P.execute(plan)
    finally:
        del os.environ["FAKE_FAIL_ON"]
    assert lines(fake_tools) == ["tool-a breaks", "tool-b undo-2", "tool-b undo-1", "tool-b end"]
    assert not made.exists()


def test_ignored_failure_goes_on(fake_tools: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_FAIL_ON", "stale")
    P.execute(P.Plan("t").add(P.Run(("tool-a", "stale"), check=False), P.Run(("tool-a", "next"))))
    assert lines(fake_tools) == ["tool-a stale", "tool-a next"]


def test_handler_failures_do_not_hide_the_error(fake_tools: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_FAIL_ON", "x")
    plan = P.Plan("t").add(
        P.RunOnFailure(("tool-b", "x")), P.RunOnFailure(("no-such-tool-here",)), P.Run(("tool-a", "x"))
    )
    with pytest.raises(BuildError, match="tool-a failed"):
        P.execute(plan)
    assert lines(fake_tools) == ["tool-a x", "tool-b x"]


def test_write_file_replaces_a_symlink_instead_of_following_it(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.write_text("keep me")
    link = tmp_path / "conf"
    link.symlink_to(target)
    P.execute(P.Plan("t").add(P.WriteFile(link, b"new")))
    assert target.read_text() == "keep me"
    assert not link.is_symlink() and link.read_bytes() == b"new"


def test_interrupt_cleans_up(tmp_path: Path) -> None:
    made = tmp_path / "made"
    made.mkdir()
    (made / "f").write_text("x")
    plan = P.Plan("t").add(P.RemoveOnFailure(made), P.Call("test_run_plan_executor:interrupt", None))
    with pytest.raises(KeyboardInterrupt):
        P.execute(plan)
    assert not made.exists()


def interrupt(data: P.Data) -> None:
    raise KeyboardInterrupt


def test_call_imports_its_module_only_when_it_runs() -> None:
    code = textwrap.dedent(
        """
        import sys
        from linuxkit.run import plan as P
        p = P.Plan("t").add(P.Call("linuxkit.run.vmware:vmx_value", "a"))
        P.render(p)
        assert "linuxkit.run.vmware" not in sys.modules
        P.execute(p)
        assert "linuxkit.run.vmware" in sys.modules
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_render_is_stable_and_shows_every_detail(tmp_path: Path) -> None:
    plan = P.Plan("title").add(
        P.MakeDir(tmp_path / "s"),
        P.WriteFile(tmp_path / "s" / "bin", b"\x00\x01"),
        P.ConvertDisk(tmp_path / "a.img", tmp_path / "s" / "a.vdi", "vdi", "raw"),
        P.Run(("tool", "a b"), check=False, background=True, output=tmp_path / "log", env=(("K", "v w"),)),
        P.Run(("pwsh", "-Command", "Get-VM 'x'\nStart-VM"), script=True),
        P.Call("m:f", {"b": [1, True], "a": None}),
    )
    text = P.render(plan, {tmp_path: "$DIR", tmp_path / "s": "$STATE"})
    assert text == P.render(plan, {tmp_path / "s": "$STATE", tmp_path: "$DIR"})
    assert text == textwrap.dedent(
        """\
        # title
        1. mkdir $STATE (mode 0755)
        2. write $STATE/bin (mode 0644, 2 bytes)
           | sha256 b413f47d13ee2fe6c845b2ee141af81de858df4ec549a58b7970bb96645bc8d2
        3. disk: qemu-img convert -q -f raw -O vdi $DIR/a.img $STATE/a.vdi
        4. run: K='v w' tool 'a b'  [ignore failure, background, output to $DIR/log]
        5. run: pwsh -Command SCRIPT
           | Get-VM 'x'
           | Start-VM
        6. call m:f
           | {
           |   "a": null,
           |   "b": [
           |     1,
           |     true
           |   ]
           | }
        """
    )
