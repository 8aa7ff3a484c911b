"""Run the guest shell scripts (pkg/init/files, pkg/runc/files) on the host under busybox sh.

A :class:`Guest` is a temp directory standing in for ``/`` (``LINUXKIT_ROOT``) with a fake ``runc`` and stub
``mount``/``umount``/``ip`` commands that record their argv, so the runner logic runs without privileges.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
INIT_FILES = REPO / "pkg" / "init" / "files"
RUNC_FILES = REPO / "pkg" / "runc" / "files"
BUSYBOX = Path("/bin/busybox")
SHELL = f"{BUSYBOX} sh"

# Fake runc: logs "<uptime> <argv>" per call; `run` follows a per-container plan of "EXIT [SECONDS]" lines
# (one per run, the last one repeating), writes its pid where asked and exits 143 on TERM.
FAKE_RUNC = r"""#!/bin/busybox sh
d=$FAKE_RUNC_DIR
echo "$(cut -d' ' -f1 /proc/uptime) $*" >>"$d/calls"
[ "$1" = --debug ] && shift
cmd=$1
shift
pidfile="" bundle="" force=""
while [ $# -gt 1 ]; do
	case "$1" in
	--bundle) bundle=$2; shift 2 ;;
	--pid-file) pidfile=$2; shift 2 ;;
	-f|--force) force=1; shift ;;
	-a|--all) shift ;;
	*) break ;;
	esac
done
name=$1
plan() {
	n=$(cat "$d/$name.count" 2>/dev/null || echo 0)
	echo $((n + 1)) >"$d/$name.count"
	line=$(sed -n "$((n + 1))p" "$d/$name.plan" 2>/dev/null)
	[ -n "$line" ] || line=$(tail -n 1 "$d/$name.plan" 2>/dev/null)
	[ -n "$line" ] || line="0 0"
	set -- $line
	code=$1 secs=${2:-0}
}
case "$cmd" in
run)
	plan
	[ -n "$pidfile" ] && echo $$ >"$pidfile"
	echo $$ >"$d/$name.running"
	echo "fake $name stdout run $(cat "$d/$name.count")"
	echo "fake $name stderr" >&2
	sp=""
	trap '[ -n "$sp" ] && kill $sp 2>/dev/null; rm -f "$d/$name.running"; exit 143' TERM
	sleep "$secs" &
	sp=$!
	wait $sp
	rm -f "$d/$name.running"
	exit "$code"
	;;
create)
	plan
	sleep "$secs" &
	echo $! >"$pidfile"
	exit "$code"
	;;
kill)
	p=$(cat "$d/$name.running" 2>/dev/null) || exit 1
	kill -"${2:-TERM}" "$p"
	;;
start|delete|state) exit 0 ;;
*) echo "fake runc: unknown command $cmd" >&2; exit 2 ;;
esac
"""

STUB = """#!/bin/busybox sh
echo "{name} $*" >>"$STUB_LOG"
{extra}
exit 0
"""


class Guest:
    """A fake guest root with recorded tool calls."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fake = root / "_fake"
        self.fake.mkdir(parents=True)
        for d in ("containers", "run", "var/log", "dev", "proc", "sys/fs/cgroup", "tmp"):
            (root / d).mkdir(parents=True, exist_ok=True)
        self.console = root / "dev" / "console"
        self.console.touch()
        self.cmdline = root / "proc" / "cmdline"
        self.cmdline.write_text("console=ttyS0 quiet\n")
        self.stub_log = self.fake / "stubs.log"
        self.stub_log.touch()
        self.runc = self._script("runc", FAKE_RUNC)
        self.mount = self._script("mount", STUB.format(name="mount", extra=""))
        self.umount = self._script("umount", STUB.format(name="umount", extra=""))
        self.ip = self._script("ip", STUB.format(name="ip", extra=""))
        (self.fake / "calls").touch()

    def _script(self, name: str, text: str) -> Path:
        path = self.fake / name
        path.write_text(text)
        path.chmod(0o755)
        return path

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LINUXKIT_ROOT": str(self.root),
            "LINUXKIT_SHELL": SHELL,
            "RUNC": str(self.runc),
            "MOUNT": str(self.mount),
            "UMOUNT": str(self.umount),
            "IP": str(self.ip),
            "FAKE_RUNC_DIR": str(self.fake),
            "STUB_LOG": str(self.stub_log),
            "TMPDIR": str(self.root / "tmp"),
            "LINUXKIT_BACKOFF_SCALE": "0.05",
        }
        env.update(extra)
        return env

    def sh(self, script: Path, *args: str, timeout: float = 20, **env: str) -> subprocess.CompletedProcess[str]:
        """Run ``busybox sh SCRIPT ARGS`` with the guest environment."""
        return subprocess.run(
            [str(BUSYBOX), "sh", str(script), *args],
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def bundle(
        self,
        kind: str,
        name: str,
        *,
        runtime: Mapping[str, Any] | None = None,
        annotations: Mapping[str, str] | None = None,
        plan: str = "0 0",
    ) -> Path:
        """Create ``/containers/KIND/NAME`` (config.json, optional runtime.json, rootfs/) and its runc plan."""
        path = self.root / "containers" / kind / name
        (path / "rootfs").mkdir(parents=True)
        config: dict[str, Any] = {"ociVersion": "1.1.0", "root": {"path": "rootfs"}}
        if annotations:
            config["annotations"] = dict(annotations)
        (path / "config.json").write_text(json.dumps(config, indent=4))
        if runtime is not None:
            (path / "runtime.json").write_text(json.dumps(runtime, indent=4))
        (self.fake / f"{name}.plan").write_text(plan + "\n")
        return path

    def runc_calls(self) -> list[str]:
        """argv of every fake runc call, in order (timestamps dropped)."""
        return [line.split(" ", 1)[1] for line in self.read(self.fake / "calls").splitlines() if line]

    def runc_call_times(self, prefix: str) -> list[float]:
        return [
            float(line.split(" ", 1)[0])
            for line in self.read(self.fake / "calls").splitlines()
            if line.split(" ", 1)[1].startswith(prefix)
        ]

    def stub_calls(self) -> list[str]:
        return [line.replace(str(self.root), "$ROOT") for line in self.read(self.stub_log).splitlines()]

    def service_state(self, name: str, item: str) -> str:
        return self.read(self.root / "run" / "service" / name / item).strip()

    @staticmethod
    def read(path: Path) -> str:
        try:
            return path.read_text()
        except FileNotFoundError:
            return ""

    def kill_leftovers(self) -> None:
        """Test teardown: stop the services, then kill every process still carrying this guest's environment."""
        if (self.root / "run" / "service").is_dir():
            self.sh(RUNC_FILES / "usr" / "bin" / "service", "stop", "--all", LINUXKIT_STOP_TIMEOUT="1")
        marker = f"FAKE_RUNC_DIR={self.fake}".encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if marker in (proc / "environ").read_bytes().split(b"\0"):
                    os.kill(int(proc.name), signal.SIGKILL)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll PREDICATE until true or TIMEOUT seconds passed; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
