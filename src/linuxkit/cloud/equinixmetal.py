"""``linuxkit push equinixmetal`` and ``linuxkit run equinixmetal`` (kept thin: Equinix Metal is being retired).

Equinix Metal boots a ``custom_ipxe`` device from an iPXE script at a URL, so nothing is uploaded to Equinix:

- push (as upstream) copies ``NAME-kernel`` and ``NAME-initrd.img`` into a local directory (``--destination``,
  to be served over HTTP: ``linuxkit serve DIR`` or any web server) and writes ``NAME-equinixmetal.ipxe`` there,
  made by the generator ``linuxkit serve`` uses (:func:`linuxkit.serve.ipxe.script`), with the command line
  Equinix machines need (``ip=dhcp``, the serial console on ``ttyS1``…) before the image's own. It also writes
  that command line as ``NAME-cmdline``, so ``linuxkit serve DIR`` answers the same script at ``/NAME.ipxe``.
- run creates a device (or reconfigures ``--device``) with that script's URL and ``always_pxe`` through the Metal
  API v1 (``POST /projects/{id}/devices``, ``GET``/``PUT``/``DELETE /devices/{id}``, ``POST
  /devices/{id}/actions``; deprecated.equinix.com/metal/api reference), prints the SOS serial console's ssh
  command, waits (with ``--console``) until the device powers off or Ctrl-C, and deletes it unless ``--keep``.

Plain HTTPS through :class:`linuxkit.http.client.HttpClient`; the token goes in ``X-Auth-Token``; the base URL is
``$METAL_API_URL`` or ``https://api.equinix.com/metal/v1``.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit

from .. import log
from ..errors import LinuxKitError, UserError
from ..http.client import HttpClient
from ..serve import ipxe
from .polling import console_write

API_URL_ENV = "METAL_API_URL"  # ours
DEFAULT_API_URL = "https://api.equinix.com/metal/v1"
SCRIPT_SUFFIX = "-equinixmetal.ipxe"
TOKEN_ENVS = ("METAL_API_TOKEN", "METAL_AUTH_TOKEN", "PACKET_API_KEY")

Json = dict[str, Any]


class MetalError(LinuxKitError):
    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def arch_of(plan: str) -> str:
    """The architecture of a machine type (upstream: the ``baremetal_2a`` types are arm64)."""
    return "aarch64" if plan in ("baremetal_2a", "baremetal_2a2") or "arm" in plan else "x86_64"


def boot_cmdline(cmdline: str, arch: str) -> str:
    """What upstream's script puts before the image's command line: DHCP, no mode setting, and on x86 the
    serial console on ``ttyS1`` where Equinix's SOS reads it (unless the image already names ttyS1); arm64
    boots by EFI and needs the initrd as root."""
    cmdline = ipxe.clean_cmdline(cmdline)
    if arch == "aarch64":
        return f"root=/dev/ram0 ip=dhcp nomodeset ro {cmdline}".rstrip()
    tty = "" if "console=ttyS1" in cmdline else "console=ttyS1,115200 "
    return f"ip=dhcp nomodeset ro serial {tty}{cmdline}".rstrip()


# --- push -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushOptions:
    prefix: str
    destination: str
    base_url: str = ""
    arch: str = "x86_64"
    decompress: bool = False


def destination_dir(destination: str) -> Path:
    if not destination:
        raise UserError("need to specify the destination where to push to", hint="use --destination DIR")
    parts = urlsplit(destination)
    if parts.scheme not in ("", "file"):
        raise UserError(f"unknown destination format: {parts.scheme}", hint="only a directory (or file://) is known")
    return Path(parts.path if parts.scheme else destination)


def _copy(src: Path, dst: Path, decompress: bool) -> None:
    with src.open("rb") as raw:
        source: BinaryIO | gzip.GzipFile = raw
        if decompress:
            if raw.read(2) == b"\x1f\x8b":
                raw.seek(0)
                source = gzip.GzipFile(fileobj=raw)
            else:
                log.warn(f"{src} is not gzip'ed: copied as it is")
                raw.seek(0)
        tmp = dst.with_name(dst.name + ".tmp")
        try:
            with tmp.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            tmp.replace(dst)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def push(opts: PushOptions) -> Path:
    """Copy kernel and initrd to the destination and write the iPXE script; returns the script's path."""
    kernel = Path(opts.prefix + ipxe.KERNEL_SUFFIX)
    initrd = Path(opts.prefix + ipxe.INITRD_SUFFIX)
    cmdline_file = Path(opts.prefix + ipxe.CMDLINE_SUFFIX)
    for path, what in ((kernel, "kernel"), (initrd, "initrd")):
        if not path.is_file():
            raise UserError(
                f"{what} file does not exist: {path}", hint="build with: linuxkit build --format kernel+initrd"
            )
    try:
        cmdline = cmdline_file.read_text()
    except OSError as exc:
        raise UserError(f"cannot open cmdline file {cmdline_file}: {exc.strerror or exc}") from exc
    dst = destination_dir(opts.destination)
    name = kernel.name[: -len(ipxe.KERNEL_SUFFIX)]
    full = boot_cmdline(cmdline, opts.arch)
    try:
        dst.mkdir(parents=True, exist_ok=True)
        _copy(kernel, dst / kernel.name, opts.decompress)
        _copy(initrd, dst / initrd.name, opts.decompress)
        (dst / cmdline_file.name).write_text(full + "\n")
        script = dst / (name + SCRIPT_SUFFIX)
        script.write_text(ipxe.script(name, full))
    except OSError as exc:
        raise UserError(f"cannot write to {dst}: {exc.strerror or exc}") from exc
    log.info(f"wrote {dst / kernel.name}, {dst / initrd.name} and {script}")
    if opts.base_url:
        log.info(f"once {dst} is served at {opts.base_url}, boot devices with: {script_url(opts.base_url, name)}")
    print(script)
    return script


def script_url(base_url: str, name: str) -> str:
    return f"{base_url.rstrip('/')}/{quote(name + SCRIPT_SUFFIX)}"


# --- the API --------------------------------------------------------------------------------------------------


class MetalApi:
    def __init__(self, token: str, *, http: HttpClient | None = None) -> None:
        self.token = token
        self.base = (os.environ.get(API_URL_ENV, "") or DEFAULT_API_URL).rstrip("/")
        self.http = http if http is not None else HttpClient(timeout=60)

    def call(self, method: str, path: str, body: Json | None = None) -> Any:
        headers = {"X-Auth-Token": self.token, "Accept": "application/json"}
        data = json.dumps(body).encode() if body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        with self.http.request(method, self.base + path, headers=headers, body=(lambda: data) if data else None) as r:
            raw, status = r.read(), r.status_code
        payload: Any = json.loads(raw) if raw.strip().startswith((b"{", b"[")) else None
        if status >= 400:
            errors = payload.get("errors") if isinstance(payload, Mapping) else None
            text = "; ".join(map(str, errors)) if errors else raw.decode(errors="replace")[:200]
            if status == 401:
                raise UserError(f"Equinix Metal refused the API token: {text}", hint=token_hint())
            raise MetalError(f"{method} {path}: HTTP {status}: {text}", status=status)
        return payload

    def create_device(self, project: str, body: Json) -> Json:
        device: Json = self.call("POST", f"/projects/{quote(project, safe='')}/devices", body)
        return device

    def get_device(self, device_id: str) -> Json:
        device: Json = self.call("GET", f"/devices/{quote(device_id, safe='')}")
        return device

    def update_device(self, device_id: str, body: Json) -> Json:
        device: Json = self.call("PUT", f"/devices/{quote(device_id, safe='')}", body)
        return device

    def reboot(self, device_id: str) -> None:
        self.call("POST", f"/devices/{quote(device_id, safe='')}/actions", {"type": "reboot"})

    def delete_device(self, device_id: str) -> None:
        self.call("DELETE", f"/devices/{quote(device_id, safe='')}")


def token_hint() -> str:
    return f"use --api-key or ${', $'.join(TOKEN_ENVS)} (a personal or project API key from the Metal console)"


def device_body(hostname: str, plan: str, ipxe_url: str, *, metro: str, facility: str, always_pxe: bool) -> Json:
    """``createDevice``: a ``custom_ipxe`` device billed hourly, in a metro (or upstream's facility)."""
    body: Json = {
        "hostname": hostname,
        "plan": plan,
        "operating_system": "custom_ipxe",
        "billing_cycle": "hourly",
        "ipxe_script_url": ipxe_url,
        "always_pxe": always_pxe,
        "tags": ["linuxkit"],
    }
    if facility:
        body["facility"] = [facility]
    else:
        body["metro"] = metro
    return body


def sos_host(device: Mapping[str, Any]) -> str:
    """The serial-over-SSH host of a device's facility (or metro)."""
    code = (device.get("facility") or {}).get("code") or (device.get("metro") or {}).get("code") or ""
    return f"sos.{code}.platformequinix.com"


# --- run ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    prefix: str
    base_url: str
    token: str
    project: str
    plan: str
    hostname: str
    name: str = ""
    metro: str = ""
    facility: str = ""
    device: str = ""
    always_pxe: bool = True
    console: bool = True
    keep: bool = False
    poll_interval: float = 10.0
    write: Callable[[str], None] = field(default=lambda text: console_write(text))


def check_url(http: HttpClient, url: str, what: str) -> None:
    """Upstream's check: a HEAD answered below 400."""
    log.info(f"validating {what} URL: {url}")
    try:
        with http.request("HEAD", url) as r:
            status = r.status_code
    except OSError as exc:
        raise UserError(f"invalid {what} URL {url}: {exc}", hint="the URL must be reachable from here too") from exc
    if status >= 400:
        raise UserError(
            f"invalid {what} URL {url}: HTTP {status}", hint="push the files there: linuxkit push equinixmetal"
        )


def run(opts: RunOptions, api: MetalApi | None = None) -> int:
    name = opts.name or Path(opts.prefix).name
    if not opts.base_url:
        raise UserError(
            "need to specify a value for --base-url where the images are hosted",
            hint=f"it must serve {name}-kernel, {name}-initrd.img and {name}{SCRIPT_SUFFIX} (see push equinixmetal)",
        )
    if not opts.token:
        raise UserError("no Equinix Metal API key", hint=token_hint())
    if not opts.project and not opts.device:
        raise UserError("must specify an Equinix Metal project ID", hint="use --project-id or $METAL_PROJECT_ID")
    if not opts.keep and not opts.console:
        raise UserError("combination of keep=false and console=false makes little sense", hint="use --keep")
    api = api or MetalApi(opts.token)
    base = opts.base_url.rstrip("/")
    ipxe_url = script_url(base, name)
    check_url(api.http, ipxe_url, "iPXE")
    check_url(api.http, f"{base}/{quote(name + ipxe.KERNEL_SUFFIX)}", "kernel")
    check_url(api.http, f"{base}/{quote(name + ipxe.INITRD_SUFFIX)}", "initrd")
    if opts.device:
        current = api.get_device(opts.device)
        update = {
            "hostname": opts.hostname or current.get("hostname", ""),
            "locked": bool(current.get("locked", False)),
            "tags": current.get("tags") or [],
            "ipxe_script_url": ipxe_url,
            "always_pxe": opts.always_pxe,
        }
        device = api.update_device(opts.device, update)
        api.reboot(opts.device)
    else:
        body = device_body(
            opts.hostname, opts.plan, ipxe_url, metro=opts.metro, facility=opts.facility, always_pxe=opts.always_pxe
        )
        device = api.create_device(opts.project, body)
    device_id = str(device["id"])
    created = not opts.device
    try:
        log.info(f"booting {device_id}...")
        opts.write(f"console: ssh {device_id}@{sos_host(device)}\n")
        if opts.console:
            wait_inactive(api, device_id, opts.poll_interval)
    finally:  # also on Ctrl-C
        if opts.keep or not created:
            log.info(f"the device {device_id} is kept")
        else:
            try:
                api.delete_device(device_id)
                log.info(f"device {device_id} deleted")
            except (LinuxKitError, OSError) as exc:
                log.warn(f"could not delete the device {device_id} ({exc}): delete it yourself (it is billed hourly)")
    return 0


def wait_inactive(api: MetalApi, device_id: str, interval: float) -> None:
    """Until the device is powered off (``inactive``) or gone; Ctrl-C ends the wait."""
    log.info("waiting for the device to power off (Ctrl-C to stop waiting)")
    while True:
        try:
            state = api.get_device(device_id).get("state", "")
        except MetalError as exc:
            if exc.status == 404:
                return
            raise
        if state in ("inactive", "deleted", "failed"):
            log.info(f"device {device_id} is {state}")
            return
        time.sleep(interval)
