"""The registry client's auth, credentials and retry helpers, with a fake transport (no network)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from registry_fakes import FakeTransport, Reply, Sent

from linuxkit.http.retry import retry_after
from linuxkit.oci.registry import Credentials, RegistryOptions
from linuxkit.oci.registry.auth import parse_challenge
from linuxkit.oci.registry.client import Client
from linuxkit.oci.registry.errors import AuthError
from linuxkit.oci.registry.options import is_loopback, load_docker_auths

CHALLENGE = 'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:x:pull"'


class TokenRegistry:
    """A registry behind a token server that accepts ``user:secret`` and issues one token per scope."""

    def __init__(self) -> None:
        self.issued: list[str] = []

    def __call__(self, req: Sent) -> Reply:
        url = urlsplit(req.url)
        if url.netloc == "auth.example":
            expected = "Basic " + base64.b64encode(b"user:secret").decode()
            if req.header("Authorization") != expected:
                return 401, {}, b"{}"
            query = parse_qs(url.query)
            assert query["service"] == ["registry.example"]
            self.issued.append(query["scope"][0])
            return 200, {}, json.dumps({"token": f"tok-{query['scope'][0]}"}).encode()
        repo = url.path.split("/")[2]
        scope_needed = f"repository:{repo}:{'pull,push' if req.method == 'PUT' else 'pull'}"
        if req.header("Authorization") != f"Bearer tok-{scope_needed}":
            return 401, {"WWW-Authenticate": CHALLENGE}, b""
        return 200, {}, b"ok"


def client_with(handler: Callable[[Sent], Reply], **opts: Any) -> tuple[Client, FakeTransport]:
    transport = FakeTransport(handler)
    options = RegistryOptions(transport=transport, use_docker_config=False, sleep=lambda _s: None, **opts)
    return Client("registry.example", options, "pulling registry.example/x:1"), transport


def test_bearer_tokens_are_fetched_once_per_repository_and_actions() -> None:
    server = TokenRegistry()
    client, transport = client_with(server, credentials={"registry.example": Credentials("user", "secret")})
    for _ in range(2):
        assert client.request("GET", "/v2/x/manifests/1", repository="x").status_code == 200
    assert server.issued == ["repository:x:pull"]
    assert client.request("GET", "/v2/y/manifests/1", repository="y").status_code == 200
    assert client.request("PUT", "/v2/x/manifests/1", repository="x", actions="pull,push").status_code == 200
    assert server.issued == ["repository:x:pull", "repository:y:pull", "repository:x:pull,push"]
    # 1 challenge + token + retry, then reuse, then token + request for each new scope
    assert len(transport.sent) == 3 + 1 + 2 + 2


def test_refused_credentials_name_the_image_and_the_user() -> None:
    client, _ = client_with(TokenRegistry(), credentials={"registry.example": Credentials("user", "wrong")})
    with pytest.raises(AuthError, match=r"pulling registry\.example/x:1: .*refused the credentials of user") as err:
        client.request("GET", "/v2/x/manifests/1", repository="x")
    assert err.value.hint is not None and "registry.example" in err.value.hint


def test_basic_auth_challenge() -> None:
    def handler(req: Sent) -> Reply:
        if req.header("Authorization") == "Basic " + base64.b64encode(b"u:p").decode():
            return 200, {}, b""
        return 401, {"WWW-Authenticate": 'Basic realm="r"'}, b""

    client, transport = client_with(handler, credentials={"registry.example": Credentials("u", "p")})
    assert client.request("GET", "/v2/x/manifests/1", repository="x").status_code == 200
    assert client.request("GET", "/v2/x/manifests/2", repository="x").status_code == 200
    assert len(transport.sent) == 3
    anonymous, _ = client_with(handler)
    with pytest.raises(AuthError, match="needs a user name and password"):
        anonymous.request("GET", "/v2/x/manifests/1", repository="x")


def test_retries_honour_retry_after_then_give_up() -> None:
    answers = iter([(429, {"Retry-After": "3"}, b""), (503, {}, b""), (200, {}, b"")])
    slept: list[float] = []
    transport = FakeTransport(lambda _r: next(answers))
    opts = RegistryOptions(transport=transport, use_docker_config=False, sleep=slept.append, backoff=1.0)
    client = Client("registry.example", opts, "pulling x")
    assert client.request("GET", "/v2/x/manifests/1", repository="x").status_code == 200
    assert slept == [3.0, 2.0]


def test_challenge_parsing() -> None:
    c = parse_challenge(CHALLENGE)
    assert c is not None and c.scheme == "bearer" and c.realm == "https://auth.example/token"
    assert c.service == "registry.example" and c.params["scope"] == "repository:x:pull"
    assert parse_challenge("") is None


@pytest.mark.parametrize(("value", "expected"), [("5", 5.0), ("1000", 30.0), (None, None), ("soon", None)])
def test_retry_after(value: str | None, expected: float | None) -> None:
    assert retry_after(value, 30.0) == expected


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1:5000", True), ("127.5.0.1", True), ("localhost:80", True), ("[::1]:5000", True),
     ("::1", True), ("10.0.0.1:5000", False), ("registry.example", False), ("localhost.example", False)],
)  # fmt: skip
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    assert RegistryOptions().allows_http(host) is loopback
    assert RegistryOptions(insecure=frozenset({host})).allows_http(host)


def test_docker_config_auths(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    auths: Mapping[str, Any] = {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()},
        "ghcr.io": {"auth": base64.b64encode(b"gh:tok:en").decode()},
        "https://registry.example/v2/": {"username": "u", "password": "p"},
        "bad.example": {"auth": "%%%"},
    }
    config.write_text(json.dumps({"auths": auths, "credsStore": "desktop"}))
    assert load_docker_auths(config) == {
        "https://index.docker.io/v1/": Credentials("hub", "pw"),
        "ghcr.io": Credentials("gh", "tok:en"),
        "registry.example": Credentials("u", "p"),
    }
    opts = RegistryOptions(docker_config=config, credentials={"ghcr.io": Credentials("me", "x")})
    assert opts.credentials_for("docker.io") == Credentials("hub", "pw")
    assert opts.credentials_for("ghcr.io") == Credentials("me", "x")
    assert opts.credentials_for("registry.example") == Credentials("u", "p")
    assert opts.credentials_for("quay.io") is None
    assert load_docker_auths(tmp_path / "absent.json") == {}
    assert "pw" not in repr(Credentials("hub", "pw"))
