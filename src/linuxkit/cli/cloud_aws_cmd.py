"""``linuxkit push aws`` and ``linuxkit run aws``: upstream's flags and environment variables.

This module is imported when one of the two verbs is parsed; boto3 only when the verb runs (in
:mod:`linuxkit.cloud.aws`), so ``--help`` and flag errors do not need the ``aws`` extra.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cloud.aws import PushOptions, default_name, env_int_or, env_or
from ..cloud.aws import push as push_image
from ..cloud.aws_run import RunOptions
from ..cloud.aws_run import run as run_instance
from ..errors import UserError
from .common import CommonOptions

DEFAULT_TIMEOUT = 600
TIMEOUT_VAR = "LINUXKIT_UPLOAD_TIMEOUT"
BUCKET_VAR = "AWS_BUCKET"
MACHINE_VAR, DEFAULT_MACHINE = "AWS_MACHINE", "t2.micro"
DISK_SIZE_VAR = "AWS_DISK_SIZE"
DISK_TYPE_VAR, DEFAULT_DISK_TYPE = "AWS_DISK_TYPE", "gp2"
ZONE_VAR, DEFAULT_ZONE = "AWS_ZONE", "a"


def _bool_flag(p: argparse.ArgumentParser, name: str, help: str) -> None:
    p.add_argument(name, action="store_true", help=help)


def push_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH", help="the raw disk image (linuxkit build -f aws, raw-bios or raw-efi)")
    p.add_argument(
        "--timeout",
        type=int,
        default=0,
        help=f"upload timeout in seconds (env {TIMEOUT_VAR}, default {DEFAULT_TIMEOUT})",
    )
    p.add_argument(
        "--bucket",
        default="",
        help=f"S3 bucket to upload to, then ImportSnapshot (needs the vmimport role; env {BUCKET_VAR}); "
        "without it the disk is written straight into an EBS snapshot with the EBS direct APIs",
    )
    p.add_argument(
        "--img-name",
        default="",
        help="the name of the AMI (and of the S3 object with --bucket); default: PATH's base name without extension",
    )
    _bool_flag(p, "--ena", "enable ENA networking")
    p.add_argument("--sriov", default="", help="SR-IOV network support: 'simple' enables 82599 VF networking")
    _bool_flag(p, "--uefi", "register with UEFI boot mode (default: the mode the disk's partition table implies)")
    _bool_flag(p, "--tpm", "enable a TPM 2.0 device (needs UEFI boot)")
    p.add_argument("--arch", default="x86_64", help="the AMI's architecture: x86_64 or arm64 (default x86_64)")
    p.set_defaults(run="cloud_aws_cmd:push")


def run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="the name (or ami- id) of an image pushed with 'linuxkit push aws'")
    p.add_argument(
        "--machine", default=DEFAULT_MACHINE, help=f"AWS machine type (env {MACHINE_VAR}, default {DEFAULT_MACHINE})"
    )
    p.add_argument(
        "--disk-size", type=int, default=0, help=f"size in GB of an extra EBS disk, 0 for none (env {DISK_SIZE_VAR})"
    )
    p.add_argument(
        "--disk-type",
        default=DEFAULT_DISK_TYPE,
        help=f"AWS disk type (env {DISK_TYPE_VAR}, default {DEFAULT_DISK_TYPE})",
    )
    p.add_argument(
        "--zone",
        default=DEFAULT_ZONE,
        help=f"availability zone letter, appended to the region (env {ZONE_VAR}, default {DEFAULT_ZONE})",
    )
    p.add_argument("--security-group", default="", help="security group ID")
    p.add_argument("--keyname", default="", help="name of an EC2 key pair for SSH")
    p.add_argument("--data", default="", help="string of metadata (user data) to pass to the instance")
    p.add_argument("--data-file", default="", help="file of metadata (user data) to pass to the instance")
    p.set_defaults(run="cloud_aws_cmd:run")


def push_options(args: argparse.Namespace) -> PushOptions:
    path = Path(args.path)
    return PushOptions(
        path=path,
        name=args.img_name or default_name(path),
        bucket=env_or(BUCKET_VAR, args.bucket, ""),
        timeout=env_int_or(TIMEOUT_VAR, args.timeout, DEFAULT_TIMEOUT),
        ena=args.ena,
        sriov=args.sriov,
        uefi=args.uefi,
        tpm=args.tpm,
        arch=args.arch,
    )


def push(args: argparse.Namespace, common: CommonOptions) -> int:
    push_image(push_options(args))
    return 0


def user_data(data: str, data_file: str) -> str:
    """``--data`` or the contents of ``--data-file`` (not both)."""
    if data and data_file:
        raise UserError("cannot specify both --data and --data-file")
    if data_file:
        try:
            return Path(data_file).read_text()
        except OSError as exc:
            raise UserError(f"unable to read metadata file: {exc}") from exc
    return data


def run_options(args: argparse.Namespace) -> RunOptions:
    return RunOptions(
        name=args.name,
        machine=env_or(MACHINE_VAR, args.machine, DEFAULT_MACHINE),
        disk_size=env_int_or(DISK_SIZE_VAR, args.disk_size, 0),
        disk_type=env_or(DISK_TYPE_VAR, args.disk_type, DEFAULT_DISK_TYPE),
        zone=env_or(ZONE_VAR, args.zone, DEFAULT_ZONE),
        security_group=args.security_group,
        data=user_data(args.data, args.data_file),
        keyname=args.keyname,
    )


def run(args: argparse.Namespace, common: CommonOptions) -> int:
    return run_instance(run_options(args), out=sys.stdout)
