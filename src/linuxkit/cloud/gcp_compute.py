"""The Compute Engine REST calls ``push gcp`` and ``run gcp`` make (API v1,
cloud.google.com/compute/docs/reference/rest/v1), their request bodies, and waiting for their operations.

Bodies are built by pure functions (tested against the API reference); :class:`Compute` sends them through an
authorised HTTP session (google-auth's ``AuthorizedSession``) to a base URL that gcloud's own override variable
``CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE`` can change (a private endpoint, or a local server in tests).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .. import log
from ..errors import LinuxKitError

ENDPOINT_ENV = "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE"
DEFAULT_ENDPOINT = "https://compute.googleapis.com/compute/v1/"

UEFI_COMPATIBLE = "UEFI_COMPATIBLE"
#: the licence that enables nested virtualisation (VMX) on an image, as upstream names it
VMX_LICENSE = "projects/vm-options/global/licenses/enable-vmx"

Json = dict[str, Any]


class ComputeError(LinuxKitError):
    """A Compute Engine call or operation failed; ``status`` is the HTTP status (0 for a failed operation)."""

    def __init__(self, message: str, *, status: int = 0, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


def endpoint() -> str:
    """The Compute API's base URL, ending in ``/`` (``.../compute/v1/``)."""
    base = os.environ.get(ENDPOINT_ENV, "") or DEFAULT_ENDPOINT
    return base if base.endswith("/") else base + "/"


# --- request bodies (the API reference's Image, Disk and Instance resources) ------------------------------------


def image_body(name: str, source_url: str, *, family: str = "", nested_virt: bool = False, uefi: bool = False) -> Json:
    """An ``images.insert`` body: the image made from a ``.tar.gz`` in Cloud Storage (``rawDisk.source``)."""
    body: Json = {"name": name, "rawDisk": {"source": source_url}}
    if family:
        body["family"] = family
    if nested_virt:
        body["licenses"] = [VMX_LICENSE]
    if uefi:
        body["guestOsFeatures"] = [{"type": UEFI_COMPATIBLE}]
    return body


def disk_body(name: str, size_gb: int, *, vtpm: bool = False) -> Json:
    """A ``disks.insert`` body: an empty persistent disk (UEFI compatible when the instance has a vTPM)."""
    body: Json = {"name": name, "sizeGb": str(size_gb)}
    if vtpm:
        body["guestOsFeatures"] = [{"type": UEFI_COMPATIBLE}]
    return body


def size_gb(size_mb: int) -> int:
    """Upstream's rounding of a ``--disk`` size to whole gigabytes: at least 1, rounded up."""
    return max(1, -(-size_mb // 1024))


def instance_body(
    name: str,
    image: str,
    zone: str,
    machine: str,
    *,
    disks: Sequence[str] = (),
    user_data: str | None = None,
    nested_virt: bool = False,
    vtpm: bool = False,
) -> Json:
    """An ``instances.insert`` body as upstream's: boot disk from the image (deleted with the instance), the extra
    disks (``zones/Z/disks/D``), the default network with an external address, the serial port enabled and the
    user data in the ``user-data`` metadata key."""
    attached: list[Json] = [
        {"autoDelete": True, "boot": True, "initializeParams": {"sourceImage": f"global/images/{image}"}}
    ]
    attached += [{"autoDelete": True, "boot": False, "source": f"zones/{zone}/disks/{disk}"} for disk in disks]
    items: list[Json] = [{"key": "serial-port-enable", "value": "1"}]
    if user_data is not None:
        items.append({"key": "user-data", "value": user_data})
    body: Json = {
        "name": name,
        "machineType": f"zones/{zone}/machineTypes/{machine}",
        "disks": attached,
        "networkInterfaces": [
            {"network": "global/networks/default", "accessConfigs": [{"type": "ONE_TO_ONE_NAT"}]},
        ],
        "metadata": {"items": items},
    }
    if nested_virt:
        body["minCpuPlatform"] = "Intel Haswell"
    if vtpm:
        body["shieldedInstanceConfig"] = {"enableVtpm": True}
    return body


def image_features(image: Mapping[str, Any]) -> tuple[bool, bool]:
    """Whether an Image resource is UEFI compatible, and whether it carries the nested virtualisation licence
    (which the API returns as a full URL: compared by its end, as upstream)."""
    uefi = any(isinstance(f, Mapping) and f.get("type") == UEFI_COMPATIBLE for f in image.get("guestOsFeatures", ()))
    vmx = any(str(lic).endswith(VMX_LICENSE) for lic in image.get("licenses", ()))
    return uefi, vmx


# --- the client -------------------------------------------------------------------------------------------------


def _error_message(payload: Any) -> str:
    """The message of an API error (``{"error": {"code", "message", "errors": [...]}}``) or of an operation's
    ``error`` (``{"errors": [{"code", "message"}]}``)."""
    if isinstance(payload, Mapping):
        err = payload.get("error", payload)
        if isinstance(err, Mapping):
            if err.get("message"):
                return str(err["message"])
            parts = [
                f"{e.get('code', '')}: {e.get('message', '')}" for e in err.get("errors", ()) if isinstance(e, Mapping)
            ]
            if parts:
                return "; ".join(parts)
    return str(payload)[:500]


@dataclass
class Compute:
    """Compute Engine calls for one project. ``http`` is a ``requests``-like session that adds the credentials."""

    http: Any
    project: str
    base: str = DEFAULT_ENDPOINT
    poll_interval: float = 1.0
    timeout: float = 900.0
    sleep: Callable[[float], None] = time.sleep

    def url(self, *parts: str) -> str:
        return self.base + "/".join(quote(p, safe="") for p in ("projects", self.project, *parts))

    def call(self, method: str, parts: Sequence[str], body: Json | None = None, params: Json | None = None) -> Json:
        what = f"{method} {'/'.join(parts)}"
        try:
            resp = self.http.request(method, self.url(*parts), json=body, params=params, timeout=60)
        except OSError as exc:  # requests' connection errors are OSErrors
            raise ComputeError(f"Compute Engine {what}: {exc}") from exc
        if resp.status_code >= 400:
            try:
                payload: Any = resp.json()
            except ValueError:
                payload = resp.text
            raise ComputeError(
                f"Compute Engine {what}: HTTP {resp.status_code}: {_error_message(payload)}", status=resp.status_code
            )
        if not resp.content:
            return {}
        result: Json = resp.json()
        return result

    def wait(self, operation: Json, zone: str = "") -> Json:
        """Poll a global (or zonal) operation until it is ``DONE``; its ``error`` becomes a :class:`ComputeError`."""
        parts = ("zones", zone, "operations") if zone else ("global", "operations")
        deadline = time.monotonic() + self.timeout
        while operation.get("status") != "DONE":
            if time.monotonic() > deadline:
                raise ComputeError(f"operation {operation.get('name')} not done after {self.timeout:.0f}s")
            self.sleep(self.poll_interval)
            operation = self.call("GET", (*parts, str(operation["name"])))
        if operation.get("error"):
            raise ComputeError(f"operation {operation.get('name')} failed: {_error_message(operation['error'])}")
        return operation

    # images (global)
    def get_image(self, name: str) -> Json:
        return self.call("GET", ("global", "images", name))

    def insert_image(self, body: Json) -> Json:
        return self.wait(self.call("POST", ("global", "images"), body))

    def delete_image(self, name: str) -> bool:
        """Delete an image and wait; False when there was none."""
        try:
            op = self.call("DELETE", ("global", "images", name))
        except ComputeError as exc:
            if exc.status == 404:
                return False
            raise
        self.wait(op)
        return True

    # disks and instances (zonal)
    def insert_disk(self, zone: str, body: Json) -> Json:
        return self.wait(self.call("POST", ("zones", zone, "disks"), body), zone)

    def delete_disk(self, zone: str, name: str) -> bool:
        try:
            op = self.call("DELETE", ("zones", zone, "disks", name))
        except ComputeError as exc:
            if exc.status == 404:
                return False
            raise
        self.wait(op, zone)
        return True

    def insert_instance(self, zone: str, body: Json) -> Json:
        return self.wait(self.call("POST", ("zones", zone, "instances"), body), zone)

    def get_instance(self, zone: str, name: str) -> Json:
        return self.call("GET", ("zones", zone, "instances", name))

    def delete_instance(self, zone: str, name: str) -> bool:
        """Delete an instance (its auto-delete disks go with it) and wait; False when there was none."""
        try:
            op = self.call("DELETE", ("zones", zone, "instances", name))
        except ComputeError as exc:
            if exc.status == 404:
                return False
            raise
        log.info(f"deleting instance {name}")
        self.wait(op, zone)
        return True

    def serial_output(self, zone: str, name: str, start: int) -> Json:
        return self.call("GET", ("zones", zone, "instances", name, "serialPort"), params={"port": 1, "start": start})
