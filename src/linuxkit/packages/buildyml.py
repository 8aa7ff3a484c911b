"""A strict reader for a package's ``build.yml`` (upstream ``pkglib`` ``pkgInfo``, decoded with known fields only)."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, NamedTuple

from ..config import schema
from ..config.validate import Reporter, schema_diagnostics
from ..config.yamlload import Document, load_yaml
from ..errors import ConfigError, UserError
from ..oci import reference

DEFAULT_ORG = "linuxkit"
DEFAULT_TAG = "{{.Hash}}"
DEFAULT_DOCKERFILE = "Dockerfile"
DEFAULT_ARCHES = ("amd64", "arm64", "riscv64")
DEFAULT_GITREPO = "https://github.com/linuxkit/linuxkit"
BUILD_YML = "build.yml"


class DockerImages(schema.Model):
    target_dir: str | None = schema.f("target-dir")
    target: str | None = None
    from_file: str | None = schema.f("from-file")
    images: list[str] | None = schema.f("list")


class Depends(schema.Model):
    docker_images: DockerImages | None = schema.f("docker-images")


class DebianCopy(schema.Model):
    """A file or directory of the package directory copied into the image."""

    src: str
    dst: str
    mode: str | None = None  # octal string, e.g. "0755" (files only)


class DebianKernel(schema.Model):
    """Turn a Debian kernel package into a LinuxKit kernel image (``/kernel`` + ``/kernel.tar``)."""

    modules: list[str] = schema.f(default_factory=list)  # module names; their dependencies are added
    # device trees: globs under the package's usr/lib/linux-image-VERSION/, shipped in kernel.tar's boot/dtb/
    dtbs: list[str] = schema.f(default_factory=list)


class DebianSection(schema.Model):
    """Our extension: build the image from Debian packages instead of a Dockerfile (see docs/packages.md)."""

    suites: list[str] | None = None
    components: list[str] | None = None  # archive components (default: main), e.g. non-free-firmware
    packages: list[str]
    exclude_packages: list[str] | None = schema.f("exclude-packages")
    include: list[str] | None = None
    exclude: list[str] | None = None
    copy_: list[DebianCopy] | None = schema.f("copy")
    symlinks: dict[str, str] | None = None
    directories: list[str] | None = None
    # file → globs of packages' files, concatenated in path order (a postinst's bundle, e.g. CA certificates)
    concat: dict[str, list[str]] | None = None
    kernel: DebianKernel | None = None
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: list[str] | None = None
    workdir: str | None = None


class BuildYml(schema.Model):
    """The keys ``build.yml`` may hold; ``None`` means "absent" (defaults are applied in :class:`PkgInfo`)."""

    image: str | None = None
    org: str | None = None
    tag: str | None = None
    dockerfile: str | None = None
    arches: list[str] | None = None
    extra_sources: list[str] | None = schema.f("extra-sources")
    gitrepo: str | None = None
    network: bool | None = None
    disable_cache: bool | None = schema.f("disable-cache")
    config: schema.ImageConfig | None = None
    build_args: list[str] | None = schema.f("buildArgs")
    depends: Depends | None = None
    debian: DebianSection | None = None


class PkgInfo(NamedTuple):
    """A package's build settings with upstream's defaults filled in."""

    image: str
    org: str = DEFAULT_ORG
    tag: str = DEFAULT_TAG
    dockerfile: str = DEFAULT_DOCKERFILE
    arches: tuple[str, ...] = DEFAULT_ARCHES
    extra_sources: tuple[str, ...] = ()
    gitrepo: str = DEFAULT_GITREPO
    network: bool = False
    disable_cache: bool = False
    config: schema.ImageConfig | None = None
    build_args: tuple[str, ...] | None = None
    depends_images: tuple[str, ...] = ()
    depends_target: str = ""
    depends_target_dir: str = ""
    depends_from_file: str = ""
    debian: DebianSection | None = None
    path: str = ""  # where build.yml was read (:func:`with_path`)


def context_path(pkg_dir: Path, info: PkgInfo, src: str) -> Path:
    """Where ``src`` (a path in the build context) is on disk: under an ``extra-sources`` entry
    ``SRC:DST`` when it lies in ``DST`` (upstream: "the destination in the build context"), else in
    the package directory."""
    parts = [p for p in src.split("/") if p not in ("", ".")]
    for source in info.extra_sources:
        origin, _, dest = source.partition(":")
        dest_parts = [p for p in dest.split("/") if p not in ("", ".")]
        if dest_parts and parts[: len(dest_parts)] == dest_parts:
            base = Path(origin) if os.path.isabs(origin) else pkg_dir / origin
            return base.joinpath(*parts[len(dest_parts) :])
    return pkg_dir.joinpath(*parts)


def parse_build_yml(data: bytes | str, name: str) -> PkgInfo:
    """Parse ``build.yml`` text; raise :class:`ConfigError` listing every problem, located."""
    doc = load_yaml(data, name)
    rep = Reporter(doc)
    if not isinstance(doc.value, dict):
        rep.add((), "build.yml must be a mapping with at least an image key")
        raise ConfigError(rep.diagnostics)
    raw = _validate(doc)
    if not raw.image:
        rep.add(("image",) if "image" in doc.value else (), "image is required", key=True)
    images = DockerImages()
    if raw.depends is not None and raw.depends.docker_images is not None:
        images = raw.depends.docker_images
    base: tuple[str, ...] = ("depends", "docker-images")
    if images.target and images.target_dir:
        rep.add((*base, "target"), "target and target-dir are mutually exclusive")
    if images.from_file and images.images:
        rep.add((*base, "list"), "list and from-file are mutually exclusive")
    for i, ref in enumerate(images.images or []):
        try:
            parsed = reference.parse(ref)
        except UserError as exc:
            rep.add((*base, "list", i), f"invalid image reference {ref!r}", exc.hint)
            continue
        if not parsed.digest:
            rep.add((*base, "list", i), f"image {ref!r} lacks a digest", "pin it as name@sha256:…")
    for i, src in enumerate(raw.extra_sources or []):
        if len(src.split(":")) != 2:
            rep.add(("extra-sources", i), f"bad source format {src!r}", "write it as source:destination")
    if raw.debian is not None:
        _check_debian(raw.debian, rep)
    if rep.diagnostics:
        raise ConfigError(rep.diagnostics)
    assert raw.image is not None
    return PkgInfo(
        image=raw.image,
        org=DEFAULT_ORG if raw.org is None else raw.org,
        tag=DEFAULT_TAG if raw.tag is None else raw.tag,
        dockerfile=DEFAULT_DOCKERFILE if raw.dockerfile is None else raw.dockerfile,
        arches=DEFAULT_ARCHES if raw.arches is None else tuple(raw.arches),
        extra_sources=tuple(raw.extra_sources or ()),
        gitrepo=DEFAULT_GITREPO if raw.gitrepo is None else raw.gitrepo,
        network=bool(raw.network),
        disable_cache=bool(raw.disable_cache),
        config=raw.config,
        build_args=None if raw.build_args is None else tuple(raw.build_args),
        depends_images=tuple(images.images or ()),
        depends_target=images.target or "",
        depends_target_dir=images.target_dir or "",
        depends_from_file=images.from_file or "",
        debian=raw.debian,
    )


def _validate(doc: Document) -> BuildYml:
    """The model of ``build.yml``. Upstream decodes it straight into Go structs (no JSON schema, unlike
    a system YAML), and go-yaml v3 decodes any scalar into a string field as its source text: so
    ``mode: 0666`` under ``config.devices`` is ``"0666"`` (upstream's pkg/getty and pkg/kmsg), and
    ``image: 1234`` is ``"1234"``."""
    if not isinstance(doc.value, dict):
        raise ConfigError(schema_diagnostics(doc, [schema.Issue((), "type", ("a mapping",))]))
    model, issues = schema.check(BuildYml, doc.value)
    if not issues:
        return model
    value = _scalars_as_text(doc, issues)
    if value is not None:
        model, issues = schema.check(BuildYml, value)
    if issues:
        raise ConfigError(schema_diagnostics(doc, issues))
    return model


def _scalars_as_text(doc: Document, issues: list[schema.Issue]) -> Any:
    """``doc.value`` with the scalars a string field refused (numbers, booleans) replaced by their
    source text; ``None`` when there is none."""
    fixes = [
        (issue.path, doc.texts[issue.path])
        for issue in issues
        if issue.kind == "type" and issue.expected == ("a string",) and issue.path in doc.texts
    ]
    if not fixes:
        return None
    value = copy.deepcopy(doc.value)
    for path, text in fixes:
        parent: Any = value
        for part in path[:-1]:
            parent = parent[part]
        parent[path[-1]] = text
    return value


def _check_debian(deb: DebianSection, rep: Reporter) -> None:
    base: tuple[str, ...] = ("debian",)
    if not deb.packages:
        rep.add((*base, "packages"), "debian.packages lists no package", "name at least one Debian package")
    for i, item in enumerate(deb.copy_ or []):
        if os.path.isabs(item.src) or ".." in item.src.split("/"):
            rep.add((*base, "copy", i, "src"), f"{item.src!r} must be a path inside the package directory")
        if not item.dst.startswith("/") or ".." in item.dst.split("/"):
            rep.add((*base, "copy", i, "dst"), f"{item.dst!r} must be an absolute path in the image, without '..'")
        if item.mode is not None and not _octal(item.mode):
            rep.add((*base, "copy", i, "mode"), f"bad mode {item.mode!r}", 'write it as an octal string, e.g. "0755"')
    for link in deb.symlinks or {}:
        if not link.startswith("/") or ".." in link.split("/"):
            rep.add(
                (*base, "symlinks", link), f"{link!r} must be an absolute path in the image, without '..'", key=True
            )
    for target, patterns in (deb.concat or {}).items():
        if not target.startswith("/") or ".." in target.split("/"):
            rep.add(
                (*base, "concat", target), f"{target!r} must be an absolute path in the image, without '..'", key=True
            )
        if not patterns:
            rep.add((*base, "concat", target), f"{target!r} lists no file to concatenate")
    for i, directory in enumerate(deb.directories or []):
        if ".." in directory.split("/"):
            rep.add((*base, "directories", i), f"{directory!r} must be a path in the image, without '..'")
    if deb.workdir is not None and not deb.workdir.startswith("/"):
        rep.add((*base, "workdir"), "workdir must be an absolute path")


def _octal(text: str) -> bool:
    try:
        return 0 <= int(text, 8) <= 0o7777
    except ValueError:
        return False


def read_build_yml(pkg_dir: str, build_yml: str = BUILD_YML) -> PkgInfo:
    """Read ``<pkg_dir>/<build_yml>``."""
    path = os.path.join(pkg_dir, build_yml)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise UserError(
            f"cannot read {path}: {exc.strerror or exc}", hint="a package directory needs a build.yml"
        ) from exc
    info = parse_build_yml(data, path)
    return info._replace(path=os.path.abspath(pkg_dir))
