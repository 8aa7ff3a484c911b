"""``linuxkit push openstack`` and ``linuxkit run openstack``: a Glance v2 image from a disk file; a Nova server
from an image, as upstream.

openstacksdk (the ``openstack`` extra) is imported by these functions only, through :func:`.extras.require`. The
cloud comes from the usual places: ``$OS_CLOUD`` and ``clouds.yaml``, or the ``OS_*`` variables (``OS_AUTH_URL``,
``OS_USERNAME``...), so private clouds and local servers work unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .. import log
from ..errors import LinuxKitError, UserError
from .extras import require
from .polling import poll_delays

#: disk formats Glance v2 and LinuxKit's outputs share, by file extension (upstream's list)
EXTENSIONS = {
    ".qcow2": "qcow2",
    ".raw": "raw",
    ".img": "raw",
    ".vhd": "vhd",
    ".vhdx": "vhdx",
    ".vmdk": "vmdk",
    ".iso": "iso",
    ".ami": "ami",
}
CREDENTIAL_SOURCES = (
    "$OS_CLOUD with clouds.yaml (./clouds.yaml, ~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml), "
    "or $OS_AUTH_URL with $OS_USERNAME/$OS_PASSWORD (or $OS_APPLICATION_CREDENTIAL_ID/_SECRET, $OS_TOKEN), "
    "$OS_PROJECT_NAME, $OS_USER_DOMAIN_NAME, $OS_PROJECT_DOMAIN_NAME"
)
VERB_PUSH = "push openstack"
VERB_RUN = "run openstack"


# --- the disk file -------------------------------------------------------------------------------------------


def sniff(head: bytes, tail: bytes) -> str:
    """The disk format a file's first 64 KiB and last 512 bytes show ("" when none is recognised: raw)."""
    if head.startswith(b"QFI\xfb"):
        return "qcow2"
    if head.startswith(b"KDMV") or head.startswith(b"# Disk DescriptorFile"):
        return "vmdk"
    if head.startswith(b"vhdxfile"):
        return "vhdx"
    if tail.startswith(b"conectix") or head.startswith(b"conectix"):
        return "vhd"
    if head[0x8001:0x8006] == b"CD001":
        return "iso"
    return ""


def disk_format(path: Path) -> str:
    """Glance's ``disk_format`` for ``path``: from its extension (as upstream), checked against its content (a
    qcow2 named ``.img`` is refused rather than booted as raw)."""
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(
            f"extension [{path.suffix.lstrip('.')}] of {path.name} is not supported",
            hint="push a .qcow2, .raw, .img, .vhd, .vhdx, .vmdk, .iso or .ami file",
        )
    try:
        with path.open("rb") as f:
            head = f.read(64 * 1024)
            size = f.seek(0, 2)
            f.seek(max(0, size - 512))
            tail = f.read(512)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from exc
    seen = sniff(head, tail)
    # an ISO is also a valid raw disk (hybrid images), and an AMI is raw
    if seen and seen != fmt and not (fmt in ("raw", "ami") and seen == "iso"):
        raise UserError(f"{path.name} holds a {seen} disk, not {fmt} as its extension says", hint="rename it")
    return fmt


# --- connection ----------------------------------------------------------------------------------------------


def connect(verb: str) -> Any:
    """An openstacksdk connection (authenticates on first use)."""
    openstack = require("openstack", "openstack", verb=verb)
    with sdk_errors(verb):
        return openstack.connect()


@contextmanager
def sdk_errors(verb: str) -> Iterator[None]:
    """openstacksdk's and keystoneauth's errors as ours: missing settings name where they are looked for."""
    ks = require("openstack", "keystoneauth1.exceptions", verb=verb)
    sdk = require("openstack", "openstack.exceptions", verb=verb)
    try:
        yield
    except (ks.MissingRequiredOptions, ks.MissingAuthPlugin, sdk.ConfigException) as exc:
        raise UserError(f"no OpenStack credentials: {exc}", hint=f"set {CREDENTIAL_SOURCES}") from exc
    except ks.Unauthorized as exc:
        raise UserError(f"OpenStack refused the credentials: {exc}", hint=f"check {CREDENTIAL_SOURCES}") from exc
    except (ks.ClientException, sdk.SDKException) as exc:
        raise LinuxKitError(f"{verb}: {exc}") from exc


# --- push ----------------------------------------------------------------------------------------------------


class ProgressReader:
    """A file read through by ``requests`` (its length known), reporting how far it got."""

    def __init__(self, source: BinaryIO, size: int, on_progress: Callable[[int], None]) -> None:
        self.source = source
        self.size = size
        self.done = 0
        self.on_progress = on_progress

    def __len__(self) -> int:
        return self.size

    def read(self, n: int = -1) -> bytes:
        data = self.source.read(max(n, 1 << 20) if n > 0 else -1)
        self.done += len(data)
        self.on_progress(self.done)
        return data


@dataclass(frozen=True)
class PushOptions:
    path: Path
    name: str = ""
    attempts: int = 3
    backoff: float = 2.0


def image_name(path: Path, name: str) -> str:
    """``--img-name``, else the file name without its extension (as upstream)."""
    return name or path.stem


def push(opts: PushOptions) -> str:
    """Create the image record, upload the file into it, check it is ``active``; returns the image ID. The
    image is deleted when the upload fails."""
    if not opts.path.is_file():
        raise UserError(f"{opts.path}: no such file")
    fmt = disk_format(opts.path)
    name = image_name(opts.path, opts.name)
    image_module = require("openstack", "openstack.image.v2.image", verb=VERB_PUSH)
    conn = connect(VERB_PUSH)
    with sdk_errors(VERB_PUSH):
        image = image_module.Image.new(name=name, disk_format=fmt, container_format="bare").create(conn.image)
    log.info(f"uploading {opts.path} ({fmt}) as image {name}, ID {image.id}")
    try:
        with sdk_errors(VERB_PUSH):
            _upload(conn, image, opts)
            status = conn.image.get_image(image.id).status
        if status != "active":
            raise LinuxKitError(f"error uploading image, status is {status}")
    except BaseException:
        _delete_image(conn, image.id)
        raise
    log.info("image uploaded")
    print(image.id)
    return str(image.id)


def _upload(conn: Any, image: Any, opts: PushOptions) -> None:
    """``PUT /v2/images/ID/file``; after a dropped connection or a 5xx answer, again from the start when Glance
    has put the image back to ``queued`` (the upload API is not resumable)."""
    ks = require("openstack", "keystoneauth1.exceptions", verb=VERB_PUSH)
    size = opts.path.stat().st_size
    started = time.monotonic()
    with log.progress() as bars:
        task = bars.add_task(f"image {image.name}", total=size)
        for attempt in range(1, opts.attempts + 1):
            with opts.path.open("rb") as source:
                reader = ProgressReader(source, size, lambda done: bars.update(task, completed=done))
                try:
                    resp = image.upload(conn.image, data=reader, size=size)
                    failure = "" if resp.status_code < 500 else f"HTTP {resp.status_code}"
                except ks.ConnectionError as exc:
                    failure = str(exc)
                except ks.HttpError as exc:
                    if exc.http_status < 500:
                        raise
                    failure = f"HTTP {exc.http_status}"
            if not failure:
                if resp.status_code >= 400:
                    raise LinuxKitError(f"upload refused: HTTP {resp.status_code}: {resp.text[:300]}")
                log.info(f"uploaded {size / 1e6:.1f} MB in {time.monotonic() - started:.1f}s")
                return
            status = _settled_status(conn, image.id)
            if attempt == opts.attempts or status != "queued":
                raise LinuxKitError(f"upload failed ({failure}); the image is {status}")
            log.info(f"upload failed ({failure}): again in {opts.backoff:.0f}s")
            time.sleep(opts.backoff)


#: how long a failed upload may stay ``saving`` before the image goes back to ``queued``: a real Glance (Debian 12's
#: 25.1) answers the cut upload with a 500 first and resets the image only once it has seen the connection end
SETTLE_SECONDS = 15.0


def _settled_status(conn: Any, image_id: str, limit: float = SETTLE_SECONDS) -> str:
    """The image's status once it has left ``saving`` (or ``saving`` after ``limit`` seconds)."""
    deadline = time.monotonic() + limit
    for delay in poll_delays(0.2, 2.0):
        status = str(conn.image.get_image(image_id).status)
        if status != "saving" or time.monotonic() >= deadline:
            return status
        time.sleep(delay)
    raise AssertionError("unreachable")


def _delete_image(conn: Any, image_id: str) -> None:
    try:
        conn.image.delete_image(image_id, ignore_missing=True)
        log.info(f"deleted image {image_id}")
    except Exception as exc:  # the SDK's and keystoneauth's errors have no common base but Exception
        log.warn(f"image {image_id} is left in Glance (delete it: {exc})")


# --- run -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    image: str
    flavor: str = "m1.tiny"
    name: str = ""
    network: str = ""
    security_groups: Sequence[str] = ("default",)
    key_name: str = ""
    wait: int = 600


def server_attrs(opts: RunOptions, image_id: str, flavor_id: str) -> dict[str, Any]:
    """The ``POST /servers`` attributes upstream sends (the SDK writes ``imageRef``, ``flavorRef``...)."""
    attrs: dict[str, Any] = {
        "name": opts.name or opts.image,
        "image_id": image_id,
        "flavor_id": flavor_id,
        "security_groups": [{"name": g} for g in opts.security_groups if g],
    }
    if opts.network:
        attrs["networks"] = [{"uuid": opts.network}]
    if opts.key_name:
        attrs["key_name"] = opts.key_name
    return attrs


def run(opts: RunOptions) -> int:
    """Create the server and wait until it is ``ACTIVE`` (as upstream, it is left running); a server that ends
    in ``ERROR`` is deleted."""
    conn = connect(VERB_RUN)
    with sdk_errors(VERB_RUN):
        image = conn.image.find_image(opts.image, ignore_missing=True)
        if image is None:
            raise UserError(f"no image {opts.image}", hint="push one with: linuxkit push openstack")
        flavor = conn.compute.find_flavor(opts.flavor, ignore_missing=True)
        if flavor is None:
            raise UserError(f"no flavor {opts.flavor}", hint="list them with: openstack flavor list")
        server = conn.compute.create_server(**server_attrs(opts, image.id, flavor.id))
    log.info(f"creating server {server.name or opts.name or opts.image}, ID {server.id}")
    sdk = require("openstack", "openstack.exceptions", verb=VERB_RUN)
    try:
        with sdk_errors(VERB_RUN):
            try:
                conn.compute.wait_for_server(server, status="ACTIVE", failures=["ERROR"], wait=opts.wait)
            except sdk.ResourceFailure as exc:
                fault = getattr(conn.compute.get_server(server.id), "fault", None) or {}
                raise LinuxKitError(f"server {server.id} failed: {fault.get('message') or exc}") from exc
    except LinuxKitError:
        _delete_server(conn, server.id)
        raise
    except KeyboardInterrupt:
        log.warn(f"server {server.id} is left (interrupted while it was starting)")
        raise
    log.info(f"server created, UUID is {server.id}")
    print(server.id)
    return 0


def _delete_server(conn: Any, server_id: str) -> None:
    try:
        conn.compute.delete_server(server_id, ignore_missing=True)
        log.info(f"deleted server {server_id}")
    except Exception as exc:  # see _delete_image
        log.warn(f"server {server_id} is left (delete it: {exc})")
