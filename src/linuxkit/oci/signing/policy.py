"""Which key an image's signature must verify under: ``--verify-key`` (every image) and
``--verify-policy FILE`` (repository prefixes → keys; the longest prefix that matches wins, and
``--verify-key`` covers what the policy does not name)::

    registries:
      registry.example.com/linuxkit: keys/linuxkit.pub   # relative to the policy file
      registry.example.com: keys/example.pub
      docker.io/library: none                             # no signature needed

A prefix is a repository name as ``linuxkit`` normalises it (``docker.io/library/alpine``), matched
on whole components. The policy is read before anything is pulled; its problems are located.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ...config.yamlload import load_yaml
from ...errors import ConfigError, Diagnostic, UserError
from .. import reference
from .keys import VerifyKey, load_verify_key

_MAX_POLICY = 1 << 20
_NONE = ("none", "")


@dataclass(frozen=True)
class VerifyPolicy:
    """Prefixes (repository names, no tag) with their key, ``None`` meaning "no signature needed",
    and the key of every other image (``--verify-key``; ``None``: other images are not verified)."""

    rules: tuple[tuple[str, VerifyKey | None], ...] = ()
    default: VerifyKey | None = None
    sources: tuple[str, ...] = field(default=(), compare=False)

    def key_for(self, ref: str) -> VerifyKey | None:
        """The key ``ref``'s signature must verify under; ``None``: it needs none."""
        name = reference.parse(ref).name
        best: tuple[int, VerifyKey | None] | None = None
        for prefix, key in self.rules:
            if (name == prefix or name.startswith(prefix + "/")) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), key)
        return best[1] if best is not None else self.default

    def describe(self) -> str:
        return " and ".join(self.sources)


def load_policy(verify_key: str = "", policy_file: str = "") -> VerifyPolicy | None:
    """The policy of the flags; ``None`` when neither is given (nothing is verified)."""
    if not verify_key and not policy_file:
        return None
    default = load_verify_key(verify_key) if verify_key else None
    rules = _read_policy(policy_file) if policy_file else ()
    sources = tuple(
        s for s in (verify_key and f"--verify-key {verify_key}", policy_file and f"--verify-policy {policy_file}") if s
    )
    return VerifyPolicy(rules, default, sources)


def _read_policy(path: str) -> tuple[tuple[str, VerifyKey | None], ...]:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_POLICY + 1)
    except OSError as exc:
        raise UserError(f"--verify-policy {path}: {exc.strerror or exc}") from exc
    doc = load_yaml(data, path, max_bytes=_MAX_POLICY)
    top = doc.value
    if not isinstance(top, dict) or set(top) != {"registries"} or not isinstance(top["registries"], dict):
        raise ConfigError(
            [
                Diagnostic(
                    "a verify policy is a mapping with one key, registries: (repository prefix: public key file)",
                    doc.locate(()),
                    None,
                    "e.g. registries: {registry.example.com/org: org.pub, docker.io/library: none}",
                )
            ]
        )
    rules: list[tuple[str, VerifyKey | None]] = []
    problems: list[Diagnostic] = []
    base = Path(path).parent
    for prefix, value in top["registries"].items():
        where = doc.locate(("registries", prefix), key=True)
        text = str(prefix).strip().rstrip("/")
        name = _expanded(text)
        if not name:
            problems.append(Diagnostic(f"{prefix!r} is not a registry or repository name", where, None, None))
            continue
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE):
            rules.append((name, None))
            continue
        if not isinstance(value, str):
            problems.append(
                Diagnostic(f"{prefix}: the key is not a file name", doc.locate(("registries", prefix)), None, None)
            )
            continue
        key_path = Path(value) if Path(value).is_absolute() else base / value
        try:
            rules.append((name, load_verify_key(key_path, f"{path}: {prefix}:")))
        except UserError as exc:
            problems.append(Diagnostic(exc.message, doc.locate(("registries", prefix)), None, exc.hint))
    if problems:
        raise ConfigError(problems)
    return tuple(rules)


_HOST = re.compile(r"^(localhost|[a-z0-9-]+(\.[a-z0-9-]+)+|[a-z0-9.-]+:[0-9]+)$")


def _expanded(text: str) -> str:
    """``text`` as a repository name: a bare registry host (``host:5000``, ``registry.example.com``)
    stays a host, the rest is expanded as image names are (``alpine`` → ``docker.io/library/alpine``);
    ``""`` when it is neither (or has a tag or digest)."""
    if _HOST.match(text):
        return text
    try:
        parsed = reference.parse(text)
    except UserError:
        return ""
    return parsed.name if parsed.tag is None and parsed.digest is None else ""
