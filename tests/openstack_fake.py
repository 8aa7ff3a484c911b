"""A recording OpenStack for the ``push openstack``/``run openstack`` tests: the Keystone v3, Glance v2 and Nova
calls openstacksdk makes, answered as the published API references describe them
(docs.openstack.org/api-ref/identity/v3: version discovery, ``POST /v3/auth/tokens`` → 201 + ``X-Subject-Token``
and a catalog; api-ref/image/v2: ``POST /v2/images`` → 201 ``queued``, ``PUT /v2/images/{id}/file`` → 204 then
``active``, ``GET``/``DELETE /v2/images/{id}``, ``GET /v2/images?name=``; api-ref/compute: ``GET
/flavors/detail``, ``POST /servers`` → 202, ``GET /servers/{id}`` BUILD then ACTIVE, ``DELETE /servers/{id}``
→ 204). Error bodies are Glance's and Nova's (``{"itemNotFound": {...}}``...).
"""

from __future__ import annotations

import hashlib
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from tests.recording_api import Fake, HangUp, Request, serve

USER, PASSWORD, PROJECT, DOMAIN = "demo", "secret", "demo-project", "Default"
TOKEN = "gAAAAAfake-token"


@dataclass
class OpenStackFake(Fake):
    """``drop_first_upload``: the first image upload's connection is closed half way (Glance puts the image back
    to ``queued``); ``fail_uploads``: uploads are answered 500 and the image is ``killed``; ``server_fails``: the
    server goes to ERROR with a fault."""

    drop_first_upload: bool = False
    fail_uploads: bool = False
    server_fails: bool = False
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    data: dict[str, bytes] = field(default_factory=dict)
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    flavors: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"id": "1", "name": "m1.tiny", "ram": 512, "vcpus": 1, "disk": 1},
            {"id": "2", "name": "m1.small", "ram": 2048, "vcpus": 1, "disk": 20},
        ]
    )
    uploads: int = 0

    def env(self) -> dict[str, str]:
        return {
            "OS_AUTH_URL": self.base + "identity/v3",
            "OS_USERNAME": USER,
            "OS_PASSWORD": PASSWORD,
            "OS_PROJECT_NAME": PROJECT,
            "OS_USER_DOMAIN_NAME": DOMAIN,
            "OS_PROJECT_DOMAIN_NAME": DOMAIN,
            "OS_IDENTITY_API_VERSION": "3",
            "OS_REGION_NAME": "RegionOne",
            "OS_INTERFACE": "public",
        }

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests]

    def answer(self, req: Request) -> tuple[int, Any, dict[str, str]]:
        if req.path.startswith("/identity"):
            return self.identity(req)
        if req.path.startswith("/image"):
            return self.image(req)
        if req.path.startswith("/compute"):
            return self.compute(req)
        return 404, {"message": "not found"}, {}

    # --- Keystone -------------------------------------------------------------------------------------------
    def identity(self, req: Request) -> tuple[int, Any, dict[str, str]]:
        v3 = {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": self.base + "identity/v3/"}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
        }
        if req.method == "GET" and req.path.rstrip("/") == "/identity/v3":
            return 200, {"version": v3}, {}
        if req.method == "GET" and req.path.rstrip("/") == "/identity":
            return 300, {"versions": {"values": [v3]}}, {}
        if req.method == "POST" and req.path == "/identity/v3/auth/tokens":
            auth = req.body["auth"]
            user = auth["identity"]["password"]["user"]
            scope = auth.get("scope", {}).get("project", {})
            if (user.get("name"), user.get("password"), user.get("domain", {}).get("name")) != (
                USER,
                PASSWORD,
                DOMAIN,
            ) or (scope.get("name"), scope.get("domain", {}).get("name")) != (PROJECT, DOMAIN):
                return 401, {"error": {"code": 401, "title": "Unauthorized", "message": "bad credentials"}}, {}
            catalog = [
                {"type": "image", "name": "glance", "id": "img", "endpoints": [self._endpoint("image")]},
                {"type": "compute", "name": "nova", "id": "cmp", "endpoints": [self._endpoint("compute/v2.1")]},
                {"type": "identity", "name": "keystone", "id": "idn", "endpoints": [self._endpoint("identity")]},
            ]
            token = {
                "methods": ["password"],
                "user": {"id": "u1", "name": USER, "domain": {"id": "default", "name": DOMAIN}},
                "project": {"id": "p1", "name": PROJECT, "domain": {"id": "default", "name": DOMAIN}},
                "roles": [{"id": "r1", "name": "member"}],
                "expires_at": "2099-01-01T00:00:00.000000Z",
                "issued_at": "2026-01-01T00:00:00.000000Z",
                "catalog": catalog,
            }
            return 201, {"token": token}, {"X-Subject-Token": TOKEN}
        return 404, {"error": {"code": 404, "message": "not found"}}, {}

    def _endpoint(self, path: str) -> dict[str, str]:
        url = self.base + path
        return {"id": path, "interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": url}

    # --- Glance ---------------------------------------------------------------------------------------------
    def image(self, req: Request) -> tuple[int, Any, dict[str, str]]:
        path = req.path.removeprefix("/image")
        if req.method == "GET" and path in ("", "/"):
            v2 = {"id": "v2.16", "status": "CURRENT", "links": [{"rel": "self", "href": self.base + "image/v2/"}]}
            return 300, {"versions": [v2]}, {}
        parts = path.strip("/").split("/")
        if parts[:2] != ["v2", "images"]:
            return 404, {"message": "not found"}, {}
        if len(parts) == 2 and req.method == "POST":
            image_id = str(uuid.uuid4())
            body = req.body
            self.images[image_id] = {
                **body,
                "id": image_id,
                "status": "queued",
                "visibility": "shared",
                "size": None,
                "checksum": None,
                "os_hash_algo": None,
                "os_hash_value": None,
                "tags": [],
                "protected": False,
                "min_disk": 0,
                "min_ram": 0,
                "owner": "p1",
                "self": f"/v2/images/{image_id}",
                "file": f"/v2/images/{image_id}/file",
                "schema": "/v2/schemas/image",
                "created_at": "2026-01-01T00:00:00Z",
                "updated_at": "2026-01-01T00:00:00Z",
            }
            return 201, self.images[image_id], {"Location": self.base + f"image/v2/images/{image_id}"}
        if len(parts) == 2 and req.method == "GET":
            names = req.query.get("name", [])
            found = [i for i in self.images.values() if not names or i["name"] in names]
            return 200, {"images": found, "first": "/v2/images", "schema": "/v2/schemas/images"}, {}
        image_id = parts[2]
        if image_id not in self.images:
            return 404, {"message": f"No image found with ID {image_id}", "code": "404 Not Found"}, {}
        image = self.images[image_id]
        if len(parts) == 4 and parts[3] == "file" and req.method == "PUT":
            self.uploads += 1
            if self.drop_first_upload and self.uploads == 1:
                req.read(req.size // 2)
                raise HangUp
            data = req.read()
            if self.fail_uploads:
                image["status"] = "killed"
                return 500, {"message": "Error in store configuration", "code": "500 Internal Server Error"}, {}
            self.store(image_id, data)
            return 204, None, {}
        if len(parts) == 3 and req.method == "GET":
            return 200, image, {}
        if len(parts) == 3 and req.method == "DELETE":
            del self.images[image_id]
            self.data.pop(image_id, None)
            return 204, None, {}
        return 405, {"message": "method not allowed"}, {}

    def store(self, image_id: str, data: bytes) -> None:
        image = self.images[image_id]
        self.data[image_id] = data
        image.update(
            status="active",
            size=len(data),
            checksum=hashlib.md5(data).hexdigest(),
            os_hash_algo="sha512",
            os_hash_value=hashlib.sha512(data).hexdigest(),
        )

    # --- Nova -----------------------------------------------------------------------------------------------
    def compute(self, req: Request) -> tuple[int, Any, dict[str, str]]:
        path = req.path.removeprefix("/compute/v2.1").rstrip("/")
        if req.method == "GET" and path == "":
            version = {
                "id": "v2.1",
                "status": "CURRENT",
                "version": "2.96",
                "min_version": "2.1",
                "updated": "2013-07-23T11:33:21Z",
                "links": [{"rel": "self", "href": self.base + "compute/v2.1/"}],
            }
            return 200, {"version": version}, {}
        parts = path.strip("/").split("/")
        if parts[0] == "flavors":
            if len(parts) == 2 and parts[1] == "detail":
                return 200, {"flavors": self.flavors}, {}
            if len(parts) == 1:
                return 200, {"flavors": [{"id": f["id"], "name": f["name"]} for f in self.flavors]}, {}
            for flavor in self.flavors:
                if flavor["id"] == parts[1]:
                    return 200, {"flavor": flavor}, {}
            return 404, {"itemNotFound": {"code": 404, "message": f"Flavor {parts[1]} could not be found."}}, {}
        if parts[0] != "servers":
            return 404, {"itemNotFound": {"code": 404, "message": "not found"}}, {}
        if len(parts) == 1 and req.method == "POST":
            server_id = str(uuid.uuid4())
            self.servers[server_id] = {**req.body["server"], "id": server_id, "status": "BUILD", "polls": 0}
            answer = {"id": server_id, "links": [], "OS-DCF:diskConfig": "MANUAL", "adminPass": "x"}
            return 202, {"server": answer}, {"Location": self.base + f"compute/v2.1/servers/{server_id}"}
        server = self.servers.get(parts[1]) if len(parts) > 1 else None
        if server is None:
            return 404, {"itemNotFound": {"code": 404, "message": "Instance could not be found."}}, {}
        if req.method == "GET":
            server["polls"] += 1
            if server["polls"] > 1:
                server["status"] = "ERROR" if self.server_fails else "ACTIVE"
                if self.server_fails:
                    server["fault"] = {"code": 500, "message": "No valid host was found."}
            shown = {k: v for k, v in server.items() if k != "polls"}
            return 200, {"server": shown}, {}
        if req.method == "DELETE":
            del self.servers[parts[1]]
            return 204, None, {}
        return 405, {"badRequest": {"code": 405, "message": "method not allowed"}}, {}


def is_upload(req: Request) -> bool:
    return req.method == "PUT" and req.path.endswith("/file")


def openstack_fake(fake: OpenStackFake) -> AbstractContextManager[OpenStackFake]:
    return serve(fake, streamed=is_upload)
