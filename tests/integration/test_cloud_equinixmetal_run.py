"""``linuxkit run equinixmetal`` end to end against a recording server on loopback.

There is no Equinix Metal emulator: the fake answers as the Metal API v1 reference describes (``POST
/projects/{id}/devices`` → 201 Device, ``GET``/``PUT``/``DELETE /devices/{id}``, ``POST /devices/{id}/actions``
→ 202; errors as ``{"errors": [...]}``), and each request's method, path, ``X-Auth-Token`` and JSON body is
checked. The same server stands for the web server of ``--base-url`` (the ``HEAD`` checks upstream makes)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from tests.conftest import ROOT
from tests.recording_api import Recorder, Request, recording_server

from linuxkit.cloud import equinixmetal

pytestmark = [pytest.mark.integration]

TOKEN = "metal-token-123"
PROJECT = "proj-0001"
DEVICE = "dev-0001"
FILES = {"/boot/lk-equinixmetal.ipxe", "/boot/lk-kernel", "/boot/lk-initrd.img"}


class FakeMetal:
    def __init__(self, states: list[str] | None = None, files: set[str] = FILES) -> None:
        self.states = states or ["provisioning"]
        self.files = files

    def __call__(self, r: Request) -> tuple[int, Any]:
        if r.method == "HEAD":
            return (200, None) if r.path in self.files else (404, None)
        if r.headers.get("x-auth-token") != TOKEN:
            return 401, {"errors": ["Invalid authentication token"]}
        device = {"id": DEVICE, "hostname": "me-linuxkit", "facility": {"code": "am6"}, "metro": {"code": "am"}}
        if (r.method, r.path) == ("POST", f"/metal/v1/projects/{PROJECT}/devices"):
            return 201, {**device, "state": "queued"}
        if (r.method, r.path) == ("GET", f"/metal/v1/devices/{DEVICE}"):
            state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
            return 200, {**device, "state": state, "locked": True, "tags": ["mine"]}
        if (r.method, r.path) == ("PUT", f"/metal/v1/devices/{DEVICE}"):
            return 200, {**device, **r.json()}
        if (r.method, r.path) == ("POST", f"/metal/v1/devices/{DEVICE}/actions"):
            return 202, None
        if (r.method, r.path) == ("DELETE", f"/metal/v1/devices/{DEVICE}"):
            return 204, None
        return 404, {"errors": ["Not found"]}


def lk(api: Recorder, *args: str, token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METAL_", "PACKET_"))}
    env.update(METAL_API_URL=f"{api.url}/metal/v1", METAL_AUTH_TOKEN=token, PYTHONPATH=str(ROOT / "src"))
    argv = [sys.executable, "-m", "linuxkit.cli.main", "run", "equinixmetal", "--base-url", f"{api.url}/boot", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)


def test_run_creates_a_custom_ipxe_device_and_keeps_it() -> None:
    with recording_server(FakeMetal()) as api:
        proc = lk(api, "--project-id", PROJECT, "--hostname", "me-lk", "--console=false", "--keep", "lk")
    assert proc.returncode == 0, proc.stderr
    assert f"console: ssh {DEVICE}@sos.am6.platformequinix.com" in proc.stdout
    heads = [r.path for r in api.requests if r.method == "HEAD"]
    assert heads == ["/boot/lk-equinixmetal.ipxe", "/boot/lk-kernel", "/boot/lk-initrd.img"]
    assert api.calls() == [("POST", f"/metal/v1/projects/{PROJECT}/devices")]
    create = api.find("POST", f"/metal/v1/projects/{PROJECT}/devices")
    assert create.headers["x-auth-token"] == TOKEN and create.headers["content-type"] == "application/json"
    assert create.json() == {
        "hostname": "me-lk",
        "plan": "c3.small.x86",
        "operating_system": "custom_ipxe",
        "billing_cycle": "hourly",
        "ipxe_script_url": f"{api.url}/boot/lk-equinixmetal.ipxe",
        "always_pxe": True,
        "tags": ["linuxkit"],
        "metro": "am",
    }


def test_run_in_a_facility_without_always_pxe() -> None:
    with recording_server(FakeMetal()) as api:
        args = ["--project-id", PROJECT, "--zone", "ams1", "--always-pxe=false", "--console=false", "--keep", "lk"]
        proc = lk(api, "--machine", "c3.large.arm64", *args)
    assert proc.returncode == 0, proc.stderr
    body = api.find("POST", f"/metal/v1/projects/{PROJECT}/devices").json()
    assert body["facility"] == ["ams1"] and "metro" not in body
    assert body["always_pxe"] is False and body["plan"] == "c3.large.arm64"


def test_run_waits_until_the_device_powers_off_then_deletes_it() -> None:
    out: list[str] = []
    with recording_server(FakeMetal(["provisioning", "active", "inactive"])) as api, pytest.MonkeyPatch.context() as mp:
        mp.setenv("METAL_API_URL", f"{api.url}/metal/v1")
        opts = equinixmetal.RunOptions(
            prefix="out/lk",
            base_url=f"{api.url}/boot/",
            token=TOKEN,
            project=PROJECT,
            plan="c3.small.x86",
            hostname="h",
            metro="am",
            poll_interval=0.01,
            write=out.append,
        )
        assert equinixmetal.run(opts) == 0
    assert out == [f"console: ssh {DEVICE}@sos.am6.platformequinix.com\n"]
    assert api.calls() == [
        ("POST", f"/metal/v1/projects/{PROJECT}/devices"),
        *[("GET", f"/metal/v1/devices/{DEVICE}")] * 3,
        ("DELETE", f"/metal/v1/devices/{DEVICE}"),
    ]


def test_an_existing_device_is_updated_rebooted_and_not_deleted() -> None:
    with recording_server(FakeMetal()) as api:
        proc = lk(api, "--device", DEVICE, "--hostname", "new", "--console=false", "--keep", "lk")
    assert proc.returncode == 0, proc.stderr
    assert api.calls() == [
        ("GET", f"/metal/v1/devices/{DEVICE}"),
        ("PUT", f"/metal/v1/devices/{DEVICE}"),
        ("POST", f"/metal/v1/devices/{DEVICE}/actions"),
    ]
    assert api.find("PUT", f"/metal/v1/devices/{DEVICE}").json() == {
        "hostname": "new",
        "locked": True,
        "tags": ["mine"],
        "ipxe_script_url": f"{api.url}/boot/lk-equinixmetal.ipxe",
        "always_pxe": True,
    }
    assert api.find("POST", f"/metal/v1/devices/{DEVICE}/actions").json() == {"type": "reboot"}


def test_a_missing_file_at_the_base_url_stops_before_any_device() -> None:
    with recording_server(FakeMetal(files=FILES - {"/boot/lk-initrd.img"})) as api:
        proc = lk(api, "--project-id", PROJECT, "--keep", "lk")
    assert proc.returncode == 2
    assert "invalid initrd URL" in proc.stderr and "HTTP 404" in proc.stderr
    assert api.calls() == []


def test_a_refused_token_names_the_variables() -> None:
    with recording_server(FakeMetal()) as api:
        proc = lk(api, "--project-id", PROJECT, "--keep", "lk", token="wrong")
    assert proc.returncode == 2
    assert "Invalid authentication token" in proc.stderr and "METAL_AUTH_TOKEN" in proc.stderr
