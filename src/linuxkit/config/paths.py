"""Rules for the names and paths a config (or an image's ``org.mobyproject.config`` label) gives.

They keep a hostile config from writing or making anything outside the place it names, at build
time (tar entries) and at boot (the guest's runner):

* a container or volume **name** becomes one directory (``containers/services/NAME``,
  ``containers/volumes/NAME``): it must be a single path component, i.e. not empty, not ``.`` or
  ``..``, without ``/`` or NUL. Upstream does not check container names (its ``path.Join`` cleans
  ``../..`` away into entries outside ``containers/``); volume names must match ``^[a-z0-9_-]*$``
  there, which already excludes all of these but the empty name;
* a **container mount destination** (``binds``, ``tmpfs``, ``mounts`` of ``config.json``) is a path
  inside the container: absolute and without ``..`` components. Upstream checks neither (two of its
  build-only test configs use ``destination: writeable-host-etc``); the runtime spec allows a relative
  one on Linux since 2023 (relative to ``/``), runc takes it with a warning, crun refuses it at start;
* a **runtime** path (``runtime.mounts[].destination``, ``runtime.mkdir``, ``runtime.cgroups``) is
  made by the guest's runner before the container starts: relative ones are under the bundle's
  ``rootfs`` (cgroups: under ``/sys/fs/cgroup``), absolute ones are host paths by design. A ``..``
  component would climb out of the rootfs (or the cgroup tree), so it is refused;
* a **file** path (``files[].path``) becomes a tar entry: leading ``/`` are stripped, it must not be
  empty then and has no ``..`` component.
"""

from __future__ import annotations

from collections.abc import Iterator

from . import schema

FieldPath = tuple[str | int, ...]


def _has_dotdot(path: str) -> bool:
    return ".." in path.split("/")


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a single path component (``None`` when it is one)."""
    if not name:
        return "is empty"
    if "\0" in name:
        return "contains a NUL character"
    if "/" in name:
        return "contains '/'"
    if name in (".", ".."):
        return f"is {name!r}"
    return None


def runtime_path_problem(path: str) -> str | None:
    """Why a path the guest's runner creates (runtime mounts, mkdir, cgroups) is refused."""
    if "\0" in path:
        return "contains a NUL character"
    if _has_dotdot(path):
        return "contains a '..' component"
    return None


def container_destination_problem(destination: str) -> str | None:
    """Why a mount destination inside a container is refused (``None`` when it is fine). A relative
    destination is taken below the container's root, as upstream and the runtime spec (since 1.1)
    do: upstream's own test configs use one."""
    return runtime_path_problem(destination)


def file_path_problem(path: str) -> str | None:
    """Why a ``files`` entry's path is refused (``None`` when it names a place inside the image)."""
    if "\0" not in path and not path.lstrip("/"):
        return "names the root of the image"
    return runtime_path_problem(path)


CONTAINER_HINT = (
    "a mount destination is an absolute path inside the container, e.g. /var/lib/app "
    "(runc reads a relative one as relative to /, crun refuses it)"
)
RUNTIME_HINT = (
    "runtime paths are created by the guest before the container starts: relative ones under the "
    "container's root, absolute ones on the host; '..' is not allowed"
)


def image_path_problems(image: schema.ImageConfig) -> Iterator[tuple[FieldPath, str, str]]:
    """``(field path, message, hint)`` for every mount destination or runtime path of ``image`` that
    is refused. Malformed binds and tmpfs entries (wrong number of ``:``) are left to their own check."""
    for key, binds in (("binds", image.binds), ("binds.add", image.binds_add)):
        for i, bind in enumerate(binds or []):
            parts = bind.split(":")
            if 2 <= len(parts) <= 3 and (problem := container_destination_problem(parts[1])):
                yield (key, i), f"bind destination {parts[1]!r} {problem}", CONTAINER_HINT
    for i, tmpfs in enumerate(image.tmpfs or []):
        parts = tmpfs.split(":")
        if len(parts) <= 2 and (problem := container_destination_problem(parts[0])):
            yield ("tmpfs", i), f"tmpfs destination {parts[0]!r} {problem}", CONTAINER_HINT
    for i, mount in enumerate(image.mounts or []):
        # an empty destination takes the mount type's default (/proc, /sys, ...)
        if mount.destination and (problem := container_destination_problem(mount.destination)):
            yield ("mounts", i, "destination"), f"mount destination {mount.destination!r} {problem}", CONTAINER_HINT
    runtime = image.runtime
    if runtime is None:
        return
    for i, mount in enumerate(runtime.mounts or []):
        if mount.destination and (problem := runtime_path_problem(mount.destination)):
            yield (
                ("runtime", "mounts", i, "destination"),
                f"runtime mount destination {mount.destination!r} {problem}",
                RUNTIME_HINT,
            )
    for i, directory in enumerate(runtime.mkdir or []):
        if problem := runtime_path_problem(directory):
            yield ("runtime", "mkdir", i), f"mkdir path {directory!r} {problem}", RUNTIME_HINT
    for i, cgroup in enumerate(runtime.cgroups or []):
        if problem := runtime_path_problem(cgroup):
            yield ("runtime", "cgroups", i), f"cgroup {cgroup!r} {problem}", "a cgroup is a path under /sys/fs/cgroup"
