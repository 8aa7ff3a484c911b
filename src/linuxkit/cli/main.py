"""``linuxkit``: parse the command line as upstream's cobra CLI does, run a verb, turn errors into
messages and exit codes (2 bad input, 1 failure, 128+N killed by signal N: 130 SIGINT, 143 SIGTERM,
129 SIGHUP).

SIGTERM and SIGHUP take the path Ctrl-C (SIGINT) takes: the signal is raised in the main thread as
a :class:`Terminated` (a ``KeyboardInterrupt``), so every ``with`` block on the way out removes its
temporary files (outputs, cache blobs) and worker threads are stopped before the exit. The one rule
for the exit code: work cut short by a signal exits 128+N, after its clean-up (a build, a push, `run gcp`
following a console); a verb whose normal end IS the signal (`serve`: Ctrl-C is how a server stops) exits 0.

Start-up is decided here, once: :mod:`linuxkit.cli.parser` declares every verb's flags and names
the module that runs it (``"module:function"``); :func:`main` imports that one module after
parsing, and the module imports what it uses at its top. So ``version`` loads the parser alone,
``build --dry-run`` the config loader and printer, ``pkg show-tag`` the tag code, and only ``build``
the build. ``tests/unit/test_cli_startup.py`` holds each verb to an allow-list of modules.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType, ModuleType

from ..errors import LinuxKitError, UserError
from .common import BOOL_FLAGS, CommonOptions
from .parser import RUN_BACKENDS, build_parser

__all__ = ["build_parser", "main", "verb_function"]


def _normalise_argv(argv: Sequence[str]) -> list[str]:
    """Accept cobra spellings argparse does not: ``--flag=true|false`` for booleans and a bare ``-v``."""
    out: list[str] = []
    items = list(argv)
    for i, arg in enumerate(items):
        if arg == "--":
            out.extend(items[i:])
            break
        name, eq, value = arg.partition("=")
        if eq and name in BOOL_FLAGS and value.lower() in {"true", "false", "1", "0"}:
            if value.lower() in {"true", "1"}:
                out.append(name)
            continue
        if arg in ("-v", "--verbose"):
            nxt = items[i + 1] if i + 1 < len(items) else ""
            if not nxt.isdigit():
                out.append(f"{arg}=2")
                continue
        out.append(arg)
    return out


_VALUE_FLAGS = frozenset({"--cache", "--mirror", "--cert-file", "-v", "--verbose"})
_BACKENDS = frozenset(name for name, *_ in RUN_BACKENDS)


#: ``linuxkit run PATH`` without a backend, by ``sys.platform``: upstream's defaults (qemu elsewhere)
DEFAULT_RUN_BACKENDS = {"darwin": "virtualization", "win32": "hyperv", "linux": "qemu"}


def _default_run_backend(argv: list[str], platform: str = sys.platform) -> list[str]:
    """``linuxkit run PATH`` means ``linuxkit run qemu PATH`` on Linux, ``run virtualization`` on macOS and
    ``run hyperv`` on Windows, as upstream."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-"):
            i += 2 if arg in _VALUE_FLAGS else 1
            continue
        if arg != "run":
            return argv
        rest = argv[i + 1 :]
        has_path = any(not a.startswith("-") for a in rest)
        if has_path and not any(a in _BACKENDS for a in rest) and "-h" not in rest and "--help" not in rest:
            return [*argv[: i + 1], DEFAULT_RUN_BACKENDS.get(platform, "qemu"), *rest]
        return argv
    return argv


Verb = Callable[[argparse.Namespace, CommonOptions], int]


def verb_function(args: argparse.Namespace) -> Verb:
    """The function that runs the parsed verb, its module imported now (see :mod:`.parser`)."""
    target: str = args.run(args) if callable(args.run) else args.run
    module, _, name = target.partition(":")
    function: Verb = getattr(importlib.import_module(f"{__package__}.{module}"), name)
    return function


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP received: unwinds like Ctrl-C; the exit code is 128 + ``signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


#: Signals turned into :class:`Terminated` (SIGINT already raises KeyboardInterrupt).
TERMINATING = (signal.SIGTERM, signal.SIGHUP)


def _terminate(signum: int, frame: FrameType | None) -> None:
    # Once: a second SIGTERM/SIGHUP must not cut the clean-up short (SIGKILL still ends us).
    for sig in TERMINATING:
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated(signum)


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP raise :class:`Terminated` in the main thread (a signal ignored when we
    started, e.g. SIGHUP under ``nohup``, stays ignored)."""
    for sig in TERMINATING:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            try:
                signal.signal(sig, _terminate)
            except ValueError:  # not the main thread (main() called from a test's thread): leave them
                return


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_default_run_backend(_normalise_argv(sys.argv[1:] if argv is None else argv)))
    common = CommonOptions.from_args(args)
    if getattr(args, "uses_log", True):  # ``version`` prints with print(): it need not load rich
        _log(common)
    install_signal_handlers()
    try:
        return verb_function(args)(args, common)
    except LinuxKitError as exc:
        log = _log(common)
        if common.debug:
            _print_traceback()
        prefix = "" if isinstance(exc, UserError) and exc.location else "error: "
        log.error(prefix + str(exc).replace("\n  hint:", "\n  hint:"))
        return exc.exit_code
    except KeyboardInterrupt as exc:
        if isinstance(exc, Terminated):
            _log(common).error(f"terminated by {signal.Signals(exc.signum).name}")
            return 128 + exc.signum
        _log(common).error("interrupted")
        return 128 + signal.SIGINT
    except BrokenPipeError:
        # The reader of our stdout went away (``linuxkit build --o - | head``): not our failure.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as exc:
        log = _log(common)
        if common.debug:
            _print_traceback()
        else:
            log.error(f"internal error: {type(exc).__name__}: {exc}")
            log.error("  hint: run again with --debug (or -v 2) for a traceback, and report it")
        return 1
    finally:
        _stop_workers()


def _stop_workers() -> None:
    """No worker thread may still run when the interpreter exits (see :mod:`linuxkit.workers`);
    the module is only loaded when a verb started one."""
    workers = sys.modules.get("linuxkit.workers")
    if workers is not None:
        workers.stop_all()


def _log(common: CommonOptions) -> ModuleType:
    """The logging layer, configured (imported only now: ``--help`` and argument errors do not need rich)."""
    from .. import log

    log.configure(common.verbosity)
    return log


def _print_traceback() -> None:
    import traceback

    traceback.print_exc()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
