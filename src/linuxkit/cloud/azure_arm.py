"""Azure Resource Manager for ``push/run azure``: the service principal's credentials from the environment (as
upstream), and a small REST client for the resources azure-mgmt-compute does not cover (resource groups,
storage accounts and their keys, virtual networks, public IPs, network security groups, NICs), so that the
``azure`` extra stays azure-storage-blob + azure-identity + azure-mgmt-compute.

Bodies are the JSON of the Azure REST API (learn.microsoft.com/rest/api: resources, storagerp, virtualnetwork);
a ``PUT`` is followed by ``GET`` polling of ``properties.provisioningState`` until it settles, a ``DELETE`` by
``GET`` polling until the resource is gone (404): both work for every ARM resource, synchronous or not.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from azure.core import PipelineClient
from azure.core.credentials import TokenCredential
from azure.core.pipeline.policies import (
    BearerTokenCredentialPolicy,
    HeadersPolicy,
    RetryPolicy,
    UserAgentPolicy,
)
from azure.core.rest import HttpRequest, HttpResponse

from ..errors import LinuxKitError, UserError

#: the service principal upstream reads (``getEnvVarOrExit``)
CREDENTIAL_VARS = ("AZURE_SUBSCRIPTION_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")
#: Resource Manager's endpoint; AZURE_RESOURCE_MANAGER_ENDPOINT overrides it (sovereign clouds, Azure Stack)
DEFAULT_ENDPOINT = "https://management.azure.com"

API_RESOURCES = "2022-09-01"
API_STORAGE = "2023-05-01"
API_NETWORK = "2024-05-01"

_TERMINAL = {"Succeeded", "Failed", "Canceled"}
_PENDING: dict[str, Any] = {"properties": {"provisioningState": "Accepted"}}


@dataclass(frozen=True)
class Session:
    """Who talks to Resource Manager, and where."""

    credential: TokenCredential
    subscription: str
    endpoint: str


def session_from_env(verb: str, env: Mapping[str, str] | None = None) -> Session:
    """The service principal of AZURE_SUBSCRIPTION_ID/TENANT_ID/CLIENT_ID/CLIENT_SECRET, or a
    :class:`UserError` naming the ones not set."""
    env = os.environ if env is None else env
    missing = [name for name in CREDENTIAL_VARS if not env.get(name)]
    if missing:
        raise UserError(
            f"linuxkit {verb} needs an Azure service principal: {', '.join(missing)} not set "
            f"(looked at {', '.join(CREDENTIAL_VARS)} in the environment)",
            hint="create one with `az ad sp create-for-rbac --role Contributor --scopes /subscriptions/ID` and "
            "export its appId as AZURE_CLIENT_ID, password as AZURE_CLIENT_SECRET, tenant as AZURE_TENANT_ID",
        )
    from azure.identity import ClientSecretCredential

    authority = env.get("AZURE_AUTHORITY_HOST", "")
    credential = ClientSecretCredential(
        env["AZURE_TENANT_ID"],
        env["AZURE_CLIENT_ID"],
        env["AZURE_CLIENT_SECRET"],
        # a login endpoint of its own (Azure Stack, a private one) is not known to Entra's instance discovery
        **({"authority": authority, "disable_instance_discovery": True} if authority else {}),
    )
    endpoint = env.get("AZURE_RESOURCE_MANAGER_ENDPOINT") or DEFAULT_ENDPOINT
    return Session(credential, env["AZURE_SUBSCRIPTION_ID"], endpoint.rstrip("/"))


def scope(endpoint: str) -> str:
    return f"{endpoint.rstrip('/')}/.default"


class ArmError(LinuxKitError):
    """Resource Manager answered an error."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Arm:
    """``PUT``/``GET``/``POST``/``DELETE`` of ARM resources by path, with polling."""

    def __init__(
        self,
        session: Session,
        *,
        poll_interval: float = 2.0,
        timeout: float = 900.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.subscription = session.subscription
        self._endpoint = session.endpoint
        self._poll = poll_interval
        self._timeout = timeout
        self._sleep = sleep
        self._client: PipelineClient[HttpRequest, HttpResponse] = PipelineClient(
            session.endpoint,
            policies=[
                HeadersPolicy({"Accept": "application/json"}),
                UserAgentPolicy("linuxkit-python"),
                RetryPolicy(),
                BearerTokenCredentialPolicy(session.credential, scope(session.endpoint)),
            ],
        )

    def group_path(self, group: str) -> str:
        return f"/subscriptions/{self.subscription}/resourceGroups/{group}"

    def _send(self, method: str, path: str, api_version: str, body: Any = None) -> HttpResponse:
        request = HttpRequest(method, f"{self._endpoint}{path}", params={"api-version": api_version}, json=body)
        response = self._client.send_request(request)
        response.read()
        if response.status_code >= 400:
            raise ArmError(f"{method} {path}: {response.status_code} {_error_text(response)}", response.status_code)
        return response

    def get(self, path: str, api_version: str) -> dict[str, Any] | None:
        """The resource, or None if it does not exist."""
        try:
            return _json(self._send("GET", path, api_version))
        except ArmError as exc:
            if exc.status == 404:
                return None
            raise

    def post(self, path: str, api_version: str, body: Any = None) -> dict[str, Any]:
        return _json(self._send("POST", path, api_version, body))

    def put(self, path: str, api_version: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create or update the resource and wait until its provisioning settles; its final JSON."""
        response = self._send("PUT", path, api_version, dict(body))
        # 202 Accepted (e.g. a storage account) has no body yet: the resource appears when it is made
        resource = _json(response) if response.status_code != 202 else _PENDING
        deadline = time.monotonic() + self._timeout
        while _state(resource) not in _TERMINAL:
            if time.monotonic() > deadline:
                raise LinuxKitError(f"{path} still {_state(resource)} after {self._timeout:.0f}s")
            self._sleep(self._poll)
            resource = self.get(path, api_version) or _PENDING
        if _state(resource) != "Succeeded":
            raise LinuxKitError(f"creating {path} ended {_state(resource)}")
        return resource

    def delete(self, path: str, api_version: str) -> None:
        """Delete the resource and wait until it is gone."""
        try:
            self._send("DELETE", path, api_version)
        except ArmError as exc:
            if exc.status == 404:
                return
            raise
        deadline = time.monotonic() + self._timeout
        while self.get(path, api_version) is not None:
            if time.monotonic() > deadline:
                raise LinuxKitError(f"{path} still exists {self._timeout:.0f}s after it was deleted")
            self._sleep(self._poll)


def _state(resource: Mapping[str, Any]) -> str:
    # resource groups and storage accounts report Succeeded; a resource without the field is there already
    return str(resource.get("properties", {}).get("provisioningState", "Succeeded"))


def _json(response: HttpResponse) -> dict[str, Any]:
    if not response.content:
        return {}
    value = json.loads(response.content)
    return value if isinstance(value, dict) else {"value": value}


def _error_text(response: HttpResponse) -> str:
    try:
        error = json.loads(response.content).get("error", {})
        return f"{error.get('code', '')}: {error.get('message', '')}"
    except (ValueError, AttributeError):
        return response.text()[:500]
