"""The Scaleway API calls ``push scaleway`` and ``run scaleway`` make, as the published references describe them:
Block Storage API v1 (``/block/v1/zones/{zone}/snapshots/import-from-object-storage``, snapshots, volumes) and
Instance API v1 (``/instance/v1/zones/{zone}/images``, ``servers``, ``servers/{id}/action``,
``servers/{id}/user_data/{key}``), www.scaleway.com/en/developers/api/.

Plain HTTPS through :class:`linuxkit.http.client.HttpClient` (no SDK: these few JSON calls do not need one, and
the ``scaleway`` SDK would add seconds of imports). The secret key goes in ``X-Auth-Token``. The base URL is
``$SCW_API_URL`` (the Scaleway CLI's and SDKs' own override) or ``https://api.scaleway.com``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from .. import log
from ..errors import LinuxKitError, UserError
from ..http.client import HttpClient

API_URL_ENV = "SCW_API_URL"
DEFAULT_API_URL = "https://api.scaleway.com"

Json = dict[str, Any]

#: upstream's zone names (``par1``, the default there) → today's
OLD_ZONES = {"par1": "fr-par-1", "ams1": "nl-ams-1"}
#: snapshot states that will not become ``available``
FAILED_SNAPSHOT = frozenset({"error", "deleted", "deleting", "locked"})


class ScalewayError(LinuxKitError):
    """A call answered an error; ``status`` is its HTTP status."""

    def __init__(self, message: str, *, status: int = 0, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


def api_url() -> str:
    return (os.environ.get(API_URL_ENV, "") or DEFAULT_API_URL).rstrip("/")


def zone_name(zone: str) -> str:
    """Today's name of a zone (``par1`` → ``fr-par-1``)."""
    return OLD_ZONES.get(zone, zone)


def region_of(zone: str) -> str:
    """The region of a zone: ``fr-par-1`` → ``fr-par``."""
    region, sep, number = zone.rpartition("-")
    if not sep or not number.isdigit() or not region:
        raise UserError(f"{zone!r} is not a Scaleway zone", hint="zones are like fr-par-1, nl-ams-1, pl-waw-2")
    return region


# --- request bodies -------------------------------------------------------------------------------------------


def import_snapshot_body(bucket: str, key: str, name: str, project: str) -> Json:
    """Block API ``ImportSnapshotFromObjectStorage``: a snapshot made from a QCOW2 object."""
    return {"bucket": bucket, "key": key, "name": name, "project_id": project, "tags": ["linuxkit"]}


def image_body(name: str, snapshot_id: str, arch: str, project: str) -> Json:
    """Instance API ``CreateImage``: an image whose root volume is the snapshot."""
    return {"name": name, "root_volume": snapshot_id, "arch": arch, "project": project, "tags": ["linuxkit"]}


def server_body(name: str, commercial_type: str, image_id: str, project: str) -> Json:
    """Instance API ``CreateServer``: a server from an image, with a public address (for the console and ssh)."""
    return {
        "name": name,
        "commercial_type": commercial_type,
        "image": image_id,
        "project": project,
        "dynamic_ip_required": True,
        "tags": ["linuxkit"],
    }


def _message(payload: Any, status: int) -> str:
    if isinstance(payload, Mapping):
        text = payload.get("message") or payload.get("type") or ""
        details = payload.get("details") or payload.get("fields")
        if details:
            text = f"{text} ({json.dumps(details, sort_keys=True)})"
        if text:
            return f"HTTP {status}: {text}"
    return f"HTTP {status}"


class ScalewayApi:
    """The calls, for one zone. ``http`` may be replaced (tests)."""

    def __init__(self, secret_key: str, zone: str, *, http: HttpClient | None = None) -> None:
        self.secret_key = secret_key
        self.zone = zone
        self.base = api_url()
        self.http = http if http is not None else HttpClient(timeout=120)
        self.poll_interval = 2.0
        self.sleep: Callable[[float], None] = time.sleep

    def call(
        self,
        method: str,
        path: str,
        body: Json | None = None,
        *,
        query: Mapping[str, str] | None = None,
        text: str | None = None,
    ) -> Any:
        """``method path`` with a JSON (or text) body; the decoded JSON answer (None when empty)."""
        url = self.base + path + (f"?{urlencode(query)}" if query else "")
        headers = {"X-Auth-Token": self.secret_key, "Accept": "application/json"}
        data: bytes | None = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        elif text is not None:
            headers["Content-Type"] = "text/plain"
            data = text.encode()
        log.debug(f"scaleway: {method} {path}")
        with self.http.request(method, url, headers=headers, body=(lambda: data) if data is not None else None) as r:
            raw = r.read()
            status = r.status_code
        payload: Any = None
        if raw:
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = {"message": raw.decode(errors="replace")[:200]}
        if status >= 400:
            message = f"{method} {path}: {_message(payload, status)}"
            if status in (401, 403):
                raise UserError(
                    f"Scaleway refused the credentials: {message}",
                    hint="check --secret-key/$SCW_SECRET_KEY and the key's permissions on the project",
                )
            raise ScalewayError(message, status=status)
        return payload

    def _zone(self, api: str) -> str:
        return f"/{api}/v1/zones/{quote(self.zone, safe='')}"

    # --- Block Storage API: snapshots and volumes

    def import_snapshot(self, bucket: str, key: str, name: str, project: str) -> Json:
        path = self._zone("block") + "/snapshots/import-from-object-storage"
        snapshot: Json = self.call("POST", path, import_snapshot_body(bucket, key, name, project))
        return snapshot

    def get_snapshot(self, snapshot_id: str) -> Json:
        snapshot: Json = self.call("GET", self._zone("block") + f"/snapshots/{quote(snapshot_id, safe='')}")
        return snapshot

    def delete_snapshot(self, snapshot_id: str) -> None:
        self.call("DELETE", self._zone("block") + f"/snapshots/{quote(snapshot_id, safe='')}")

    def wait_snapshot(self, snapshot_id: str, timeout: float = 3600) -> Json:
        """Poll the snapshot until it is ``available``; an error state or the timeout raises."""
        deadline = time.monotonic() + timeout
        while True:
            snapshot = self.get_snapshot(snapshot_id)
            status = snapshot.get("status", "")
            if status == "available":
                return snapshot
            if status in FAILED_SNAPSHOT:
                raise ScalewayError(f"the snapshot {snapshot_id} is {status}: the import failed")
            if time.monotonic() > deadline:
                raise ScalewayError(f"the snapshot {snapshot_id} is still {status} after {timeout:.0f}s")
            self.sleep(self.poll_interval)

    def delete_block_volume(self, volume_id: str) -> None:
        self.call("DELETE", self._zone("block") + f"/volumes/{quote(volume_id, safe='')}")

    # --- Instance API: images and servers

    def create_image(self, name: str, snapshot_id: str, arch: str, project: str) -> Json:
        image: Json = self.call(
            "POST", self._zone("instance") + "/images", image_body(name, snapshot_id, arch, project)
        )["image"]
        return image

    def find_images(self, name: str, project: str) -> list[Json]:
        """The project's images named exactly ``name`` (the API's ``name`` filter also matches parts)."""
        query = {"name": name, "per_page": "100"}
        if project:
            query["project"] = project
        images = self.call("GET", self._zone("instance") + "/images", query=query).get("images", [])
        return [i for i in images if i.get("name") == name]

    def create_server(self, name: str, commercial_type: str, image_id: str, project: str) -> Json:
        body = server_body(name, commercial_type, image_id, project)
        server: Json = self.call("POST", self._zone("instance") + "/servers", body)["server"]
        return server

    def get_server(self, server_id: str) -> Json:
        server: Json = self.call("GET", self._zone("instance") + f"/servers/{quote(server_id, safe='')}")["server"]
        return server

    def set_user_data(self, server_id: str, data: str, key: str = "cloud-init") -> None:
        path = self._zone("instance") + f"/servers/{quote(server_id, safe='')}/user_data/{quote(key, safe='')}"
        self.call("PATCH", path, text=data)

    def action(self, server_id: str, action: str) -> None:
        """``poweron``, ``poweroff``, ``terminate`` (stops and deletes the server with its volumes and IP)…"""
        self.call("POST", self._zone("instance") + f"/servers/{quote(server_id, safe='')}/action", {"action": action})

    def delete_server(self, server_id: str) -> None:
        self.call("DELETE", self._zone("instance") + f"/servers/{quote(server_id, safe='')}")

    def delete_instance_volume(self, volume_id: str) -> None:
        self.call("DELETE", self._zone("instance") + f"/volumes/{quote(volume_id, safe='')}")
