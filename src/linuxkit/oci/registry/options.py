"""What the caller can set: plain-HTTP hosts, mirrors, CA files, credentials, retry policy."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ... import log

if TYPE_CHECKING:
    import requests

DOCKER_HUB = "docker.io"
DOCKER_HUB_REGISTRY = "registry-1.docker.io"
#: The key ``docker login`` stores Docker Hub credentials under in config.json.
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"


@dataclass(frozen=True)
class Credentials:
    """Basic-auth user and password (``password`` may be a personal access token)."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=***)"


@dataclass(frozen=True)
class RegistryOptions:
    """How to reach registries.

    ``insecure``: hosts (``host[:port]``) that may be reached over plain HTTP (and HTTPS without
    certificate checks); loopback hosts always may. ``mirrors``: registry host → base URL to pull
    from instead (``docker.io`` → ``http://127.0.0.1:5001``). ``cert_files``: extra CA bundles.
    ``credentials``: registry host → credentials, taking precedence over ``docker_config``
    (default ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``; its ``auths``).
    Retries: connection errors, 429 and 5xx are retried ``retries`` times with exponential
    backoff from ``backoff`` seconds; a ``Retry-After`` is honoured up to ``max_retry_after``.
    ``session`` replaces the HTTP session (tests inject fault transports here); ``sleep``
    replaces :func:`time.sleep`.
    """

    insecure: frozenset[str] = frozenset()
    mirrors: Mapping[str, str] = field(default_factory=dict)
    cert_files: tuple[Path, ...] = ()
    credentials: Mapping[str, Credentials] = field(default_factory=dict)
    docker_config: Path | None = None
    use_docker_config: bool = True
    retries: int = 4
    backoff: float = 0.5
    max_retry_after: float = 30.0
    timeout: float = 60.0
    session: requests.Session | None = field(default=None, compare=False)
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def registry_host(self, domain: str) -> str:
        """The host serving a reference's domain (``docker.io`` → ``registry-1.docker.io``)."""
        return DOCKER_HUB_REGISTRY if domain in (DOCKER_HUB, "index.docker.io") else domain

    def allows_http(self, host: str) -> bool:
        return host in self.insecure or is_loopback(host)

    def credentials_for(self, domain: str) -> Credentials | None:
        """Credentials for ``domain``: explicit ones first, then docker's config.json ``auths``."""
        for key in _auth_keys(domain):
            if key in self.credentials:
                return self.credentials[key]
        if not self.use_docker_config:
            return None
        auths = load_docker_auths(self.docker_config or default_docker_config())
        for key in _auth_keys(domain):
            if key in auths:
                return auths[key]
        return None


def _auth_keys(domain: str) -> list[str]:
    if domain in (DOCKER_HUB, "index.docker.io", DOCKER_HUB_REGISTRY):
        return [DOCKER_HUB, DOCKER_HUB_AUTH_KEY, "index.docker.io", DOCKER_HUB_REGISTRY]
    return [domain]


def host_of(hostport: str) -> str:
    """``host`` of ``host[:port]`` / ``[v6]:port``."""
    if hostport.startswith("["):
        return hostport[1:].partition("]")[0]
    if hostport.count(":") > 1:
        return hostport
    return hostport.partition(":")[0]


def is_loopback(hostport: str) -> bool:
    host = host_of(hostport)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_docker_config(env: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if env is None else env
    base = environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def _registry_key(key: str) -> str:
    """``https://host/v1/`` → ``host``; Docker Hub's legacy key is kept as it is."""
    if key == DOCKER_HUB_AUTH_KEY:
        return key
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key.split("/", 1)[0]


def load_docker_auths(path: Path) -> dict[str, Credentials]:
    """The ``auths`` of a docker config.json (``auth`` = base64 ``user:pass``, or ``username``/``password``).

    A missing file gives nothing; an unreadable entry is skipped with a warning. Credential
    stores (``credsStore``/``credHelpers``) are not consulted yet.
    """
    try:
        obj = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warn(f"ignoring {path}: {exc}")
        return {}
    auths = obj.get("auths") if isinstance(obj, dict) else None
    out: dict[str, Credentials] = {}
    if not isinstance(auths, dict):
        return out
    for key, entry in auths.items():
        if not isinstance(entry, dict):
            continue
        user, password = entry.get("username"), entry.get("password")
        encoded = entry.get("auth")
        if isinstance(encoded, str) and encoded:
            try:
                user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                log.warn(f"{path}: auths[{key!r}].auth is not base64 user:password; ignored")
                continue
        if isinstance(user, str) and isinstance(password, str) and user:
            out[_registry_key(str(key))] = Credentials(user, password)
    return out
