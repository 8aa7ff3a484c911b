"""``linuxkit push aws``: a raw disk image → an EBS snapshot → an AMI.

The default path writes the snapshot with the EBS direct APIs (:mod:`.ebs_upload`); with a bucket it takes
upstream's path: S3 ``PutObject`` (multipart) → ``ImportSnapshot`` (needs the ``vmimport`` service role).
Both register the AMI the same way (:mod:`.aws_image`). Credentials, region and endpoint come from boto3's
standard chain, so ``AWS_ENDPOINT_URL`` (an emulator, a private endpoint) is honoured.

boto3 is imported here only, through :func:`linuxkit.cloud.extras.require`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import log
from ..errors import LinuxKitError, UserError
from . import aws_image
from .ebs_upload import DEFAULT_WORKERS, Deadline, client_error_text, delete_snapshot, upload_snapshot
from .extras import require
from .polling import poll_delays

#: where boto3 looks for credentials (named in the error when it finds none)
CREDENTIAL_SOURCES = (
    "AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN), AWS_PROFILE, "
    "AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials), AWS_CONFIG_FILE (default ~/.aws/config: "
    "profiles, SSO, credential_process), AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, "
    "the ECS container and EC2 instance metadata credentials"
)


class Aws:
    """boto3's session and the clients of one command (retries: botocore's standard mode, which retries
    throttling, 5xx and connection errors with exponential backoff)."""

    def __init__(self, verb: str, *, pool: int = DEFAULT_WORKERS + 2, attempts: int = 8) -> None:
        boto3 = require("aws", "boto3", verb=verb)
        config = require("aws", "botocore.config", verb=verb)
        # boto3 reads AWS_DEFAULT_REGION; upstream's Go SDK (and its docs) AWS_REGION: both are honoured
        self.session = boto3.session.Session(region_name=os.environ.get("AWS_REGION") or None)
        if not self.session.region_name:
            raise UserError(
                "no AWS region is set",
                hint="set AWS_REGION (or AWS_DEFAULT_REGION), or 'region' in your profile of ~/.aws/config "
                "(AWS_CONFIG_FILE)",
            )
        if self.session.get_credentials() is None:
            raise UserError(
                "no AWS credentials found",
                hint=f"boto3 looked at: {CREDENTIAL_SOURCES}",
            )
        self.region: str = self.session.region_name
        self._config = config.Config(retries={"mode": "standard", "max_attempts": attempts}, max_pool_connections=pool)

    def client(self, service: str) -> Any:
        return self.session.client(service, config=self._config)


@contextmanager
def sdk_errors(verb: str) -> Iterator[None]:
    """botocore's errors (an API error, no connection to the endpoint, a bad answer) as a
    :class:`LinuxKitError` naming the verb, instead of an internal error."""
    try:
        yield
    except Exception as exc:
        if type(exc).__module__.split(".")[0] not in ("botocore", "boto3", "s3transfer"):
            raise
        raise LinuxKitError(f"{verb}: {client_error_text(exc)}") from exc


@dataclass(frozen=True)
class PushOptions:
    path: Path
    name: str
    bucket: str
    timeout: int
    ena: bool
    sriov: str
    uefi: bool
    tpm: bool
    arch: str
    workers: int = DEFAULT_WORKERS


def default_name(path: Path) -> str:
    """Upstream's AMI name: the file's base name without its extension."""
    return path.stem if path.suffix else path.name


def check_options(opts: PushOptions) -> tuple[str, str]:
    """The checks that need no AWS: the file, the name, the boot mode and architecture; returns both."""
    if not opts.path.is_file():
        raise UserError(f"{opts.path}: no such file", hint="give the raw disk image built with 'linuxkit build -f aws'")
    if opts.sriov not in ("", "simple"):
        raise UserError(f"--sriov {opts.sriov}: the only value AWS knows is 'simple'")
    if opts.timeout <= 0:
        raise UserError(f"--timeout {opts.timeout}: must be a positive number of seconds")
    if opts.workers < 1:
        raise UserError("at least one upload worker is needed")
    aws_image.check_image_name(opts.name)
    if opts.tpm and not opts.uefi and not aws_image.read_disk_boot(opts.path).uefi:
        raise UserError("cannot use --tpm without UEFI boot", hint="add --uefi, or push a raw-efi image")
    mode = aws_image.boot_mode(aws_image.read_disk_boot(opts.path), uefi=opts.uefi, path=opts.path)
    return mode, aws_image.architecture(opts.arch)


def push(opts: PushOptions) -> str:
    """Push ``opts.path`` and register it; returns the AMI id."""
    mode, arch = check_options(opts)
    with sdk_errors("push aws"):
        return _push(opts, mode, arch)


def _push(opts: PushOptions, mode: str, arch: str) -> str:
    aws = Aws("push aws")
    ec2 = aws.client("ec2")
    deadline = Deadline(opts.timeout, what="push aws")
    size = opts.path.stat().st_size
    log.info(f"pushing {opts.path} ({size / 2**20:.1f} MiB) to AWS {aws.region} as {opts.name} ({mode}, {arch})")
    with log.progress() as bar:
        task = bar.add_task(f"{opts.path.name}", total=size)

        def advance(n: int) -> None:
            bar.advance(task, n)

        if opts.bucket:
            snapshot_id = _import_via_s3(aws.client("s3"), ec2, opts, deadline, advance)
        else:
            snapshot_id = upload_snapshot(
                aws.client("ebs"),
                ec2,
                opts.path,
                description=f"LinuxKit: {opts.name}",
                tags={"Name": opts.name},
                deadline=deadline,
                workers=opts.workers,
                progress=advance,
            )
    log.info(f"snapshot {snapshot_id} completed")
    return register(ec2, opts, snapshot_id, mode=mode, arch=arch)


def register(ec2: Any, opts: PushOptions, snapshot_id: str, *, mode: str, arch: str) -> str:
    """``RegisterImage``; when it fails the snapshot is deleted."""
    params = aws_image.register_image_params(
        name=opts.name, snapshot_id=snapshot_id, mode=mode, arch=arch, ena=opts.ena, sriov=opts.sriov, tpm=opts.tpm
    )
    try:
        image_id: str = ec2.register_image(**params)["ImageId"]
    except Exception as exc:  # botocore's errors (the SDK is not imported here)
        delete_snapshot(ec2, snapshot_id, exc)
        raise LinuxKitError(f"registering the image {opts.name}: {client_error_text(exc)}") from exc
    except BaseException as exc:
        delete_snapshot(ec2, snapshot_id, exc)
        raise
    log.info(f"Created AMI: {image_id}")
    return image_id


def s3_key(opts: PushOptions) -> str:
    """Upstream's object name: the image name plus the file's extension."""
    return opts.name + opts.path.suffix


def _import_via_s3(s3: Any, ec2: Any, opts: PushOptions, deadline: Deadline, advance: Any) -> str:
    """Upstream's path: upload to ``s3://BUCKET/NAME.EXT``, ``ImportSnapshot`` from it, wait. The object stays
    in the bucket when the push succeeds (as upstream) and is deleted when it fails."""
    key = s3_key(opts)
    try:
        s3.upload_file(
            str(opts.path),
            opts.bucket,
            key,
            ExtraArgs={"ContentType": "application/octet-stream"},
            Callback=advance,
        )
        deadline.check()
        return import_snapshot(ec2, opts, key, deadline)
    except BaseException as exc:
        try:
            s3.delete_object(Bucket=opts.bucket, Key=key)
        except Exception as cleanup:
            log.warn(f"s3://{opts.bucket}/{key} is left behind: deleting it failed ({client_error_text(cleanup)})")
        else:
            log.info(f"deleted s3://{opts.bucket}/{key}")
        if isinstance(exc, Exception) and not isinstance(exc, LinuxKitError):
            raise LinuxKitError(f"push aws --bucket {opts.bucket}: {client_error_text(exc)}") from exc
        raise


def import_snapshot(ec2: Any, opts: PushOptions, key: str, deadline: Deadline) -> str:
    """``ImportSnapshot`` of ``s3://BUCKET/KEY`` (a raw disk), polled until completed; the snapshot id."""
    task_id: str = ec2.import_snapshot(
        Description=f"LinuxKit: {opts.name}",
        DiskContainer={
            "Description": f"LinuxKit: {opts.name} disk",
            "Format": "raw",
            "UserBucket": {"S3Bucket": opts.bucket, "S3Key": key},
        },
    )["ImportTaskId"]
    log.info(f"import task {task_id} started")
    for delay in poll_delays(1.0, 30.0):
        tasks = ec2.describe_import_snapshot_tasks(ImportTaskIds=[task_id]).get("ImportSnapshotTasks", [])
        if not tasks:
            raise LinuxKitError(f"import task {task_id} is not listed by DescribeImportSnapshotTasks")
        detail = tasks[0].get("SnapshotTaskDetail", {})
        status = detail.get("Status", "")
        if status == "completed":
            snapshot_id = detail.get("SnapshotId")
            if not snapshot_id:
                raise LinuxKitError(f"import task {task_id} completed without a snapshot id")
            return str(snapshot_id)
        if status in ("deleted", "deleting", "error"):
            raise LinuxKitError(f"import task {task_id} {status}: {detail.get('StatusMessage', '')}".rstrip(": "))
        log.debug(f"import task {task_id}: {status} {detail.get('Progress', '0')}%")
        deadline.sleep(delay)
    raise AssertionError("unreachable")


def env_or(name: str, value: str, default: str) -> str:
    """Upstream's ``getStringValue``: the environment variable, overridden by a flag not at its default."""
    result = os.environ.get(name, "")
    if value and value != default:
        result = value
    return result or default


def env_int_or(name: str, value: int, default: int) -> int:
    """Upstream's ``getIntValue``: as :func:`env_or` for numbers (a malformed variable is an error)."""
    result = 0
    if name in os.environ:
        try:
            result = int(os.environ[name])
        except ValueError:
            raise UserError(f"{name}={os.environ[name]!r} is not a number") from None
    if value and value != default:
        result = value
    return result or default
