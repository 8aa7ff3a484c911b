"""``linuxkit push gcp`` and ``linuxkit run gcp``: upload a ``.img.tar.gz`` to Cloud Storage and make a Compute
Engine image of it; start an instance from an image, print its serial console, delete it.

The SDKs (google-auth, google-cloud-storage, the ``gcp`` extra) are imported by these functions only, through
:func:`.extras.require`. Cloud Storage honours ``STORAGE_EMULATOR_HOST`` (google-cloud-storage's own variable);
the Compute API's base URL is ``CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE`` (gcloud's) when set.
"""

from __future__ import annotations

import os
import re
import tarfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import log
from ..errors import LinuxKitError, UserError
from .extras import require
from .gcp_compute import (
    Compute,
    ComputeError,
    disk_body,
    endpoint,
    image_body,
    image_features,
    instance_body,
    size_gb,
)
from .gcs_upload import ResumableUpload, crc32c_b64
from .polling import console_write

SUFFIX = ".img.tar.gz"
SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write", "https://www.googleapis.com/auth/compute")
#: Compute Engine resource names (images, instances, disks): RFC 1035 labels
NAME_RE = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
KEYS_ENV = "CLOUDSDK_COMPUTE_KEYS"
ADC_FILE = "~/.config/gcloud/application_default_credentials.json"


# --- credentials ---------------------------------------------------------------------------------------------


def credentials(keys: str, verb: str) -> Any:
    """Credentials for Cloud Storage and Compute: the service account key file ``keys`` (``--keys``), else
    Application Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's ADC file, the metadata server)."""
    require("gcp", "google.auth.transport.requests", verb=verb)
    google_auth = require("gcp", "google.auth", verb=verb)
    exceptions = require("gcp", "google.auth.exceptions", verb=verb)
    if keys:
        service_account = require("gcp", "google.oauth2.service_account", verb=verb)
        try:
            return service_account.Credentials.from_service_account_file(keys, scopes=list(SCOPES))
        except OSError as exc:
            raise UserError(f"cannot read the service account key file {keys}: {exc.strerror or exc}") from exc
        except (ValueError, KeyError) as exc:
            raise UserError(
                f"{keys} is not a service account JSON key: {exc}",
                hint="create one with: gcloud iam service-accounts keys create FILE --iam-account=ACCOUNT",
            ) from exc
    try:
        creds, _ = google_auth.default(scopes=list(SCOPES))
    except exceptions.DefaultCredentialsError as exc:
        raise UserError(
            "no Google Cloud credentials found: looked at --keys, $"
            f"{KEYS_ENV}, $GOOGLE_APPLICATION_CREDENTIALS, {ADC_FILE} and the GCE metadata server",
            hint="pass --keys SERVICE-ACCOUNT.json, or run: gcloud auth application-default login",
        ) from exc
    return creds


def authorized_session(creds: Any, verb: str) -> Any:
    transport = require("gcp", "google.auth.transport.requests", verb=verb)
    return transport.AuthorizedSession(creds)


def compute_client(creds: Any, project: str, verb: str) -> Compute:
    return Compute(http=authorized_session(creds, verb), project=project, base=endpoint())


def check_name(name: str, what: str, flag: str) -> None:
    if not NAME_RE.fullmatch(name):
        raise UserError(
            f"{what} name {name!r} is not a valid Compute Engine name (lower-case letters, digits and '-', "
            "starting with a letter, at most 63 characters)",
            hint=f"choose one with {flag}",
        )


# --- push ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushOptions:
    path: Path
    project: str
    bucket: str
    name: str = ""
    family: str = ""
    public: bool = False
    nested_virt: bool = False
    uefi: bool = False
    keys: str = ""


def image_name(path: Path, name: str) -> str:
    """``--img-name``, else the file's base name without ``.img.tar.gz`` (as upstream)."""
    return name or path.name.removesuffix(SUFFIX)


def check_archive(path: Path) -> None:
    """The file is what Compute Engine imports: a gzip'd tar whose (first) member is ``disk.raw``."""
    if not path.is_file():
        raise UserError(f"{path}: no such file", hint="build one with: linuxkit build --format gcp FILE.yml")
    try:
        with tarfile.open(path, "r:gz") as tar:
            first = tar.next()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UserError(
            f"{path} is not a .tar.gz: {exc}", hint="build one with: linuxkit build --format gcp FILE.yml"
        ) from exc
    if first is None or first.name.removeprefix("./") != "disk.raw":
        raise UserError(
            f"{path} does not start with disk.raw, which Compute Engine imports",
            hint="build one with: linuxkit build --format gcp FILE.yml",
        )


def push(opts: PushOptions) -> str:
    """Upload, then create the image (replacing one of the same name, as upstream); returns the image name. When
    the image cannot be made the uploaded object is deleted."""
    verb = "push gcp"
    name = image_name(opts.path, opts.name)
    if not opts.project:
        raise UserError("the project name is not specified", hint="use --project or $CLOUDSDK_CORE_PROJECT")
    if not opts.bucket:
        raise UserError("please specify the bucket to use", hint="use --bucket or $CLOUDSDK_IMAGE_BUCKET")
    check_name(name, "image", "--img-name")
    if opts.family:
        check_name(opts.family, "family", "--family")
    check_archive(opts.path)
    creds = credentials(opts.keys, verb)
    compute = compute_client(creds, opts.project, verb)
    blob = upload(creds, opts, name + SUFFIX, verb)
    source = f"https://storage.googleapis.com/{opts.bucket}/{name}{SUFFIX}"
    try:
        if compute.delete_image(name):
            log.info(f"deleted the existing image {name}")
        log.info(f"creating image {name}")
        compute.insert_image(image_body(name, source, family=opts.family, nested_virt=opts.nested_virt, uefi=opts.uefi))
    except BaseException:
        _undo_image(compute, name)
        _delete_blob(blob, opts.bucket)
        raise
    log.info(f"image {name} created")
    return name


def _undo_image(compute: Compute, name: str) -> None:
    """A failed insert may leave an image in state FAILED: delete it (say so when that fails too)."""
    try:
        compute.delete_image(name)
    except (LinuxKitError, OSError) as exc:
        log.warn(f"the image {name} may be left in project {compute.project} (delete it: {exc})")


def _delete_blob(blob: Any, bucket: str) -> None:
    try:
        blob.delete()
        log.info(f"deleted gs://{bucket}/{blob.name}")
    except Exception as exc:  # the SDK's errors have no common base but Exception
        log.warn(f"gs://{bucket}/{blob.name} is left in the bucket (delete it: {exc})")


def upload(creds: Any, opts: PushOptions, object_name: str, verb: str) -> Any:
    """Upload ``opts.path`` as ``object_name`` with a resumable upload; returns the blob. Nothing is left when it
    fails (the session is cancelled)."""
    storage = require("gcp", "google.cloud.storage", verb=verb)
    crc32c = require("gcp", "google_crc32c", verb=verb)
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        auth_creds = require("gcp", "google.auth.credentials", verb=verb)
        creds = auth_creds.AnonymousCredentials()  # the emulator takes no credentials (as the SDK does there)
    client = storage.Client(project=opts.project, credentials=creds)
    blob = client.bucket(opts.bucket).blob(object_name)
    size = opts.path.stat().st_size
    log.info(f"uploading {opts.path} to gs://{opts.bucket}/{object_name}")
    try:
        session_url = blob.create_resumable_upload_session(
            content_type="application/gzip", size=size, predefined_acl="publicRead" if opts.public else None
        )
    except Exception as exc:  # google.api_core.exceptions.GoogleAPICallError and transport errors
        raise LinuxKitError(
            f"cannot start the upload to gs://{opts.bucket}: {exc}", hint="check the bucket's name and your access"
        ) from exc
    started = time.monotonic()
    with opts.path.open("rb") as source, log.progress() as bars:
        task = bars.add_task(f"gs://{opts.bucket}/{object_name}", total=size)
        transfer = ResumableUpload(
            http=authorized_session(creds, verb),
            session_url=session_url,
            source=source,
            size=size,
            on_progress=lambda done: bars.update(task, completed=done),
        )
        try:
            result = transfer.run()
        except BaseException:
            transfer.cancel()
            raise
        expected = crc32c_b64(source, crc32c.extend)
    if result.get("crc32c") and result["crc32c"] != expected:
        _delete_blob(blob, opts.bucket)
        raise LinuxKitError(f"gs://{opts.bucket}/{object_name} does not have the file's CRC32C: upload corrupted")
    seconds = time.monotonic() - started
    log.info(f"uploaded {size / 1e6:.1f} MB in {seconds:.1f}s")
    print(f"gs://{opts.bucket}/{object_name}")
    return blob


# --- run -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    image: str
    project: str
    zone: str
    machine: str
    name: str = ""
    keys: str = ""
    skip_cleanup: bool = False
    nested_virt: bool = False
    vtpm: bool = False
    data: str | None = None
    #: extra disks: (name, size in MB)
    disks: Sequence[tuple[str, int]] = ()
    poll_interval: float = 1.0
    write: Callable[[str], None] = field(default=lambda text: console_write(text))


STOPPED = frozenset({"STOPPING", "STOPPED", "SUSPENDED", "TERMINATED"})
#: how many times the serial port may answer 400 (not ready) before that is an error
NOT_READY_POLLS = 300


def run(opts: RunOptions) -> int:
    """Create the instance (replacing one of the same name, as upstream), print its serial console until it
    stops (or Ctrl-C), then delete it unless ``skip_cleanup`` (also after Ctrl-C, which then ends the verb)."""
    verb = "run gcp"
    name = opts.name or opts.image
    if not opts.project:
        raise UserError("the project name is not specified", hint="use --project or $CLOUDSDK_CORE_PROJECT")
    check_name(name, "instance", "--name")
    creds = credentials(opts.keys, verb)
    compute = compute_client(creds, opts.project, verb)
    compute.poll_interval = opts.poll_interval
    try:
        image = compute.get_image(opts.image)
    except ComputeError as exc:
        if exc.status == 404:
            raise UserError(
                f"no image {opts.image} in project {opts.project}", hint="push one with: linuxkit push gcp"
            ) from exc
        raise
    uefi, vmx = image_features(image)
    if opts.vtpm and not uefi:
        raise UserError("cannot use vTPM without UEFI_COMPATIBLE image", hint="push it with --uefi-compatible")
    if opts.nested_virt and not vmx:
        raise UserError("cannot use nested virtualization without enable-vmx image", hint="push it with --nested-virt")
    if compute.delete_instance(opts.zone, name):
        log.info(f"deleted the existing instance {name}")
    disks: list[str] = []
    started = False
    try:
        for i, (disk, size_mb) in enumerate(opts.disks):
            disk_name = disk or f"{name}-disk-{i}"
            log.info(f"creating disk {disk_name}")
            compute.insert_disk(opts.zone, disk_body(disk_name, size_gb(size_mb), vtpm=opts.vtpm))
            disks.append(disk_name)
        log.info(f"creating instance {name} from image {opts.image} (type: {opts.machine} in {opts.zone})")
        body = instance_body(
            name,
            opts.image,
            opts.zone,
            opts.machine,
            disks=disks,
            user_data=opts.data,
            nested_virt=opts.nested_virt,
            vtpm=opts.vtpm,
        )
        started = True  # from here the instance may exist, and owns the disks (auto-delete)
        compute.insert_instance(opts.zone, body)
        log.info("instance created")
        stream_serial(compute, opts.zone, name, opts.write, opts.poll_interval)
    finally:  # also on Ctrl-C (exit 130 after the clean-up)
        _clean_up(compute, opts, name, disks, started)
    return 0


def _clean_up(compute: Compute, opts: RunOptions, name: str, disks: Sequence[str], started: bool) -> None:
    if opts.skip_cleanup:
        if started:
            log.info(f"instance {name} is left running in {opts.zone} (--skip-cleanup)")
        return
    try:
        deleted = started and compute.delete_instance(opts.zone, name)
        if deleted:
            log.info(f"instance {name} deleted")
        for disk in disks if not deleted else ():
            compute.delete_disk(opts.zone, disk)
            log.info(f"disk {disk} deleted")
    except (LinuxKitError, OSError) as exc:
        left = ", ".join([f"instance {name}"] * started + [f"disk {d}" for d in disks])
        log.warn(f"clean-up failed ({exc}): delete {left} in {opts.zone} yourself")


def stream_serial(compute: Compute, zone: str, name: str, write: Callable[[str], None], interval: float) -> None:
    """Print the instance's serial port 1 until it stops (``instances.getSerialPortOutput``: ``start`` is the
    byte offset to read from, ``next`` the one to ask for next; the instance's status is checked when no new
    output came)."""
    start = 0
    last_round = False
    not_ready = 0
    while True:
        try:
            out = compute.serial_output(zone, name, start)
        except ComputeError as exc:
            if exc.status == 400 and not_ready < NOT_READY_POLLS:  # not ready yet
                not_ready += 1
                compute.sleep(interval)
                continue
            if exc.status == 503:  # the instance has gone
                return
            raise
        contents = str(out.get("contents", ""))
        if contents:
            write(contents)
        start = int(out.get("next", start))
        if last_round:
            return
        if not contents and compute.get_instance(zone, name).get("status") in STOPPED:
            last_round = True  # read what came in between once more, then stop
            continue
        compute.sleep(interval)
