"""Local stand-ins for Google Cloud in the ``push gcp``/``run gcp`` tests: the ``gcp-storage-emulator`` server
(PyPI) for Cloud Storage, a TCP proxy that cuts a connection once (to interrupt an upload), and a recording HTTP
server answering the OAuth token endpoint and the Compute Engine v1 calls as their published references describe
them (developers.google.com/identity/protocols/oauth2/service-account: the JWT bearer grant;
cloud.google.com/compute/docs/reference/rest/v1: images, disks, instances, globalOperations, zoneOperations,
instances.getSerialPortOutput).

There is no Compute Engine emulator: the fake keeps the resources it is asked to create and answers with the
documented resources (Operation with ``status`` RUNNING then DONE, ``error.errors[]`` when failed; the error body
``{"error": {"code", "message", "errors"}}``), so the client's requests can be checked exactly.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.recording_api import Fake, Request, serve

TOKEN = "ya29.fake-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@contextmanager
def storage_emulator(bucket: str) -> Iterator[str]:
    """``gcp-storage-emulator`` on a free loopback port (in memory, ``bucket`` created); yields ``host:port``."""
    port = free_port()
    exe = Path(sys.executable).with_name("gcp-storage-emulator")
    argv = [str(exe), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "-q"]
    proc = subprocess.Popen([*argv, "--default-bucket", bucket], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class CuttingProxy:
    """Forwards loopback TCP connections to ``target``; once ``cut_after`` bytes have gone towards the server it
    closes that connection mid-stream (once), as a dropped network would."""

    def __init__(self, target: int, cut_after: int) -> None:
        self.target = target
        self.cut_after = cut_after
        self.sent = 0
        self.cuts = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        try:
            while data := src.recv(65536):
                if upstream:
                    with self.lock:
                        self.sent += len(data)
                        cut = not self.cuts and self.sent > self.cut_after
                        if cut:
                            self.cuts += 1
                    if cut:
                        dst.sendall(data[: len(data) // 2])
                        break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


@dataclass
class ComputeFake(Fake):
    """The recording OAuth + Compute server. ``fail_image_insert`` makes images.insert's operation end in error;
    ``image_insert_hangs`` keeps it RUNNING;
    ``serial`` is the console text an instance shows, revealed one piece per serialPort call, after which the
    instance is TERMINATED."""

    fail_image_insert: bool = False
    #: images.insert's operation never ends (to interrupt a push while it waits)
    image_insert_hangs: bool = False
    serial: list[str] = field(default_factory=lambda: ["boot 1\n", "", "Welcome to LinuxKit\n", "power off\n"])
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    disks: dict[str, dict[str, Any]] = field(default_factory=dict)
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    shown: dict[str, int] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return self.base + "compute/v1/"

    def compute_requests(self) -> list[tuple[str, str]]:
        """(method, path below ``/compute/v1/projects/``) of every Compute call, in order."""
        prefix = "/compute/v1/projects/"
        return [(r.method, r.path.removeprefix(prefix)) for r in self.requests if r.path.startswith(prefix)]

    def answer(self, req: Request) -> tuple[int, Any]:
        if req.path == "/token":
            return self._token(req)
        if req.headers.get("authorization") != f"Bearer {TOKEN}":
            return error(401, "Request is missing required authentication credential.")
        parts = req.path.removeprefix("/compute/v1/").split("/")
        if parts[0] != "projects" or len(parts) < 4:
            return error(404, "not found")
        project, rest = parts[1], parts[2:]
        if rest[0] == "global":
            return self._global(req, project, rest[1:])
        if rest[0] == "zones":
            return self._zonal(req, project, rest[1], rest[2:])
        return error(404, "not found")

    def _token(self, req: Request) -> tuple[int, Any]:
        form = req.body
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            return 400, {"error": "unsupported_grant_type"}
        claims = json.loads(b64url(form["assertion"][0].split(".")[1]))
        req.body = {"claims": claims}
        return 200, {"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"}

    def _operation(self, project: str, kind: str, target: str, zone: str = "", err: str = "") -> dict[str, Any]:
        name = f"operation-{len(self.operations) + 1}"
        op: dict[str, Any] = {
            "kind": "compute#operation",
            "name": name,
            "operationType": kind,
            "targetLink": self.endpoint + f"projects/{project}/{target}",
            "status": "RUNNING",
            "progress": 0,
        }
        if zone:
            op["zone"] = self.endpoint + f"projects/{project}/zones/{zone}"
        self.operations[name] = {**op, "status": "DONE", "progress": 100}
        if err:
            self.operations[name]["error"] = {"errors": [{"code": "INVALID_IMAGE", "message": err}]}
        return op

    def _get_operation(self, name: str) -> tuple[int, Any]:
        if name not in self.operations:
            return error(404, f"The resource 'operations/{name}' was not found")
        return 200, self.operations[name]

    def _global(self, req: Request, project: str, rest: list[str]) -> tuple[int, Any]:
        if rest[0] == "operations" and req.method == "GET":
            return self._get_operation(rest[1])
        if rest[0] != "images":
            return error(404, "not found")
        if req.method == "POST" and len(rest) == 1:
            name = req.body["name"]
            if name in self.images:
                return error(409, f"The resource 'projects/{project}/global/images/{name}' already exists")
            if self.fail_image_insert:
                self.images[name] = {**req.body, "status": "FAILED"}
                return 200, self._operation(project, "insert", f"global/images/{name}", err="Invalid image file")
            if self.image_insert_hangs:
                self.images[name] = {**req.body, "status": "PENDING"}
                op = self._operation(project, "insert", f"global/images/{name}")
                self.operations[op["name"]] = op  # RUNNING for ever
                return 200, op
            image = {**req.body, "kind": "compute#image", "status": "READY", "selfLink": ""}
            if "licenses" in image:  # the API answers with full URLs
                image["licenses"] = ["https://www.googleapis.com/compute/v1/" + x for x in image["licenses"]]
            self.images[name] = image
            return 200, self._operation(project, "insert", f"global/images/{name}")
        name = rest[1]
        if name not in self.images:
            return error(404, f"The resource 'projects/{project}/global/images/{name}' was not found")
        if req.method == "GET":
            return 200, self.images[name]
        if req.method == "DELETE":
            del self.images[name]
            return 200, self._operation(project, "delete", f"global/images/{name}")
        return error(405, "method not allowed")

    def _zonal(self, req: Request, project: str, zone: str, rest: list[str]) -> tuple[int, Any]:
        kind = rest[0]
        if kind == "operations" and req.method == "GET":
            return self._get_operation(rest[1])
        store = {"disks": self.disks, "instances": self.instances}.get(kind)
        if store is None:
            return error(404, "not found")
        if req.method == "POST" and len(rest) == 1:
            name = req.body["name"]
            if name in store:
                return error(409, f"The resource 'projects/{project}/zones/{zone}/{kind}/{name}' already exists")
            store[name] = {**req.body, "status": "RUNNING" if kind == "instances" else "READY"}
            return 200, self._operation(project, "insert", f"zones/{zone}/{kind}/{name}", zone)
        name = rest[1]
        if name not in store:
            return error(404, f"The resource 'projects/{project}/zones/{zone}/{kind}/{name}' was not found")
        if req.method == "DELETE":
            del store[name]
            return 200, self._operation(project, "delete", f"zones/{zone}/{kind}/{name}", zone)
        if req.method == "GET" and len(rest) == 2:
            return 200, store[name]
        if req.method == "GET" and rest[2:] == ["serialPort"]:
            return 200, self._serial(name, int(req.query.get("start", ["0"])[0]))
        return error(405, "method not allowed")

    def _serial(self, name: str, start: int) -> dict[str, Any]:
        shown = self.shown.get(name, 0)
        text = "".join(self.serial[:shown])
        self.shown[name] = min(shown + 1, len(self.serial))
        if self.shown[name] == len(self.serial) and shown == len(self.serial):
            self.instances[name]["status"] = "TERMINATED"
        return {
            "kind": "compute#serialPortOutput",
            "contents": text[start:],
            "start": str(start),
            "next": str(len(text)),
        }


def error(code: int, message: str) -> tuple[int, Any]:
    reason = {401: "required", 404: "notFound", 409: "alreadyExists"}.get(code, "invalid")
    return code, {"error": {"code": code, "message": message, "errors": [{"message": message, "reason": reason}]}}


def b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def compute_fake(fake: ComputeFake) -> AbstractContextManager[ComputeFake]:
    return serve(fake)


def service_account_key(path: Path, token_uri: str, project: str) -> Path:
    """A service account JSON key (a fresh RSA key) whose token endpoint is ``token_uri``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": project,
                "private_key_id": "0123456789abcdef",
                "private_key": pem,
                "client_email": f"pusher@{project}.iam.gserviceaccount.com",
                "client_id": "1234567890",
                "token_uri": token_uri,
            }
        )
    )
    return path
