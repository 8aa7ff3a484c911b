"""Binds and mounts whose source names a volume instead of a path.

A source without a leading ``/`` is a volume name; it is replaced by the volume's merged directory
under ``/containers/volumes/<name>/merged``. Binding a read-only volume needs an explicit ``ro``.
Only the YAML entry is rewritten (as upstream does): names in an image label stay as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..config import schema
from ..errors import UserError

VOLUMES_DIR = "/containers/volumes"


def merged_dir(name: str) -> str:
    return f"{VOLUMES_DIR}/{name}/merged"


#: ``(field path in the image entry, message, hint)``, as :func:`volume_problems` gives them.
Problem = tuple[tuple[str | int, ...], str, str]


def _read_only_hint() -> str:
    return "mount it read-only: add ':ro' to the bind (e.g. 'vol:/path:ro') or 'ro' to the mount options"


def volume_problems(image: schema.Image, volumes: Mapping[str, schema.Volume]) -> list[Problem]:
    """Binds (``binds``, ``binds.add``) and bind ``mounts`` of ``image`` that name a volume that is
    not defined, or mount a read-only volume read-write; each with where it is in the entry."""
    found: list[Problem] = []

    def check(where: tuple[str | int, ...], name: str, what: str, read_write: bool) -> None:
        volume = volumes.get(name)
        if volume is None:
            known = ", ".join(sorted(volumes)) or "none are defined"
            hint = f"a source without a leading '/' names an entry of volumes: ({known})"
            found.append((where, f"{what} uses volume {name!r}, which is not defined", hint))
        elif volume.readonly and read_write:
            found.append(
                (where, f"volume {name} is read-only, but {what} would mount it read-write", _read_only_hint())
            )

    for key, binds in (("binds", image.binds), ("binds.add", image.binds_add)):
        for index, bind in enumerate(binds or []):
            parts = bind.split(":")
            if 2 <= len(parts) <= 3 and not parts[0].startswith("/"):  # (a malformed bind is reported as such)
                check((key, index), parts[0], f"bind {bind!r}", len(parts) < 3 or parts[2] != "ro")
    for index, mount in enumerate(image.mounts or []):
        source = mount.source or ""
        if mount.type == "bind" and not source.startswith("/"):
            first = next((opt for opt in mount.options or () if opt in ("rw", "ro")), "rw")
            check(("mounts", index, "source"), source, f"mounts[{index}]", first != "ro")
    return found


def _rewrite_binds(binds: Sequence[str]) -> list[str]:
    out: list[str] = []
    for bind in binds:
        parts = bind.split(":")
        if not parts[0].startswith("/"):
            parts[0] = merged_dir(parts[0])
        out.append(":".join(parts))
    return out


def _rewrite_mounts(mounts: Sequence[schema.Mount]) -> list[schema.Mount]:
    out: list[schema.Mount] = []
    for mount in mounts:
        source = mount.source or ""
        if mount.type != "bind" or source.startswith("/"):
            out.append(mount)
        else:
            out.append(schema.replace(mount, source=merged_dir(source)))
    return out


def with_volume_paths(image: schema.Image, volumes: Mapping[str, schema.Volume]) -> schema.Image:
    """``image`` with volume names in ``binds``, ``binds.add`` and bind ``mounts`` replaced by paths;
    :class:`UserError` for the first of :func:`volume_problems` (config loading reports them all,
    located)."""
    for _, message, hint in volume_problems(image, volumes):
        raise UserError(message, hint=hint)
    update: dict[str, Any] = {}
    if image.mounts is not None:
        update["mounts"] = _rewrite_mounts(image.mounts)
    if image.binds is not None:
        update["binds"] = _rewrite_binds(image.binds)
    if image.binds_add is not None:
        update["binds_add"] = _rewrite_binds(image.binds_add)
    return schema.replace(image, **update) if update else image
