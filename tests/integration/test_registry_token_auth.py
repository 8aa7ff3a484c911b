"""The registry client against ``docker-registry`` with ``auth: token``.

The token server is written here: it checks ``alice:wonderland`` (or an identity token),
issues RS256 JWTs with an ``x5c`` header, signed with a self-signed certificate made with the
``openssl`` command (the ``cryptography`` package is not a dependency), and records every scope
it was asked for. CI needs the Debian packages ``docker-registry`` and ``openssl``.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import secrets
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from test_registry_client import AMD64, ARM64, NO_SLEEP, REGISTRY_BIN, make_cache, serve_registry, single
from tests import imagefactory as f
from tests import plainhttp

from linuxkit.oci.cache import Cache
from linuxkit.oci.registry import Credentials, RegistryOptions, pull, push
from linuxkit.oci.registry.client import Client
from linuxkit.oci.registry.errors import AuthError
from linuxkit.oci.registry.push import push_blob

pytestmark = pytest.mark.integration
OPENSSL = shutil.which("openssl")
USER, PASSWORD = "alice", "wonderland"
SERVICE, ISSUER = "test-registry", "test-token-issuer"
ALICE = Credentials(USER, PASSWORD)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    """Issues tokens for the scopes asked (all actions to alice; nothing to anyone else)."""

    key: Path
    cert_der: bytes
    refresh_tokens: set[str] = field(default_factory=set)
    scopes: list[list[str]] = field(default_factory=list)  # one entry per token issued
    refused: int = 0
    url: str = ""

    def sign(self, scopes: list[str]) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        now = int(time.time())
        access = []
        for item in scopes:
            kind, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        claims = {
            "iss": ISSUER,
            "sub": USER,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        assert OPENSSL is not None
        signature = subprocess.run(
            [OPENSSL, "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(),
            capture_output=True,
            check=True,
        ).stdout
        return f"{signing_input}.{b64url(signature)}"

    def answer(self, scopes: list[str], service: str | None) -> tuple[int, bytes]:
        assert service == SERVICE
        self.scopes.append(sorted(scopes))
        return 200, json.dumps({"token": self.sign(scopes), "expires_in": 300}).encode()


def start_token_server(server: TokenServer) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            if self.headers.get("Authorization") != expected:
                server.refused += 1
                self.reply(401, b'{"details":"bad credentials"}')
                return
            self.reply(*server.answer(query.get("scope", []), (query.get("service") or [None])[0]))

        def do_POST(self) -> None:  # the OAuth2 refresh-token grant (identity tokens)
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            if form.get("grant_type") != ["refresh_token"] or form.get("refresh_token", [""])[0] not in (
                server.refresh_tokens
            ):
                server.refused += 1
                self.reply(401, b"{}")
                return
            scopes = form.get("scope", [""])[0].split()
            status, body = server.answer(scopes, form.get("service", [None])[0])
            token = json.loads(body)["token"]
            self.reply(status, json.dumps({"access_token": token}).encode())

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}/token"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@dataclass
class TokenRegistry:
    host: str
    tokens: TokenServer

    def ref(self, name: str) -> str:
        return f"{self.host}/{name}"


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[TokenRegistry]:
    if REGISTRY_BIN is None:
        pytest.skip("docker-registry not installed (apt-get install docker-registry)")
    if OPENSSL is None:
        pytest.skip("openssl not installed (apt-get install openssl)")
    key, cert = tmp_path / "token.key", tmp_path / "token.pem"
    subprocess.run(
        [
            OPENSSL,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=linuxkit test token issuer",
        ],
        check=True,
        capture_output=True,
    )
    der = subprocess.run([OPENSSL, "x509", "-in", str(cert), "-outform", "DER"], check=True, capture_output=True).stdout
    tokens = TokenServer(key, der)
    httpd = start_token_server(tokens)
    auth = (
        f"auth:\n  token:\n    realm: {tokens.url}\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
        f"    rootcertbundle: {cert}\n"
    )
    try:
        with serve_registry(tmp_path, auth, ready_status=401) as host:
            yield TokenRegistry(host, tokens)
    finally:
        httpd.shutdown()
        httpd.server_close()


def with_creds(reg: TokenRegistry, creds: Credentials) -> RegistryOptions:
    return replace(NO_SLEEP, credentials={reg.host: creds})


def test_push_and_pull_with_token_scopes(token_registry: TokenRegistry, tmp_path: Path) -> None:
    reg = token_registry
    opts = with_creds(reg, ALICE)
    src = single(tmp_path)
    pushed = push(src, "example/app:1", reg.ref("team/app:1"), options=opts)
    assert ["repository:team/app:pull,push"] in reg.tokens.scopes
    specs = [
        f.ImageSpec("docker.io/example/multi:2", [[f.file("arch", "amd64")]], arch="amd64"),
        f.ImageSpec("docker.io/example/multi:2", [[f.file("arch", "arm64")]], arch="arm64"),
    ]
    multi = make_cache(tmp_path / "multi", specs, multiarch=True)
    index = push(multi, "example/multi:2", reg.ref("other/multi:2"), options=opts)
    assert ["repository:other/multi:pull,push"] in reg.tokens.scopes
    reg.tokens.scopes.clear()
    dst = Cache(tmp_path / "dst")
    assert pull(dst, reg.ref("team/app:1"), options=opts).digest == pushed.digest
    assert pull(dst, reg.ref("other/multi:2"), [ARM64], options=opts).digest == index.digest
    # one pull token per repository (the parallel blob fetches share it)
    assert reg.tokens.scopes == [["repository:team/app:pull"], ["repository:other/multi:pull"]]
    image = dst.resolve(reg.ref("other/multi:2"), ARM64)
    assert image is not None
    image.verify()
    # the pull source is remembered: pushing to another repository mounts the blobs from it
    reg.tokens.scopes.clear()
    push(dst, reg.ref("team/app:1"), reg.ref("team/copy:1"), options=opts)
    assert ["repository:team/app:pull", "repository:team/copy:pull,push"] in reg.tokens.scopes
    got = pull(Cache(tmp_path / "copy"), reg.ref("team/copy:1"), options=opts)
    assert got.digest == pushed.digest


def test_cross_repository_mount_and_fallback(token_registry: TokenRegistry, tmp_path: Path) -> None:
    reg = token_registry
    opts = with_creds(reg, ALICE)
    src = single(tmp_path)
    push(src, "example/app:1", reg.ref("a/app:1"), options=opts)
    image = src.resolve("example/app:1", AMD64)
    assert image is not None
    layer = image.layers[1]
    path = src.layout.blob_path(layer.digest)
    with Client(reg.host, opts, "test") as client:
        assert push_blob(client, "b/app", layer.digest, path, ["a/app"]) == "mounted"
        assert push_blob(client, "b/app", layer.digest, path, ["a/app"]) == "present"
        # a source that does not have the blob: the upload the registry opened instead is used
        other = image.layers[0]
        assert push_blob(client, "c/app", other.digest, src.layout.blob_path(other.digest), ["b/app"]) == "uploaded"
    status, _, _ = plainhttp.request("GET", f"http://{reg.host}/v2/b/app/blobs/{layer.digest}")
    assert status == 401  # sanity: the registry really wants tokens


def test_wrong_password_is_refused_clearly(token_registry: TokenRegistry, tmp_path: Path) -> None:
    reg = token_registry
    src = single(tmp_path)
    push(src, "example/app:1", reg.ref("app:1"), options=with_creds(reg, ALICE))
    with pytest.raises(
        AuthError, match=r"pulling 127\.0\.0\.1:\d+/app:1: the token server .* refused the credentials of alice"
    ) as err:
        pull(Cache(tmp_path / "d"), reg.ref("app:1"), options=with_creds(reg, Credentials(USER, "guess")))
    assert err.value.hint is not None and reg.host in err.value.hint
    with pytest.raises(AuthError, match="refused anonymous access"):
        pull(Cache(tmp_path / "d"), reg.ref("app:1"), options=NO_SLEEP)
    assert reg.tokens.refused == 2
    assert Cache(tmp_path / "d").find(reg.ref("app:1")) is None


def write_helper(bin_dir: Path, name: str, answers: dict[str, dict[str, str]], log: Path) -> None:
    """A ``docker-credential-NAME`` speaking the helper protocol from ``answers`` (server → JSON)."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / f"docker-credential-{name}"
    script.write_text(
        "#!/usr/bin/env python3\nimport json, sys\n"
        f"answers = {json.dumps(answers)!r}\n"
        "server = sys.stdin.read().strip()\n"
        f"open({str(log)!r}, 'a').write(sys.argv[1] + ' ' + server + '\\n')\n"
        "if sys.argv[1] != 'get' or server not in json.loads(answers):\n"
        "    print('credentials not found in native keychain'); sys.exit(1)\n"
        "print(json.dumps(json.loads(answers)[server]))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_docker_config_helpers_and_identity_tokens(
    token_registry: TokenRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = token_registry
    src = single(tmp_path)
    push(src, "example/app:1", reg.ref("app:1"), options=with_creds(reg, ALICE))
    bin_dir, calls = tmp_path / "bin", tmp_path / "helper-calls"
    write_helper(bin_dir, "fake", {reg.host: {"Username": USER, "Secret": PASSWORD}}, calls)
    write_helper(bin_dir, "empty", {}, calls)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    config = tmp_path / "config.json"
    wrong = {"auths": {reg.host: {"auth": base64.b64encode(b"alice:nope").decode()}}}

    def pull_with(cfg: dict[str, object], where: str) -> str:
        config.write_text(json.dumps(cfg))
        opts = replace(NO_SLEEP, use_docker_config=True, docker_config=config)
        return pull(Cache(tmp_path / where), reg.ref("app:1"), options=opts).digest

    digest = push(src, "example/app:1", reg.ref("app:1"), options=with_creds(reg, ALICE)).digest
    assert pull_with({**wrong, "credHelpers": {reg.host: "fake"}}, "h1") == digest
    assert pull_with({**wrong, "credsStore": "fake"}, "h2") == digest
    assert calls.read_text().splitlines() == [f"get {reg.host}", f"get {reg.host}"]
    # a helper without an entry falls back to auths (here wrong: refused)
    with pytest.raises(AuthError, match="refused the credentials of alice"):
        pull_with({**wrong, "credsStore": "empty"}, "h3")
    # an identity token is exchanged with the refresh-token grant
    reg.tokens.refresh_tokens.add("refresh-me")
    assert pull_with({"auths": {reg.host: {"auth": "", "identitytoken": "refresh-me"}}}, "h4") == digest
    with pytest.raises(AuthError, match="refused the identity token"):
        pull_with({"auths": {reg.host: {"identitytoken": "stale"}}}, "h5")


def test_registry_token_is_sent_as_is(token_registry: TokenRegistry, tmp_path: Path) -> None:
    reg = token_registry
    src = single(tmp_path)
    digest = push(src, "example/app:1", reg.ref("app:1"), options=with_creds(reg, ALICE)).digest
    token = reg.tokens.sign(["repository:app:pull"])
    issued = len(reg.tokens.scopes)
    opts = with_creds(reg, Credentials("", token, registry_token=True))
    assert pull(Cache(tmp_path / "t"), reg.ref("app:1"), options=opts).digest == digest
    assert len(reg.tokens.scopes) == issued  # the token server was not asked
    with pytest.raises(AuthError, match="refused access with the given registry token to other"):
        pull(Cache(tmp_path / "t"), reg.ref("other:1"), options=opts)


def test_cli_registry_creds_flag(token_registry: TokenRegistry, tmp_path: Path, linuxkit: object) -> None:
    reg = token_registry
    src = single(tmp_path)
    push(src, "example/app:1", reg.ref("app:1"), options=with_creds(reg, ALICE))
    run = linuxkit  # the conftest fixture: the real command line in a subprocess
    env = {"DOCKER_CONFIG": str(tmp_path / "no-docker-config")}
    ok = run("cache", "pull", "--registry-creds", f"{reg.host}={USER}:{PASSWORD}", reg.ref("app:1"), env=env)  # type: ignore[operator]
    assert ok.returncode == 0
    bad = run("cache", "pull", "--registry-creds", f"{reg.host}={USER}:x", reg.ref("app:1"), check=False, env=env)  # type: ignore[operator]
    assert bad.returncode == 1 and b"refused the credentials of alice" in bad.stderr
    assert PASSWORD.encode() not in bad.stderr
    malformed = run("cache", "pull", "--registry-creds", f"{reg.host}=:pw", reg.ref("app:1"), check=False, env=env)  # type: ignore[operator]
    assert malformed.returncode == 2 and b"user name is empty" in malformed.stderr
