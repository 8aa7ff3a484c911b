"""Linux capabilities: the names upstream accepts and the sets it derives from a container's lists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import UserError

#: Every capability upstream knows (github.com/moby/sys/capability ``ListKnown``), in kernel number order.
KNOWN_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

_KNOWN = frozenset(KNOWN_CAPABILITIES)


def expand_keywords(caps: Sequence[str]) -> list[str]:
    """A list holding only ``all`` or ``none`` (any case) means every capability or none; otherwise as given."""
    if len(caps) == 1:
        keyword = caps[0].lower()
        if keyword == "none":
            return []
        if keyword == "all":
            return list(KNOWN_CAPABILITIES)
    return list(caps)


def check_known(caps: Sequence[str]) -> None:
    """Raise :class:`UserError` for the first name that is not a known capability (names are case-sensitive)."""
    for cap in caps:
        if cap not in _KNOWN:
            suggestion = "CAP_" + cap.upper().removeprefix("CAP_")
            hint = f"did you mean {suggestion}?" if suggestion in _KNOWN else None
            raise UserError(
                f"unknown capability: {cap}",
                hint=hint
                or "capabilities are upper case with the CAP_ prefix (CAP_NET_ADMIN), or just 'all' or 'none'",
            )


def capability_sets(caps: Sequence[str], ambient: Sequence[str]) -> dict[str, Any]:
    """The OCI ``process.capabilities`` object (Go field order, empty sets left out).

    ``effective`` is ``caps`` as given; ``bounding``, ``inheritable`` and ``permitted`` are the sorted
    union of ``caps`` and ``ambient``; ``ambient`` is as given. Both lists are keyword-expanded and checked.
    """
    effective = expand_keywords(caps)
    check_known(effective)
    ambient_set = expand_keywords(ambient)
    check_known(ambient_set)
    bounding = sorted(set(effective) | set(ambient_set))
    out: dict[str, Any] = {}
    for key, value in (
        ("bounding", bounding),
        ("effective", effective),
        ("inheritable", bounding),
        ("permitted", bounding),
        ("ambient", ambient_set),
    ):
        if value:
            out[key] = list(value)
    return out
