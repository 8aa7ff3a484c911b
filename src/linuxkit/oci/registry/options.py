"""What the caller can set: plain-HTTP hosts, mirrors, CA files, credentials, retry policy."""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ... import log, runner
from ...errors import LinuxKitError

if TYPE_CHECKING:
    from ...http.transport import Transport

DOCKER_HUB = "docker.io"
DOCKER_HUB_REGISTRY = "registry-1.docker.io"
#: The key ``docker login`` stores Docker Hub credentials under in config.json.
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"


#: The user name docker stores with an identity (OAuth2 refresh) token instead of a password.
TOKEN_USER = "<token>"


@dataclass(frozen=True)
class Credentials:
    """Basic-auth user and password (``password`` may be a personal access token).

    With ``username`` :data:`TOKEN_USER`, ``password`` is an identity token exchanged at the
    token server; with ``registry_token``, ``password`` is a bearer token sent to the registry as is.
    """

    username: str
    password: str
    registry_token: bool = False

    def __repr__(self) -> str:
        kind = ", registry_token=True" if self.registry_token else ""
        return f"Credentials(username={self.username!r}, password=***{kind})"


def parse_registry_creds(values: Iterable[str]) -> dict[str, Credentials]:
    """``REGISTRY=USER:PASSWORD`` or ``REGISTRY=TOKEN`` items (``--registry-creds``) by registry.

    ``ValueError`` with a readable message for a malformed item (the password is never shown).
    """
    out: dict[str, Credentials] = {}
    for item in values:
        host, eq, secret = item.partition("=")
        host = _registry_key(host.strip())
        if not eq or not host or not secret:
            shown = item.partition("=")[0] or item[:0]
            raise ValueError(f"--registry-creds {shown}=...: expected REGISTRY=USER:PASSWORD or REGISTRY=TOKEN")
        user, colon, password = secret.partition(":")
        if colon and user:
            out[host] = Credentials(user, password)
        elif colon:
            raise ValueError(f"--registry-creds {host}=...: the user name is empty")
        else:
            out[host] = Credentials("", secret, registry_token=True)
    return out


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
    ``transport`` replaces the HTTP transport (tests inject fake ones here); ``sleep``
    replaces :func:`time.sleep`. ``parallel``: blobs of one pull fetched at the same time.
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
    parallel: int = 6  # as skopeo (containers/image): every layer of most images at once
    transport: Transport | None = field(default=None, compare=False)
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def registry_host(self, domain: str) -> str:
        """The host serving a reference's domain (``docker.io`` → ``registry-1.docker.io``)."""
        return DOCKER_HUB_REGISTRY if domain in (DOCKER_HUB, "index.docker.io") else domain

    def allows_http(self, host: str) -> bool:
        return host in self.insecure or is_loopback(host)

    def credentials_for(self, domain: str) -> Credentials | None:
        """Credentials for ``domain``: explicit ones first, then docker's config.json.

        From config.json, as docker reads it: the registry's ``credHelpers`` entry, else the
        ``credsStore`` helper, else the ``auths`` entry (a helper that knows nothing falls back
        to ``auths``).
        """
        for key in _auth_keys(domain):
            if key in self.credentials:
                return self.credentials[key]
        if not self.use_docker_config:
            return None
        config = load_docker_config(self.docker_config or default_docker_config())
        auths = parse_auths(config.path, config.auths)
        keys = _auth_keys(domain)
        helper = next((config.cred_helpers[k] for k in keys if k in config.cred_helpers), None) or config.creds_store
        if helper:
            server = DOCKER_HUB_AUTH_KEY if domain in (DOCKER_HUB, "index.docker.io", DOCKER_HUB_REGISTRY) else domain
            found = helper_credentials(helper, server)
            if found is not None:
                return found
        for key in keys:
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
    """``localhost``, ``127.0.0.0/8`` or ``::1`` (without importing ``ipaddress``: start-up time)."""
    import socket

    host = host_of(hostport)
    if host == "localhost":
        return True
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            packed = socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return packed[0] == 127 if family == socket.AF_INET else packed == bytes(15) + b"\x01"
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


@dataclass(frozen=True)
class DockerConfig:
    """The credential parts of a docker config.json."""

    path: Path
    auths: Mapping[str, object] = field(default_factory=dict)
    creds_store: str = ""
    cred_helpers: Mapping[str, str] = field(default_factory=dict)


def load_docker_config(path: Path) -> DockerConfig:
    """``auths``, ``credsStore`` and ``credHelpers`` (keys reduced to ``host[:port]``); a missing file is empty."""
    try:
        obj = json.loads(path.read_bytes())
    except FileNotFoundError:
        return DockerConfig(path)
    except (OSError, ValueError) as exc:
        log.warn(f"ignoring {path}: {exc}")
        return DockerConfig(path)
    if not isinstance(obj, dict):
        log.warn(f"ignoring {path}: not a JSON object")
        return DockerConfig(path)
    auths = obj.get("auths")
    store = obj.get("credsStore")
    helpers = obj.get("credHelpers")
    return DockerConfig(
        path,
        auths if isinstance(auths, dict) else {},
        store if isinstance(store, str) else "",
        {_registry_key(str(k)): v for k, v in helpers.items() if isinstance(v, str) and v}
        if isinstance(helpers, dict)
        else {},
    )


def load_docker_auths(path: Path) -> dict[str, Credentials]:
    """The ``auths`` of a docker config.json (see :func:`parse_auths`)."""
    return parse_auths(path, load_docker_config(path).auths)


def parse_auths(path: Path, auths: Mapping[str, object]) -> dict[str, Credentials]:
    """``auth`` = base64 ``user:pass``, or ``username``/``password``, or ``identitytoken``.

    An unreadable entry is skipped with a warning.
    """
    out: dict[str, Credentials] = {}
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
        identity = entry.get("identitytoken")
        if isinstance(identity, str) and identity:
            out[_registry_key(str(key))] = Credentials(TOKEN_USER, identity)
        elif isinstance(user, str) and isinstance(password, str) and user:
            out[_registry_key(str(key))] = Credentials(user, password)
    return out


def helper_credentials(helper: str, server: str) -> Credentials | None:
    """Ask ``docker-credential-<helper> get`` for ``server`` (server URL on stdin, JSON out).

    ``None`` when the helper has nothing for the server; a missing or failing helper is a
    warning (docker goes on without credentials too), never a crash.
    """
    program = f"docker-credential-{helper}"
    try:
        tool = runner.find_tool(program)
    except LinuxKitError:
        log.warn(f"credential helper {program} (from docker's config.json) is not installed; ignoring it")
        return None
    try:
        result = runner.run([tool, "get"], input=server.encode(), capture=True, check=False)
    except LinuxKitError as exc:
        log.warn(f"credential helper {program} failed: {exc}")
        return None
    out = result.stdout.decode(errors="replace").strip()
    if result.returncode != 0:
        # the helpers' protocol: "credentials not found in native keychain" means no entry
        if "credentials not found" not in out.lower():
            log.warn(f"credential helper {program} failed for {server}: {out or result.stderr.decode()[:200]}")
        return None
    try:
        obj = json.loads(out)
        user, secret = obj.get("Username"), obj.get("Secret")
    except (ValueError, AttributeError):
        log.warn(f"credential helper {program} answered something that is not its JSON; ignoring it")
        return None
    if not isinstance(user, str) or not isinstance(secret, str) or not secret:
        return None
    return Credentials(user or TOKEN_USER, secret)
