"""``WWW-Authenticate`` challenges and bearer tokens (the Docker token protocol)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_PARAM_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class Challenge:
    """One parsed challenge: ``scheme`` in lower case (``bearer``/``basic``) and its parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str | None:
        return self.params.get("service")


def parse_challenge(header: str) -> Challenge | None:
    """The first challenge of a ``WWW-Authenticate`` header (registries send one)."""
    text = header.strip()
    if not text:
        return None
    scheme, _, rest = text.partition(" ")
    params = {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)) for m in _PARAM_RE.finditer(rest)
    }
    return Challenge(scheme.lower(), {k: v.replace('\\"', '"') for k, v in params.items()})


def scope(repository: str, actions: str) -> str:
    return f"repository:{repository}:{actions}"


def token_from(obj: object) -> str | None:
    """The token of a token-server answer (``token``, or OAuth2's ``access_token``)."""
    if not isinstance(obj, dict):
        return None
    for key in ("token", "access_token"):
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value
    return None
