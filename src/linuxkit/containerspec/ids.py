"""User and group ids by container name, as upstream hands them out.

Every ``onboot``, ``onshutdown`` and ``services`` entry, in that order, gets the next id from 100; a
``uid``/``gid``/``additionalGids``/file owner may then name a container instead of a number.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..config import schema
from ..errors import UserError

IdMap = Mapping[str, int]

FIRST_ID = 100
_UINT32 = 0xFFFFFFFF


def allocate_ids(moby: schema.Moby) -> dict[str, int]:
    """Name → id for every container; a name used twice keeps the id of its last use (as upstream's map does)."""
    ids: dict[str, int] = {}
    next_id = FIRST_ID
    for section in (moby.onboot, moby.onshutdown, moby.services):
        for image in section or ():
            ids[image.name] = next_id
            next_id += 1
    return ids


def resolve_id(value: int | str | None, ids: IdMap) -> int:
    """The numeric id for a ``uid``/``gid`` value: unset, ``""`` and ``root`` are 0, a number is itself
    (truncated to 32 bits like Go's conversion), a container name is that container's id."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise UserError(f"bad type for uid or gid: {value!r}", hint="use a number or a container name")
    if isinstance(value, int):
        return value & _UINT32
    if value in ("", "root"):
        return 0
    found = ids.get(value)
    if found is None:
        known = ", ".join(sorted(ids)) or "none"
        raise UserError(
            f"cannot find id: {value}",
            hint=f"use a number, 'root' or the name of an onboot/onshutdown/service container (known: {known})",
        )
    return found
