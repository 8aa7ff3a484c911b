"""Go's slash-path functions (``path`` and ``filepath`` on Linux), which upstream's names go through.

:mod:`posixpath` differs at the edges: ``normpath`` keeps a leading ``//`` and turns ``""`` into
``"."`` where Go's ``Join`` returns ``""``; ``dirname``/``basename`` do not clean.
"""

from __future__ import annotations

import posixpath


def go_clean(name: str) -> str:
    """Go's ``path.Clean`` (and ``filepath.Clean`` for slash paths)."""
    out = posixpath.normpath(name) if name else "."
    if out.startswith("//"):  # normpath keeps a leading "//" (POSIX allows it); Go does not
        out = "/" + out.lstrip("/")
    return out


def go_dir(name: str) -> str:
    """Go's ``path.Dir``: everything before the last slash, cleaned (``.`` when there is none)."""
    head = name[: name.rfind("/") + 1]
    return go_clean(head) if head else "."


def go_base(name: str) -> str:
    """Go's ``path.Base``: the last element, trailing slashes ignored (``.`` for ``""``, ``/`` for slashes)."""
    if not name:
        return "."
    stripped = name.rstrip("/")
    if not stripped:
        return "/"
    return stripped[stripped.rfind("/") + 1 :]


def go_ext(name: str) -> str:
    """Go's ``path.Ext``: from the last dot of the last element (``""`` when it has none)."""
    for i in range(len(name) - 1, -1, -1):
        if name[i] == "/":
            break
        if name[i] == ".":
            return name[i:]
    return ""


def go_join(*parts: str) -> str:
    """Go's ``path.Join``: empty elements ignored, result cleaned (``""`` when all are empty)."""
    kept = [p for p in parts if p]
    return go_clean("/".join(kept)) if kept else ""


def go_rel(base: str, target: str) -> str | None:
    """Go's ``filepath.Rel(base, target)``; ``None`` where Go returns an error."""
    base, target = go_clean(base), go_clean(target)
    if base == target:
        return "."
    if base == ".":
        base = ""
    if base.startswith("/") != target.startswith("/"):
        return None
    b_parts = [p for p in base.split("/") if p] if base else []
    t_parts = [p for p in target.split("/") if p]
    common = 0
    while common < len(b_parts) and common < len(t_parts) and b_parts[common] == t_parts[common]:
        common += 1
    rest = b_parts[common:]
    if rest and rest[0] == "..":
        return None
    return "/".join([".."] * len(rest) + t_parts[common:]) or "."
