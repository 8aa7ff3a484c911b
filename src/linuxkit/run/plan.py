"""A run plan as data: what a desktop ``run`` backend (vbox, vmware, hyperv, hyperkit,
virtualization) will do, built whole before anything happens, rendered as stable text for golden
files, then executed step by step through :mod:`linuxkit.runner`.

Step types: :class:`MakeDir`, :class:`WriteFile` (temporary name + rename, no symlink followed),
:class:`CreateDisk` and :class:`ConvertDisk` (``qemu-img``), :class:`Run` (a command, in the
foreground or left running in the background), :class:`Call` (a Python function named
``module:function`` with a plain data tree, imported only when the step runs: for an SDK such as
the Virtualization framework), the failure handlers :class:`RemoveOnFailure` and
:class:`RunOnFailure`, and :class:`RunAtEnd` (run however the plan ends: a VM to power off and
unregister). When a step fails (or the run is interrupted), the handlers registered by the steps
before it run, newest first, and the error is raised again; when the plan ends well, only the
:class:`RunAtEnd` ones do.
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
import shlex
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

from .. import log
from ..runner import DEVNULL, STDOUT, Process, run, start

#: a plain data tree (what :class:`Call` passes and the rendering prints as JSON)
Data: TypeAlias = bool | int | float | str | Sequence["Data"] | Mapping[str, "Data"] | None


@dataclass(frozen=True)
class MakeDir:
    """Create ``path`` (and its parents) if missing."""

    path: Path
    mode: int = 0o755


@dataclass(frozen=True)
class WriteFile:
    """Write ``content`` to ``path`` (created or replaced): a temporary file beside it, renamed."""

    path: Path
    content: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class CreateDisk:
    """An empty disk image of ``size_mb`` MiB in ``fmt`` (``qemu-img create``)."""

    path: Path
    fmt: str
    size_mb: int
    options: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        opts = ["-o", ",".join(self.options)] if self.options else []
        return ["qemu-img", "create", "-q", "-f", self.fmt, *opts, str(self.path), f"{self.size_mb}M"]


@dataclass(frozen=True)
class ConvertDisk:
    """``src`` converted to ``fmt`` at ``dst`` (``qemu-img convert``); ``src_fmt`` when known."""

    src: Path
    dst: Path
    fmt: str
    src_fmt: str | None = None
    options: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        source = ["-f", self.src_fmt] if self.src_fmt else []
        opts = ["-o", ",".join(self.options)] if self.options else []
        return ["qemu-img", "convert", "-q", *source, "-O", self.fmt, *opts, str(self.src), str(self.dst)]


@dataclass(frozen=True)
class Run:
    """Run ``argv``. ``check=False``: a failure is logged and the plan goes on. ``background``:
    started in its own session and left running (output to ``output`` or nowhere).
    ``output``: stdout and stderr appended to that file instead of ours. ``script``: the last
    argument is a script (PowerShell's ``-Command``), rendered verbatim on its own lines."""

    argv: tuple[str, ...]
    check: bool = True
    background: bool = False
    output: Path | None = None
    env: tuple[tuple[str, str], ...] = ()
    script: bool = False


@dataclass(frozen=True)
class Call:
    """Call ``function`` (``"package.module:name"``, imported when the step runs) with ``data``."""

    function: str
    data: Data = None


@dataclass(frozen=True)
class RemoveOnFailure:
    """If a later step fails, remove ``path`` (a file or a directory tree)."""

    path: Path


@dataclass(frozen=True)
class RunOnFailure:
    """If a later step fails, run ``argv`` (its own failure is only logged)."""

    argv: tuple[str, ...]
    script: bool = False  # as :attr:`Run.script`


@dataclass(frozen=True)
class RunAtEnd:
    """When the plan ends, whichever way (success, failure, interruption), run ``argv`` (its own
    failure is only logged)."""

    argv: tuple[str, ...]
    script: bool = False  # as :attr:`Run.script`


Step: TypeAlias = (
    MakeDir | WriteFile | CreateDisk | ConvertDisk | Run | Call | RemoveOnFailure | RunOnFailure | RunAtEnd
)
Handler: TypeAlias = RemoveOnFailure | RunOnFailure | RunAtEnd


@dataclass
class Plan:
    """The steps of one run, in order; ``title`` names it in the rendering."""

    title: str
    steps: list[Step] = field(default_factory=list)

    def add(self, *steps: Step) -> Plan:
        self.steps.extend(steps)
        return self


# --- rendering ---------------------------------------------------------------------------------


def _text(content: bytes) -> str | None:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(ord(c) < 32 and c not in "\n\t\r" for c in text):
        return None
    return text


def _describe(step: Step) -> list[str]:
    """A step's first line and its indented detail lines (before placeholders)."""
    if isinstance(step, MakeDir):
        return [f"mkdir {step.path} (mode {step.mode:04o})"]
    if isinstance(step, WriteFile):
        head = f"write {step.path} (mode {step.mode:04o}, {len(step.content)} bytes)"
        text = _text(step.content)
        if text is None:
            import hashlib

            return [head, f"| sha256 {hashlib.sha256(step.content).hexdigest()}"]
        return [head, *(f"| {line}".rstrip() for line in text.splitlines())]
    if isinstance(step, CreateDisk | ConvertDisk):
        return ["disk: " + shlex.join(step.argv())]
    if isinstance(step, Run):
        flags = [name for name, on in (("ignore failure", not step.check), ("background", step.background)) if on]
        if step.output is not None:
            flags.append(f"output to {step.output}")
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in step.env)
        argv = step.argv[:-1] if step.script else step.argv
        head = "run: " + (env + " " if env else "") + shlex.join(argv) + (" SCRIPT" if step.script else "")
        script = [f"| {line}".rstrip() for line in step.argv[-1].splitlines()] if step.script else []
        return [head + (f"  [{', '.join(flags)}]" if flags else ""), *script]
    if isinstance(step, Call):
        lines = json.dumps(step.data, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
        return [f"call {step.function}", *(f"| {line}" for line in lines)]
    if isinstance(step, RemoveOnFailure):
        return [f"on failure: remove {step.path}"]
    if isinstance(step, RunOnFailure | RunAtEnd):
        when = "on failure" if isinstance(step, RunOnFailure) else "at end"
        head, *script = _describe(Run(step.argv, script=step.script))
        return [f"{when}: {head}", *script]
    raise TypeError(f"not a plan step: {step!r}")


def render(plan: Plan, placeholders: Mapping[str | os.PathLike[str], str] | None = None) -> str:
    """The plan as stable text (for golden files and ``--dry-run``-style output): one numbered
    line per step, details indented. ``placeholders`` replaces path prefixes (longest first) by
    names such as ``$STATE`` so that the text does not depend on where the test ran."""
    subs = sorted(((os.fspath(k), v) for k, v in (placeholders or {}).items()), key=lambda kv: -len(kv[0]))
    out = [f"# {plan.title}"]
    for number, step in enumerate(plan.steps, 1):
        head, *detail = _describe(step)
        out.append(f"{number}. {head}")
        out.extend(f"   {line}" for line in detail)
    text = "\n".join(out) + "\n"
    for prefix, name in subs:
        if prefix:
            text = text.replace(prefix, name)
    return text


# --- execution ---------------------------------------------------------------------------------


def _write_file(step: WriteFile) -> None:
    """Temporary name beside the destination (created exclusively, never through a symlink),
    written, synced, renamed over it."""
    final = step.path
    temp = final.parent / f".{final.name}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temp, flags, 0o600)
    try:
        with open(fd, "wb") as out:
            out.write(step.content)
            out.flush()
            os.fchmod(out.fileno(), step.mode)
            os.fsync(out.fileno())
        os.replace(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    except OSError as exc:
        log.warn(f"could not remove {path}: {exc.strerror}")


def _resolve(function: str) -> Callable[[Data], object]:
    module_name, _, name = function.partition(":")
    module = importlib.import_module(module_name)
    func = getattr(module, name)
    if not callable(func):
        raise TypeError(f"{function} is not a function")
    return func  # type: ignore[no-any-return]


@dataclass
class Executed:
    """What :func:`execute` left behind: the programs started in the background, in order."""

    background: list[Process] = field(default_factory=list)


def _run(step: Run, done: Executed) -> None:
    env = dict(step.env) or None
    sink = open(step.output, "ab") if step.output is not None else None  # noqa: SIM115
    try:
        if step.background:
            out = sink if sink is not None else DEVNULL
            done.background.append(
                start(list(step.argv), stdin=DEVNULL, stdout=out, stderr=STDOUT, extra_env=env, new_session=True)
            )
            return
        proc = run(
            list(step.argv),
            check=step.check,
            stdout=sink,
            stderr=STDOUT if sink is not None else None,
            extra_env=env,
        )
        if proc.returncode != 0:
            log.warn(f"{shlex.join(step.argv)} failed with exit code {proc.returncode} (ignored)")
    finally:
        if sink is not None:
            sink.close()


def _handle(handlers: list[Handler], *, failed: bool) -> None:
    """Run the handlers newest first: all of them after a failure, else the :class:`RunAtEnd` ones."""
    for handler in reversed(handlers):
        if not failed and not isinstance(handler, RunAtEnd):
            continue
        if isinstance(handler, RemoveOnFailure):
            log.debug(f"cleaning up: removing {handler.path}")
            _remove(handler.path)
            continue
        try:
            run(list(handler.argv), check=False, capture=True)
        except Exception as exc:  # the original error matters more
            log.warn(f"cleaning up: {shlex.join(handler.argv)}: {exc}")
        else:
            log.debug(f"cleaning up: {shlex.join(handler.argv)}")


def execute(plan: Plan) -> Executed:
    """Run the steps in order. On any failure or interruption the handlers registered so far run
    (newest first), then the error propagates; at a good end, the :class:`RunAtEnd` ones run."""
    handlers: list[Handler] = []
    done = Executed()
    try:
        for step in plan.steps:
            if isinstance(step, RemoveOnFailure | RunOnFailure | RunAtEnd):
                handlers.append(step)
            elif isinstance(step, MakeDir):
                step.path.mkdir(mode=step.mode, parents=True, exist_ok=True)
            elif isinstance(step, WriteFile):
                _write_file(step)
            elif isinstance(step, CreateDisk | ConvertDisk):
                run(step.argv(), capture=True)
            elif isinstance(step, Run):
                _run(step, done)
            elif isinstance(step, Call):
                _resolve(step.function)(step.data)
            else:
                raise TypeError(f"not a plan step: {step!r}")
    except BaseException:
        for proc in done.background:
            proc.terminate()
        _handle(handlers, failed=True)
        raise
    _handle(handlers, failed=False)
    return done
