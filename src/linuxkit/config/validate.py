"""Turn schema and semantic problems of one loaded YAML document into located diagnostics."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator, Sequence
from typing import Any

from .. import log
from ..errors import Diagnostic, UserError
from ..oci import reference
from . import paths, schema
from .yamlload import Document, Path

# moby/sys/capability's known capabilities, as upstream's ``allCaps`` spells them.
KNOWN_CAPABILITIES = frozenset(
    "CAP_" + name.upper()
    for name in [
        "chown",
        "dac_override",
        "dac_read_search",
        "fowner",
        "fsetid",
        "kill",
        "setgid",
        "setuid",
        "setpcap",
        "linux_immutable",
        "net_bind_service",
        "net_broadcast",
        "net_admin",
        "net_raw",
        "ipc_lock",
        "ipc_owner",
        "sys_module",
        "sys_rawio",
        "sys_chroot",
        "sys_ptrace",
        "sys_pacct",
        "sys_admin",
        "sys_boot",
        "sys_nice",
        "sys_resource",
        "sys_time",
        "sys_tty_config",
        "mknod",
        "lease",
        "audit_write",
        "audit_control",
        "setfcap",
        "mac_override",
        "mac_admin",
        "syslog",
        "wake_alarm",
        "block_suspend",
        "audit_read",
        "perfmon",
        "bpf",
        "checkpoint_restore",
    ]
)
RLIMITS = frozenset(
    [
        "CPU",
        "FSIZE",
        "DATA",
        "STACK",
        "CORE",
        "RSS",
        "NPROC",
        "NOFILE",
        "MEMLOCK",
        "AS",
        "LOCKS",
        "SIGPENDING",
        "MSGQUEUE",
        "NICE",
        "RTPRIO",
        "RTTIME",
    ]
)
VOLUME_NAME = re.compile(r"^[a-z0-9_-]*$")
NAME_HINT = "a name is one directory name under /containers/<section>/: not empty, '.' or '..', no '/'"
IMAGE_SECTIONS = ("onboot", "onshutdown", "services")


def dotted(path: Path) -> str:
    """``("services", 0, "capabilities")`` → ``services[0].capabilities``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


class Reporter:
    """Collects diagnostics for one document."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.diagnostics: list[Diagnostic] = []

    def add(self, path: Path, message: str, hint: str | None = None, *, key: bool = False) -> None:
        self.diagnostics.append(Diagnostic(message, self.doc.locate(path, key=key), dotted(path), hint))


# ---------------------------------------------------------------------------- schema errors


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def _value_at(doc: Document, path: Path) -> Any:
    value: Any = doc.value
    for part in path:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _type_hint(path: Path, expected: str, value: Any) -> str | None:
    name = path[-1] if path else ""
    if name == "mode" and expected == "a string":
        return 'write the mode as a quoted octal string, e.g. mode: "0644"'
    if expected == "a string" and isinstance(value, bool | int | float):
        return "YAML read this as a number or boolean; put it in quotes"
    if expected == "true or false" and isinstance(value, str):
        return "only true and false are booleans (YAML 1.2); yes/no/on/off are strings"
    if expected == "a list" and isinstance(value, str):
        return f"write a list, e.g. {name}: [{value!r}]" if name else None
    return None


def schema_diagnostics(doc: Document, issues: Sequence[schema.Issue]) -> list[Diagnostic]:
    """One diagnostic per problem :func:`schema.check` found, located and explained."""
    rep = Reporter(doc)
    for issue in issues:
        path = issue.path
        if issue.kind == "unknown":
            allowed = list(issue.allowed)
            near = difflib.get_close_matches(str(path[-1]), allowed, n=1)
            hint = (
                f"did you mean {near[0]!r}?" if near else ("allowed keys: " + ", ".join(allowed) if allowed else None)
            )
            rep.add(path, "unknown key", hint, key=True)
        elif issue.kind == "missing":
            rep.add(path, "required key is missing", key=True)
        elif issue.kind == "enum":
            rep.add(path, f"must be one of {_one_of(issue.expected)}")
        else:
            value = _value_at(doc, path)
            expected = " or ".join(issue.expected)
            hint = _type_hint(path, expected, value) if len(issue.expected) == 1 else None
            rep.add(path, f"must be {expected}, not {_kind(value)}", hint)
    return rep.diagnostics


def _one_of(values: Sequence[str]) -> str:
    """``'a', 'b' or 'c'``."""
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


# ---------------------------------------------------------------------------- semantic checks


def _check_ref(rep: Reporter, path: Path, ref: str | None) -> None:
    if ref is None or (ref == "" and path[0] in ("kernel", "volumes")):
        return
    try:
        reference.parse(ref)
    except UserError as exc:
        rep.add(path, f"invalid image reference {ref!r}", exc.hint)


def _check_caps(rep: Reporter, path: Path, caps: Sequence[str] | None, *, keyword_ok: bool) -> None:
    if caps is None:
        return
    if keyword_ok and len(caps) == 1 and caps[0].lower() in ("all", "none"):
        return
    for i, cap in enumerate(caps):
        if cap in KNOWN_CAPABILITIES:
            continue
        hint: str | None
        if cap.lower() in ("all", "none"):
            hint = f"{cap!r} is only allowed as the single entry of the list"
        elif "CAP_" + cap.upper().removeprefix("CAP_") in KNOWN_CAPABILITIES:
            hint = f"write it as {'CAP_' + cap.upper().removeprefix('CAP_')!r}"
        else:
            near = difflib.get_close_matches(cap.upper(), sorted(KNOWN_CAPABILITIES), n=1)
            hint = f"did you mean {near[0]!r}?" if near else None
        rep.add((*path, i), f"unknown capability {cap!r}", hint)


def _check_specs(rep: Reporter, path: Path, image: schema.ImageConfig) -> None:
    for key, items in (("binds", image.binds), ("binds.add", image.binds_add)):
        for i, bind in enumerate(items or []):
            if not 2 <= len(bind.split(":")) <= 3:
                rep.add((*path, key, i), f"invalid bind {bind!r}", "write it as source:destination[:options]")
    for i, tmpfs in enumerate(image.tmpfs or []):
        if len(tmpfs.split(":")) > 2:
            rep.add((*path, "tmpfs", i), f"invalid tmpfs {tmpfs!r}", "write it as destination[:options]")
    for i, rlimit in enumerate(image.rlimits or []):
        parts = [p.strip() for p in rlimit.split(",", 2)]
        name = parts[0].upper().removeprefix("RLIMIT_")
        ok = len(parts) == 3 and name in RLIMITS
        ok = ok and all(p.lower() == "unlimited" or (p.isdigit() and int(p) < 2**64) for p in parts[1:])
        if not ok:
            rep.add(
                (*path, "rlimits", i), f"invalid rlimit {rlimit!r}", "write it as name,soft,hard, e.g. nofile,1024,4096"
            )
    _check_caps(rep, (*path, "capabilities"), image.capabilities, keyword_ok=True)
    _check_caps(rep, (*path, "capabilities.add"), image.capabilities_add, keyword_ok=True)
    _check_caps(rep, (*path, "ambient"), image.ambient, keyword_ok=True)
    for where, message, hint in paths.image_path_problems(image):
        rep.add((*path, *where), message, hint)


def expand_home(source: str) -> str:
    """Upstream's ``~/`` expansion of a file source (only that form)."""
    if len(source) > 2 and source.startswith("~/"):
        return os.path.expanduser("~") + source[1:]
    return source


def _check_file(rep: Reporter, path: Path, f: schema.File, *, sources_must_exist: bool = True) -> None:
    if not f.path:
        rep.add(path, "path is required", key=False)
    elif problem := paths.file_path_problem(f.path):
        rep.add(
            (*path, "path"),
            f"file path {f.path!r} {problem}",
            "a file path names a place inside the image, e.g. etc/motd",
        )
    if f.mode is not None and f.mode != "" and not (re.fullmatch(r"[0-7]+", f.mode) and int(f.mode, 8) < 2**31):
        rep.add((*path, "mode"), f"invalid mode {f.mode!r}", 'write an octal number as a string, e.g. "0644"')
    if f.metadata and f.metadata not in ("yaml", "json"):
        rep.add((*path, "metadata"), f"unsupported metadata type {f.metadata!r}", "use yaml or json")
    if f.directory and f.contents is not None:
        rep.add((*path, "contents"), "a directory cannot have contents")
    given = [
        k for k, v in (("contents", f.contents is not None), ("directory", f.directory), ("symlink", f.symlink)) if v
    ]
    if given:
        what: str = given[0]
        if f.metadata:
            rep.add((*path, "metadata"), f"metadata cannot be combined with {what}")
        if f.source:
            rep.add((*path, "source"), f"source cannot be combined with {what}")
        return
    if not f.source and not f.metadata:
        rep.add(path, "no contents given", "set one of contents, source, metadata, directory or symlink")
    elif f.source and f.metadata:
        rep.add((*path, "source"), "source and metadata cannot both be set")
    elif f.source and not f.optional and not os.path.exists(expand_home(f.source)):
        if not sources_must_exist:  # a dry run reads no source (as upstream's): it may not exist yet
            log.warn(
                f"{rep.doc.locate((*path, 'source'))}: {dotted((*path, 'source'))}: source file not found: {f.source}"
            )
            return
        rep.add(
            (*path, "source"),
            f"source file not found: {f.source}",
            "relative sources are read from the current directory; add optional: true to skip a missing file",
        )


def semantic_diagnostics(doc: Document, moby: schema.Moby, *, sources_must_exist: bool = True) -> list[Diagnostic]:
    """The checks of one file that do not depend on other files (a missing ``files[].source`` is only
    a warning without ``sources_must_exist``)."""
    rep = Reporter(doc)
    if moby.kernel is not None:
        _check_ref(rep, ("kernel", "image"), moby.kernel.image)
    for i, ref in enumerate(moby.init or []):
        _check_ref(rep, ("init", i), ref)
    for section in IMAGE_SECTIONS:
        for i, image in enumerate(getattr(moby, section) or []):
            if problem := paths.name_problem(image.name):
                rep.add((section, i, "name"), f"invalid container name {image.name!r}: it {problem}", NAME_HINT)
            _check_ref(rep, (section, i, "image"), image.image)
            _check_specs(rep, (section, i), image)
    for i, vol in enumerate(moby.volumes or []):
        if vol.name is None:
            rep.add(("volumes", i), "a volume needs a name", "its files go to /containers/volumes/<name>")
        elif not vol.name or not VOLUME_NAME.match(vol.name):
            rep.add((*("volumes", i), "name"), f"invalid volume name {vol.name!r}", "use only a-z, 0-9, _ and -")
        _check_ref(rep, ("volumes", i, "image"), vol.image)
    for i, f in enumerate(moby.files or []):
        _check_file(rep, ("files", i), f, sources_must_exist=sources_must_exist)
    return rep.diagnostics


def walk_strings(value: Any, path: Path = ()) -> Iterator[tuple[Path, str]]:
    """Every string value (not key) in a loaded document, with its path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from walk_strings(item, (*path, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from walk_strings(item, (*path, key))
