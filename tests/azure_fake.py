"""A recording stand-in for Azure Resource Manager in the ``push azure``/``run azure`` tests.

There is no Resource Manager emulator (Azurite is storage only). This HTTPS server on loopback (a throw-away
self-signed certificate: the Azure SDK sends bearer tokens over TLS only) records every request and answers as
the Azure REST API reference describes (learn.microsoft.com/rest/api: resources/resource-groups,
storagerp/storage-accounts (get, list, listKeys), virtualnetwork (virtual-networks, network-security-groups,
public-ip-addresses, network-interfaces), compute (images, disks, virtual-machines,
retrieveBootDiagnosticsData)): a ``PUT`` answers 201 with the resource, its ``id``, ``name`` and
``properties.provisioningState`` ``Succeeded``, a ``GET`` the stored resource or 404 with
``{"error": {"code": "ResourceNotFound", "message"}}``, a ``DELETE`` 200 and the resource gone.
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.recording_api import Fake, Request, serve

TOKEN = "eyJ0eXAiOiJKV1QifQ.fake.token"
CLIENT_SECRET = "s3cret"
CONSOLE = "Welcome to LinuxKit\nlinuxkit login: "


@dataclass
class Call:
    method: str
    path: str
    api_version: str
    body: Any
    authorization: str


@dataclass
class FakeArm(Fake):
    calls: list[Call] = field(default_factory=list)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: storage accounts the subscription lists, beyond those PUT
    accounts: list[dict[str, Any]] = field(default_factory=list)
    #: the blob endpoint and key of the storage accounts made (default: Azure's form and a dummy key)
    blob_endpoint: str = ""
    account_key: str = "a2V5MQ=="
    #: the scopes tokens were asked for
    token_scopes: list[str] = field(default_factory=list)
    #: resources being created: how many more GETs answer 404
    pending: dict[str, int] = field(default_factory=dict)
    #: (method, path suffix) → HTTP status to answer instead (an injected failure)
    fail: dict[tuple[str, str], int] = field(default_factory=dict)

    def answer(self, req: Request) -> tuple[int, Any, dict[str, str]]:
        """The recording server's handler: the call recorded (but tokens, operations and console logs), answered."""
        body = req.body
        if req.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            body = {k: v[0] for k, v in body.items()}
        if not req.path.startswith(("/console/", "/operations/")) and "/v2.0" not in req.path:
            version = req.query.get("api-version", [""])[0]
            self.calls.append(Call(req.method, req.path, version, body, req.headers.get("authorization", "")))
        return self.respond(req.method, req.path, body)

    def put_calls(self) -> list[Call]:
        return [c for c in self.calls if c.method == "PUT"]

    def _key(self, path: str) -> str:
        return path.rstrip("/").lower()

    def respond(self, method: str, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        """The status, JSON (or text) and headers of the answer."""
        status, answer = self._answer(method, path, body)
        if method == "PUT" and status == 201 and "/Microsoft.Storage/storageAccounts/" in path:
            # Storage Accounts - Create answers 202 Accepted without a body; a GET shows it once made
            self.pending[path.lower()] = 1
            return 202, None, {"Location": f"{self.url}/operations/{len(self.calls)}"}
        if method == "GET" and self.pending.get(path.lower(), 0) > 0:
            self.pending[path.lower()] -= 1
            return 404, {"error": {"code": "ResourceNotFound", "message": f"{path} is being created"}}, {}
        if method == "PUT" and status == 201 and "/Microsoft.Compute/disks/" in path:
            # Disks - Create Or Update answers 200 or 202 Accepted with an asynchronous operation to poll
            operation = f"{self.url}/operations/{len(self.calls)}"
            return 202, None, {"Azure-AsyncOperation": operation, "Location": operation}
        return status, answer, {}

    def _answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        for (m, suffix), status in self.fail.items():
            if m == method and path.endswith(suffix):
                return status, {"error": {"code": "InjectedFailure", "message": f"{method} {suffix} refused"}}
        key = self._key(path)
        if path.startswith("/console/"):
            return 200, CONSOLE
        if path.endswith("/v2.0/.well-known/openid-configuration"):
            tenant = path.split("/")[1]
            return 200, {
                "issuer": f"{self.url}/{tenant}/v2.0",
                "authorization_endpoint": f"{self.url}/{tenant}/oauth2/v2.0/authorize",
                "token_endpoint": f"{self.url}/{tenant}/oauth2/v2.0/token",
            }
        if path.endswith("/oauth2/v2.0/token"):
            # the client credentials grant
            # (learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow)
            ok = body.get("grant_type") == "client_credentials" and body.get("client_secret") == CLIENT_SECRET
            if not ok:
                return 401, {"error": "invalid_client", "error_description": "wrong secret"}
            self.token_scopes.append(str(body.get("scope")))
            return 200, {"token_type": "Bearer", "expires_in": 3600, "access_token": TOKEN}
        if path.startswith("/operations/"):
            return 200, {"status": "Succeeded"}
        if method == "PUT":
            resource = copy.deepcopy(body) if isinstance(body, dict) else {}
            resource["id"] = path
            resource["name"] = path.rstrip("/").rsplit("/", 1)[-1]
            props = resource.setdefault("properties", {})
            props["provisioningState"] = "Succeeded"
            for subnet in props.get("subnets", []):
                subnet["id"] = f"{path}/subnets/{subnet['name']}"
            if "/publicIPAddresses/" in path:
                props["ipAddress"] = "203.0.113.7"
                label = props.get("dnsSettings", {}).get("domainNameLabel")
                if label:
                    props["dnsSettings"]["fqdn"] = f"{label}.{body.get('location')}.cloudapp.azure.com"
            if "/storageAccounts/" in path:
                blob = self.blob_endpoint or f"https://{resource['name']}.blob.core.windows.net/"
                props["primaryEndpoints"] = {"blob": blob}
            self.resources[key] = resource
            return 201, resource
        if method == "GET":
            if path.endswith("/providers/Microsoft.Storage/storageAccounts"):
                made = [r for k, r in self.resources.items() if "/storageaccounts/" in k]
                return 200, {"value": made + self.accounts}
            if key in self.resources:
                return 200, self.resources[key]
            return 404, {"error": {"code": "ResourceNotFound", "message": f"{path} was not found"}}
        if method == "DELETE":
            self.resources.pop(key, None)
            return 200, None
        if method == "POST" and path.endswith("/listKeys"):
            return 200, {"keys": [{"keyName": "key1", "value": self.account_key, "permissions": "FULL"}]}
        if method == "POST" and path.endswith("/retrieveBootDiagnosticsData"):
            vm = path.split("/")[-2]
            return 200, {
                "consoleScreenshotBlobUri": f"{self.url}/console/{vm}.bmp?sig=x",
                "serialConsoleLogBlobUri": f"{self.url}/console/{vm}.log?sig=x",
            }
        return 400, {"error": {"code": "Unexpected", "message": f"{method} {path}"}}


@contextmanager
def fake_arm(workdir: Path) -> Iterator[tuple[FakeArm, Path]]:
    """The fake on a free loopback port with TLS; yields it and its certificate (for REQUESTS_CA_BUNDLE)."""
    cert, key = workdir / "arm.crt", workdir / "arm.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    with serve(FakeArm(), tls=(cert, key)) as fake:
        yield fake, cert


class FakeCredential:
    """A TokenCredential that hands out a fixed token (the fake does not check it; the tests check it is sent)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        self.scopes = scopes
        return AccessToken(TOKEN, 2**31)
