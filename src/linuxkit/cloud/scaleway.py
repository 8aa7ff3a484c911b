"""``linuxkit push scaleway`` and ``linuxkit run scaleway``.

push: the QCOW2 disk (``linuxkit build --format qcow2-efi``) is uploaded to an Object Storage bucket of the
zone's region (S3 API, through boto3 from the ``aws`` extra), imported as a Block Storage snapshot
(``import-from-object-storage``), and an Instance image is made of that snapshot; the object is then deleted.
Upstream instead starts a helper server, copies an ISO to it over SSH and ``dd``\\ s it onto a second volume:
today's API imports a QCOW2 from a bucket directly, with no server, no SSH key and no ISO.

run: a server is created from the image (found by name), given ``--data`` as its cloud-init user data,
powered on; unless ``--no-attach`` we wait until it stops (or Ctrl-C), then ``--clean`` terminates it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import log
from ..errors import LinuxKitError, UserError
from .extras import require
from .polling import console_write
from .scaleway_api import ScalewayApi, ScalewayError, region_of

S3_URL_ENV = "SCW_OBJECT_STORAGE_URL"  # non-standard: a private or local S3 endpoint

ACCESS_KEY_ENV = "SCW_ACCESS_KEY"
SECRET_KEY_ENV = "SCW_SECRET_KEY"
PROJECT_ENV = "SCW_DEFAULT_PROJECT_ID"
ORGANIZATION_ENV = "SCW_DEFAULT_ORGANIZATION_ID"

ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    project: str

    def check(self, *, need_access_key: bool) -> None:
        missing = [f"--secret-key/${SECRET_KEY_ENV}"] * (not self.secret_key)
        missing += [f"--access-key/${ACCESS_KEY_ENV}"] * (need_access_key and not self.access_key)
        missing += [f"--project-id/${PROJECT_ENV} (or --organization-id/${ORGANIZATION_ENV})"] * (not self.project)
        if missing:
            raise UserError(
                f"missing Scaleway credentials: {', '.join(missing)}",
                hint="create an API key at console.scaleway.com (IAM > API keys) and set "
                f"${ACCESS_KEY_ENV}, ${SECRET_KEY_ENV} and ${PROJECT_ENV}",
            )


def object_storage_url(zone: str) -> str:
    """The S3 endpoint of the zone's region (``$SCW_OBJECT_STORAGE_URL`` overrides it)."""
    return os.environ.get(S3_URL_ENV, "") or f"https://s3.{region_of(zone)}.scw.cloud"


def image_name(path: Path, name: str) -> str:
    """``--img-name``, else the file's name without ``.qcow2`` (upstream strips ``.iso``)."""
    if name:
        return name
    base = path.name
    return base[: -len(".qcow2")] if base.endswith(".qcow2") else base


def check_qcow2(path: Path) -> None:
    """Scaleway imports QCOW2 files only: check the magic before uploading anything."""
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if magic != b"QFI\xfb":
        raise UserError(
            f"{path} is not a QCOW2 image: Scaleway imports snapshots from QCOW2 files",
            hint="build one with: linuxkit build --format qcow2-efi (or convert with qemu-img convert -O qcow2)",
        )


# --- push -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushOptions:
    path: Path
    credentials: Credentials
    zone: str
    bucket: str
    name: str = ""
    arch: str = "x86_64"
    no_clean: bool = False
    poll_interval: float = 2.0


def s3_client(creds: Credentials, zone: str) -> Any:
    boto3 = require("scaleway", "boto3", verb="push scaleway")
    return boto3.client(
        "s3",
        endpoint_url=object_storage_url(zone),
        region_name=region_of(zone),
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
    )


def upload(s3: Any, path: Path, bucket: str, key: str) -> None:
    """Upload the file (boto3 aborts its multipart upload when a part fails for good)."""
    size = path.stat().st_size
    log.info(f"uploading {path} to s3://{bucket}/{key} ({size / 1e6:.1f} MB)")
    with log.progress() as bars:
        task = bars.add_task(f"s3://{bucket}/{key}", total=size)
        try:
            s3.upload_file(str(path), bucket, key, Callback=lambda n: bars.advance(task, n))
        except Exception as exc:  # boto3.exceptions.S3UploadFailedError, botocore's ClientError and friends
            raise LinuxKitError(
                f"cannot upload {path} to s3://{bucket}/{key}: {exc}",
                hint=f"check the bucket exists in {bucket!r}'s region and your key may write to it",
            ) from exc


def push(opts: PushOptions, api: ScalewayApi | None = None) -> str:
    """Upload, import, make the image; returns the image's ID (also printed). On failure the snapshot and the
    object are deleted (or what is left is said)."""
    opts.credentials.check(need_access_key=True)
    if not opts.bucket:
        raise UserError("no bucket to upload the image to", hint="use --bucket or $SCW_BUCKET (in the zone's region)")
    arch = ARCHES.get(opts.arch)
    if arch is None:
        raise UserError(f"unknown architecture {opts.arch!r}", hint="use x86_64 or aarch64")
    check_qcow2(opts.path)
    name = image_name(opts.path, opts.name)
    key = f"{name}.qcow2"
    api = api or ScalewayApi(opts.credentials.secret_key, opts.zone)
    api.poll_interval = opts.poll_interval
    project = opts.credentials.project
    if api.find_images(name, project):
        raise UserError(f"an image named {name} already exists in {opts.zone}", hint="use another --img-name")
    s3 = s3_client(opts.credentials, opts.zone)
    uploaded = False
    snapshot_id = ""
    try:
        upload(s3, opts.path, opts.bucket, key)
        uploaded = True
        log.info(f"importing s3://{opts.bucket}/{key} as a snapshot in {opts.zone}")
        snapshot_id = api.import_snapshot(opts.bucket, key, name, project)["id"]
        api.wait_snapshot(snapshot_id)
        log.info(f"snapshot {snapshot_id} available; creating the image {name}")
        image = api.create_image(name, snapshot_id, arch, project)
    except BaseException:
        _undo(api, s3, opts.bucket, key if uploaded else "", snapshot_id)
        raise
    if not opts.no_clean:
        _delete_object(s3, opts.bucket, key)
    log.info(f"image {name} created: {image['id']} in {opts.zone}")
    print(image["id"])
    return str(image["id"])


def _delete_object(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.delete_object(Bucket=bucket, Key=key)
        return True
    except Exception as exc:  # botocore errors
        log.warn(f"could not delete s3://{bucket}/{key} ({exc}): delete it yourself")
        return False


def _undo(api: ScalewayApi, s3: Any, bucket: str, key: str, snapshot_id: str) -> None:
    """Delete what this push made (after a failure or an interrupt)."""
    if snapshot_id:
        try:
            api.delete_snapshot(snapshot_id)
            log.info(f"deleted the snapshot {snapshot_id}")
        except (LinuxKitError, OSError) as exc:
            log.warn(f"could not delete the snapshot {snapshot_id} ({exc}): delete it yourself in {api.zone}")
    if key and _delete_object(s3, bucket, key):
        log.info(f"deleted s3://{bucket}/{key}")


# --- run ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    image: str
    credentials: Credentials
    zone: str
    instance_type: str
    name: str = ""
    clean: bool = False
    no_attach: bool = False
    data: str | None = None
    poll_interval: float = 5.0
    write: Callable[[str], None] = field(default=lambda text: console_write(text))


def find_image(api: ScalewayApi, name: str, project: str) -> str:
    """The ID of the image named ``name`` (or ``name`` itself when it is an image ID)."""
    images = api.find_images(name, project)
    if len(images) > 1:
        ids = ", ".join(str(i["id"]) for i in images)
        raise UserError(f"{len(images)} images are named {name} in {api.zone}: {ids}", hint="give the image's ID")
    if images:
        return str(images[0]["id"])
    if len(name) == 36 and name.count("-") == 4:
        return name
    raise UserError(f"no image named {name} in {api.zone}", hint="push one with: linuxkit push scaleway")


def run(opts: RunOptions, api: ScalewayApi | None = None) -> int:
    opts.credentials.check(need_access_key=False)
    api = api or ScalewayApi(opts.credentials.secret_key, opts.zone)
    api.poll_interval = opts.poll_interval
    project = opts.credentials.project
    image_id = find_image(api, opts.image, project)
    name = opts.name or opts.image
    log.info(f"creating server {name} ({opts.instance_type}) from image {image_id} in {opts.zone}")
    server = api.create_server(name, opts.instance_type, image_id, project)
    server_id = str(server["id"])
    try:  # a server that could not be started is deleted, whatever --clean says
        if opts.data is not None:
            api.set_user_data(server_id, opts.data)
        api.action(server_id, "poweron")
    except BaseException:
        _remove_server(api, server, running=False)
        raise
    running = True
    try:
        log.info(f"server {server_id} is booting")
        opts.write(
            f"console: scw instance server console {server_id} zone={opts.zone}  "
            f"(or the server's page on console.scaleway.com)\n"
        )
        if not opts.no_attach:
            wait_stopped(api, server_id)
            running = False
    finally:  # also on Ctrl-C
        if opts.clean:
            _remove_server(api, server, running)
        else:
            log.info(f"server {server_id} is left in {opts.zone} (no --clean)")
    return 0


def wait_stopped(api: ScalewayApi, server_id: str) -> None:
    """Until the server is stopped (powered off from inside) or gone."""
    log.info("waiting for the server to stop (Ctrl-C to stop waiting)")
    while True:
        try:
            state = api.get_server(server_id).get("state", "")
        except ScalewayError as exc:
            if exc.status == 404:
                return
            raise
        if state in ("stopped", "stopped in place"):
            log.info(f"server {server_id} is {state}")
            return
        api.sleep(api.poll_interval)


def _remove_server(api: ScalewayApi, server: dict[str, Any], running: bool) -> None:
    """Terminate a running server (deletes it with its volumes and IP); a stopped one (or one never powered on)
    is deleted, then its volumes (``terminate`` is refused on a stopped server)."""
    server_id = str(server["id"])
    volumes = [v for v in (server.get("volumes") or {}).values() if isinstance(v, dict) and v.get("id")]
    try:
        if running:
            api.action(server_id, "terminate")
            log.info(f"server {server_id} terminated")
            return
        api.delete_server(server_id)
        for volume in volumes:
            if volume.get("volume_type") == "sbs_volume":
                api.delete_block_volume(str(volume["id"]))
            else:
                api.delete_instance_volume(str(volume["id"]))
        log.info(f"server {server_id} and its {len(volumes)} volume(s) deleted")
    except (LinuxKitError, OSError) as exc:
        left = ", ".join([f"server {server_id}"] + [f"volume {v['id']}" for v in volumes])
        log.warn(f"clean-up failed ({exc}): delete {left} in {api.zone} yourself")
