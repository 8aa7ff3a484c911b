"""Binds and mounts whose source names a volume instead of a path.

A source without a leading ``/`` is a volume name; it is replaced by the volume's merged directory
under ``/containers/volumes/<name>/merged``. Binding a read-only volume needs an explicit ``ro``.
Only the YAML entry is rewritten (as upstream does): names in an image label stay as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..config import schema
from ..errors import UserError

VOLUMES_DIR = "/containers/volumes"


def merged_dir(name: str) -> str:
    return f"{VOLUMES_DIR}/{name}/merged"


def _volume(volumes: Mapping[str, schema.Volume], name: str, what: str) -> schema.Volume:
    volume = volumes.get(name)
    if volume is None:
        known = ", ".join(sorted(volumes)) or "none are defined"
        raise UserError(
            f"{what} uses volume {name!r}, which is not defined",
            hint=f"a source without a leading '/' names an entry of volumes: ({known})",
        )
    return volume


def _read_only_error(name: str, what: str) -> UserError:
    return UserError(
        f"volume {name} is read-only, but {what} would mount it read-write",
        hint="mount it read-only: add ':ro' to the bind (e.g. 'vol:/path:ro') or 'ro' to the mount options",
    )


def _rewrite_binds(binds: Sequence[str], volumes: Mapping[str, schema.Volume]) -> list[str]:
    out: list[str] = []
    for bind in binds:
        parts = bind.split(":")
        if parts[0].startswith("/"):
            out.append(bind)
            continue
        what = f"bind {bind!r}"
        volume = _volume(volumes, parts[0], what)
        if volume.readonly and (len(parts) < 3 or parts[2] != "ro"):
            raise _read_only_error(parts[0], what)
        parts[0] = merged_dir(parts[0])
        out.append(":".join(parts))
    return out


def _rewrite_mounts(mounts: Sequence[schema.Mount], volumes: Mapping[str, schema.Volume]) -> list[schema.Mount]:
    out: list[schema.Mount] = []
    for index, mount in enumerate(mounts):
        source = mount.source or ""
        if mount.type != "bind" or source.startswith("/"):
            out.append(mount)
            continue
        what = f"mounts[{index}]"
        volume = _volume(volumes, source, what)
        if volume.readonly:
            first = next((opt for opt in mount.options or () if opt in ("rw", "ro")), "rw")
            if first != "ro":
                raise _read_only_error(source, what)
        out.append(mount.model_copy(update={"source": merged_dir(source)}))
    return out


def with_volume_paths(image: schema.Image, volumes: Mapping[str, schema.Volume]) -> schema.Image:
    """``image`` with volume names in ``binds``, ``binds.add`` and bind ``mounts`` replaced by paths."""
    update: dict[str, object] = {}
    if image.mounts is not None:
        update["mounts"] = _rewrite_mounts(image.mounts, volumes)
    if image.binds is not None:
        update["binds"] = _rewrite_binds(image.binds, volumes)
    if image.binds_add is not None:
        update["binds_add"] = _rewrite_binds(image.binds_add, volumes)
    return image.model_copy(update=update) if update else image
