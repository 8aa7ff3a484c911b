"""The one error type of the project.

Every failure a user can cause or meet ends up as a :class:`LinuxKitError`::

    LinuxKitError             exit 1: something failed while doing what was asked
    ├── UserError             exit 2: the input is wrong (YAML, flags, references, files)
    │   └── ConfigError       exit 2: one or more located diagnostics from config files
    └── BuildError            exit 1: a build step failed (tool, image, I/O)
        ├── BuildErrors       exit 1: several located build problems (e.g. missing images)
        └── ToolMissingError  exit 1: a host program is not installed (names its Debian package)

The CLI prints ``str(error)`` (and the hint) and exits with ``error.exit_code``; a
traceback is shown only in debug mode.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

# Location and Diagnostic are NamedTuples, not dataclasses: this module is imported on every start,
# and ``dataclasses`` (with ``inspect``) cost 9-11 ms of ``linuxkit version``'s ~30 ms.


class Location(NamedTuple):
    """A position in a source file; ``line`` and ``col`` are 1-based."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class Diagnostic(NamedTuple):
    """One problem found in the input: ``FILE:LINE:COL: path: message`` plus an optional hint."""

    message: str
    location: Location | None = None
    path: str | None = None
    hint: str | None = None

    def headline(self) -> str:
        parts = []
        if self.location is not None:
            parts.append(str(self.location))
        if self.path:
            parts.append(self.path)
        parts.append(self.message)
        return ": ".join(parts)

    def __str__(self) -> str:
        if self.hint:
            return f"{self.headline()}\n  hint: {self.hint}"
        return self.headline()


class LinuxKitError(Exception):
    """Base error: a message, an optional hint and an exit code."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        location: Location | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.location = location
        self.path = path

    @property
    def diagnostics(self) -> Sequence[Diagnostic]:
        return [Diagnostic(self.message, self.location, self.path, self.hint)]

    def locate(self, location: Location | None, path: str | None) -> None:
        """Say where the input asked for what failed (e.g. the image line of a container), unless
        the error already says where."""
        if location is not None and self.location is None:
            self.location = location
            self.path = path

    def __str__(self) -> str:
        return "\n".join(str(d) for d in self.diagnostics)


class UserError(LinuxKitError):
    """The user's input is wrong; nothing was built."""

    exit_code = 2


class _Many(LinuxKitError):
    """An error made of several located diagnostics, sorted by position, reported together."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        diags = sorted(
            diagnostics,
            key=lambda d: (d.location is None, d.location or Location("", 0, 0), d.path or "", d.message),
        )
        if not diags:
            raise ValueError(f"{type(self).__name__} needs at least one diagnostic")
        first = diags[0]
        super().__init__(first.message, hint=first.hint, location=first.location, path=first.path)
        self._diagnostics = diags

    @property
    def diagnostics(self) -> Sequence[Diagnostic]:
        return self._diagnostics

    def locate(self, location: Location | None, path: str | None) -> None:
        """Each diagnostic already says where it is."""


class ConfigError(_Many, UserError):
    """All the problems found in one or more config files, reported together (exit 2)."""


class BuildError(LinuxKitError):
    """A build step failed."""


class BuildErrors(_Many, BuildError):
    """Several build problems found together, each where the YAML asked for it (exit 1)."""


class ToolMissingError(BuildError):
    """A host program needed for this step is not installed."""
