"""Read, check and merge LinuxKit config files, as upstream's ``NewConfig`` + ``AppendConfig`` do.

Every problem of every file is collected and raised together as one :class:`ConfigError`, each
diagnostic located at ``file:line:col`` with a dotted path such as ``services[0].capabilities``.

Upstream behaviours kept: sources are paths, ``-`` (stdin) or http(s) URLs; ``@pkg:<dir>``
templates are resolved only for local files, relative to the YAML's directory (joined as a string,
so ``@pkg:/x`` is ``<dir>/x`` too); file ``source:`` paths are relative to the current directory,
not the YAML's; kernel fields of a later file override when non-empty; lists are concatenated.
"""

from __future__ import annotations

import copy
import os
import posixpath
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any, NamedTuple

from .. import log
from ..containerspec.volumes import volume_problems
from ..errors import ConfigError, Diagnostic, LinuxKitError, Location, UserError
from . import schema
from .validate import IMAGE_SECTIONS, Reporter, dotted, schema_diagnostics, semantic_diagnostics, walk_strings
from .yamlload import EMPTY, MAX_BYTES, Document, load_yaml

PackageResolver = Callable[[str], str]
"""Maps a package directory (the YAML's directory joined with the ``@pkg:`` path) to its canonical tag."""

STDIN_NAME = "<stdin>"
STDIN_DEFAULT_NAME = "moby"
PKG_PREFIX = "@pkg:"
LISTS = ("init", "onboot", "onshutdown", "services", "files", "volumes")


class SourceFile(NamedTuple):
    """One loaded config source."""

    name: str  # the path or URL as given, or ``<stdin>``
    directory: str | None  # the YAML's directory for local files (for ``@pkg:``), else None
    document: Document  # raw values and positions
    moby: schema.Moby


class LoadedConfig(NamedTuple):
    """The merged config plus what is needed to point back into the files."""

    moby: schema.Moby
    sources: Sequence[SourceFile]
    # (section, merged index) → (source index, index within that source)
    origins: Mapping[tuple[str, int], tuple[int, int]] = EMPTY
    kernel_origins: Mapping[str, int] = EMPTY
    default_name: str = STDIN_DEFAULT_NAME

    def locate(self, section: str, index: int | None = None, *fields: str | int) -> Location | None:
        """Where ``section[index].field…`` of the merged config was written, e.g. ``("services", 2, "image")``."""
        if section == "kernel":
            src = self.kernel_origins.get(str(fields[0]) if fields else "")
            if src is None:
                return None
            return self.sources[src].document.locate(("kernel", *fields), key=not fields)
        if index is None:
            for source in self.sources:
                if section in (source.document.value or {}):
                    return source.document.locate((section,), key=True)
            return None
        origin = self.origins.get((section, index))
        if origin is None:
            return None
        src_index, local = origin
        return self.sources[src_index].document.locate((section, local, *fields))

    def describe(self, section: str, index: int | None = None, *fields: str | int) -> str:
        """``file:line:col: services[2].image`` for messages (without location if unknown)."""
        path = dotted((section, *(() if index is None else (index,)), *fields))
        loc = self.locate(section, index, *fields)
        return f"{loc}: {path}" if loc else path


def _read(source: str, stdin: IO[bytes] | None) -> tuple[bytes, str, str | None]:
    """The bytes, display name and directory (local files only) of a source."""
    if source == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        return stream.read(), STDIN_NAME, None
    if source.startswith(("http://", "https://")):
        return _fetch(source), source, None
    try:
        with open(source, "rb") as fh:
            return fh.read(), source, os.path.dirname(source) or "."
    except OSError as exc:
        raise UserError(f"cannot open config file {source}: {exc.strerror or exc}") from exc


def _fetch(url: str) -> bytes:
    """A YAML file given by URL, through the project's one HTTP stack (redirects, proxies, the system's
    CA store, the one retry policy); imported only here. At most one byte more than ``load_yaml``
    accepts is read, so a huge answer is reported as too large."""
    from ..http.client import HttpClient
    from ..http.transport import TransportError

    try:
        with HttpClient() as client, client.request("GET", url) as response:
            if response.status_code != 200:
                raise UserError(
                    f"cannot fetch remote yaml file {url}: HTTP {response.status_code}",
                    hint="check the URL" if response.status_code < 500 else "the server is failing; retry later",
                )
            return response.read(MAX_BYTES)
    except TransportError as exc:
        raise UserError(
            f"cannot fetch remote yaml file {url}: {exc}",
            hint=f"check the URL and the network (tried {exc.attempts} time(s))",
        ) from exc


def default_package_resolver(pkg_dir: str) -> str:
    """The canonical tag of the package in ``pkg_dir``, as ``pkg show-tag --canonical`` prints it."""
    from ..packages.tag import TagOptions, package_tag

    # upstream forces the default template here, whatever build.yml says
    return package_tag(pkg_dir, TagOptions(tag_template="{{.Hash}}")).canonical


class PackageTags:
    """A :data:`PackageResolver` that resolves each package directory once (its failure too).

    One is made per :func:`load_configs` call, so a package named by several files (or several
    times in one) has its tag computed once (git tree hashes of the whole directory), and a
    package that changes between two loads is seen changed.
    """

    def __init__(self, resolver: PackageResolver) -> None:
        self._resolver = resolver
        self._tags: dict[str, str] = {}
        self._failed: dict[str, LinuxKitError | OSError] = {}

    def __call__(self, pkg_dir: str) -> str:
        failed = self._failed.get(pkg_dir)
        if failed is not None:
            raise failed
        tag = self._tags.get(pkg_dir)
        if tag is None:
            try:
                tag = self._tags[pkg_dir] = self._resolver(pkg_dir)
            except (LinuxKitError, OSError) as exc:
                self._failed[pkg_dir] = exc
                raise
        return tag


def _templates(doc: Document, directory: str, resolver: PackageResolver, rep: Reporter) -> Any:
    """``doc.value`` with every ``@pkg:`` string replaced by the package's tag (``resolver`` is
    asked once per package directory: wrap it in :class:`PackageTags` to share that across files)."""
    tags = resolver if isinstance(resolver, PackageTags) else PackageTags(resolver)
    value = copy.deepcopy(doc.value)
    reported: set[str] = set()
    for path, text in list(walk_strings(value)):
        if not text.startswith(PKG_PREFIX):
            continue
        pkg = posixpath.normpath(directory + "/" + text[len(PKG_PREFIX) :])
        try:
            tag = tags(pkg)
        except LinuxKitError as exc:
            located = [d for d in exc.diagnostics if d.location is not None]
            if not located:
                rep.add(path, f"cannot resolve {text!r}: {exc.message}", exc.hint)
            else:  # e.g. the package's build.yml is wrong: each problem where it is written
                if pkg not in reported:
                    rep.diagnostics.extend(located)
                    reported.add(pkg)
                where = ", ".join(str(d.location) for d in located[:3]) + (", …" if len(located) > 3 else "")
                rep.add(path, f"cannot resolve {text!r}: the package has errors", f"see {where}")
            continue
        except OSError as exc:
            rep.add(path, f"cannot resolve {text!r}: {exc}")
            continue
        container: Any = value
        for part in path[:-1]:
            container = container[part]
        container[path[-1]] = tag
    return value


def parse_config(
    data: bytes,
    name: str,
    *,
    directory: str | None = None,
    pkg_resolver: PackageResolver | None = None,
    sources_must_exist: bool = True,
) -> tuple[Document, schema.Moby | None, list[Diagnostic]]:
    """Parse and check one config text (a missing ``files[].source`` is only a warning without
    ``sources_must_exist``).

    With diagnostics, the model (if any) is a best-effort one with the broken parts left out.
    """
    doc = load_yaml(data, name)
    rep = Reporter(doc)
    if doc.value is None:
        rep.add((), "the config is empty", "a config is a mapping with keys such as kernel, init, onboot, services")
        return doc, None, rep.diagnostics
    if not isinstance(doc.value, dict):
        rep.add((), "the config must be a mapping, not a " + type(doc.value).__name__)
        return doc, None, rep.diagnostics
    value = doc.value
    if directory is not None and pkg_resolver is not None:
        value = _templates(doc, directory, pkg_resolver, rep)
    # the model keeps what is valid, so that the semantic checks run on the rest
    moby, issues = schema.check(schema.Moby, value)
    found = schema_diagnostics(doc, issues)
    if moby.trust is not None:
        log.warn(f"{doc.locate(('trust',), key=True)}: trust is ignored (content trust was removed upstream)")
    found = rep.diagnostics + found
    bad = [d.path or "" for d in found]
    more = semantic_diagnostics(doc, moby, sources_must_exist=sources_must_exist)
    return doc, moby, found + [d for d in more if not any(_within(d.path or "", b) for b in bad)]


def _within(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((prefix + ".", prefix + "["))


def _merge(sources: Sequence[SourceFile]) -> tuple[schema.Moby, dict[tuple[str, int], tuple[int, int]], dict[str, int]]:
    kernel: dict[str, Any] | None = None
    kernel_origins: dict[str, int] = {}
    lists: dict[str, list[Any]] = {name: [] for name in LISTS}
    origins: dict[tuple[str, int], tuple[int, int]] = {}
    for src_index, src in enumerate(sources):
        m = src.moby
        if m.kernel is not None:
            kernel = kernel if kernel is not None else {}
            kernel_origins.setdefault("", src_index)
            for key in ("image", "cmdline", "binary"):
                if getattr(m.kernel, key):
                    kernel[key] = getattr(m.kernel, key)
                    kernel_origins[key] = src_index
            for key in ("tar", "ucode"):
                if getattr(m.kernel, key) is not None:
                    kernel[key] = getattr(m.kernel, key)
                    kernel_origins[key] = src_index
        for name in LISTS:
            for local, item in enumerate(getattr(m, name) or []):
                origins[(name, len(lists[name]))] = (src_index, local)
                lists[name].append(item)
    merged = schema.Moby(
        kernel=None if kernel is None else schema.Kernel(**kernel),
        # Go's append(nil, empty...) stays nil, so an empty merged list is "not set"
        **{name: (items or None) for name, items in lists.items()},  # type: ignore[arg-type]
    )
    return merged, origins, kernel_origins


def _cross_checks(cfg: LoadedConfig) -> list[Diagnostic]:
    diags: list[Diagnostic] = []
    m = cfg.moby

    def add(section: str, index: int, fields: tuple[str | int, ...], message: str, hint: str | None = None) -> None:
        diags.append(Diagnostic(message, cfg.locate(section, index, *fields), dotted((section, index, *fields)), hint))

    for section, what in (("services", "service"), ("volumes", "volume")):
        first: dict[str, int] = {}
        for i, item in enumerate(getattr(m, section) or []):
            name = item.name
            if not name:
                continue
            if name in first:
                where = cfg.locate(section, first[name], "name")
                add(section, i, ("name",), f"duplicate {what} name {name!r}", f"first defined at {where}")
            else:
                first[name] = i
    names = {image.name for section in IMAGE_SECTIONS for image in getattr(m, section) or []}
    hint = "use a number, root, or the name of an onboot, onshutdown or services entry"

    def check_id(section: str, index: int, fields: tuple[str | int, ...], value: object) -> None:
        if isinstance(value, str) and value not in ("", "root") and value not in names:
            add(section, index, fields, f"unknown user or group {value!r}", hint)

    for section in IMAGE_SECTIONS:
        for i, image in enumerate(getattr(m, section) or []):
            check_id(section, i, ("uid",), image.uid)
            check_id(section, i, ("gid",), image.gid)
            for j, gid in enumerate(image.additional_gids or []):
                check_id(section, i, ("additionalGids", j), gid)
    for i, f in enumerate(m.files or []):
        check_id("files", i, ("uid",), f.uid)
        check_id("files", i, ("gid",), f.gid)
    # binds naming volumes: against the volumes of all the files (as the build uses them)
    volumes = {v.name: v for v in m.volumes or [] if v.name}
    for section in IMAGE_SECTIONS:
        for i, image in enumerate(getattr(m, section) or []):
            for fields, message, hint in volume_problems(image, volumes):
                add(section, i, fields, message, hint)
    return diags


def _default_name(sources: Sequence[str]) -> str:
    last = sources[-1] if sources else "-"
    if last == "-":
        return STDIN_DEFAULT_NAME
    base = os.path.basename(last)
    stem, ext = os.path.splitext(base)
    return stem if ext else base


def load_configs(
    sources: Sequence[str],
    *,
    pkg_resolver: PackageResolver | None = None,
    stdin: IO[bytes] | None = None,
    resolve_packages: bool = True,
    sources_must_exist: bool = True,
) -> LoadedConfig:
    """Load, check and merge ``sources`` (paths, ``-`` or http(s) URLs) in order.

    ``pkg_resolver`` replaces the default ``@pkg:`` resolver; ``resolve_packages=False`` leaves
    ``@pkg:`` strings alone. ``sources_must_exist=False`` (a dry run, which reads no file source)
    turns a missing ``files[].source`` into a warning.
    """
    if not sources:
        raise UserError("no config file given")
    # each @pkg: directory resolved once for all the files
    resolver = PackageTags(pkg_resolver or default_package_resolver) if resolve_packages else None
    loaded: list[SourceFile] = []
    diags: list[Diagnostic] = []
    for source in sources:
        data, name, directory = _read(source, stdin)
        doc, moby, problems = parse_config(
            data, name, directory=directory, pkg_resolver=resolver, sources_must_exist=sources_must_exist
        )
        diags.extend(problems)
        if moby is not None:
            loaded.append(SourceFile(name, directory, doc, moby))
    merged, origins, kernel_origins = _merge(loaded)
    cfg = LoadedConfig(merged, loaded, origins, kernel_origins, _default_name(sources))
    diags += _cross_checks(cfg)
    if diags:
        raise ConfigError(dict.fromkeys(diags))  # once each (two files may use one broken package)
    return cfg
