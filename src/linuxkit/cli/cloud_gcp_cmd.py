"""``linuxkit push gcp`` and ``linuxkit run gcp``: upstream's flags and environment variables.

A value comes from its flag when given, else from its environment variable, else the default (upstream's
``getStringValue``). The Google SDKs are imported by :mod:`linuxkit.cloud.gcp` when the verb runs, never here.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import UserError
from .common import CommonOptions

DEFAULT_ZONE = "europe-west1-d"
DEFAULT_MACHINE = "g1-small"

ZONE_ENV = "CLOUDSDK_COMPUTE_ZONE"
MACHINE_ENV = "CLOUDSDK_COMPUTE_MACHINE"  # non-standard (upstream's)
KEYS_ENV = "CLOUDSDK_COMPUTE_KEYS"  # non-standard
PROJECT_ENV = "CLOUDSDK_CORE_PROJECT"
BUCKET_ENV = "CLOUDSDK_IMAGE_BUCKET"  # non-standard
FAMILY_ENV = "CLOUDSDK_IMAGE_FAMILY"  # non-standard
PUBLIC_ENV = "CLOUDSDK_IMAGE_PUBLIC"  # non-standard
NAME_ENV = "CLOUDSDK_IMAGE_NAME"  # non-standard


def value(flag: str | None, env: str, default: str = "") -> str:
    """The flag when given, else ``$env`` when set and not empty, else ``default``."""
    if flag:
        return flag
    return os.environ.get(env, "") or default


def flag_on(flag: bool, env: str) -> bool:
    """A boolean flag, or its variable: anything but empty, ``0``, ``false`` and ``FALSE`` is on (upstream)."""
    return flag or os.environ.get(env, "0") not in ("", "0", "false", "FALSE")


def _common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keys", default=None, help=f"path to a service account JSON key file (${KEYS_ENV})")
    p.add_argument("--project", default=None, help=f"GCP project name (${PROJECT_ENV})")


def push_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH", help="the .img.tar.gz to upload (linuxkit build --format gcp)")
    _common_flags(p)
    p.add_argument("--bucket", default=None, help=f"GCS bucket to upload to, required (${BUCKET_ENV})")
    p.add_argument("--public", action="store_true", help=f"make the file on GCS public-read (${PUBLIC_ENV})")
    p.add_argument("--family", default=None, help=f"image family: its name points to its newest image (${FAMILY_ENV})")
    p.add_argument(
        "--img-name",
        default=None,
        help=f"name of the file in GCS and of the image (default: PATH's base without .img.tar.gz; ${NAME_ENV})",
    )
    p.add_argument("--nested-virt", action="store_true", help="enable nested virtualization for the image")
    p.add_argument("--uefi-compatible", action="store_true", help="mark the image UEFI_COMPATIBLE (needed for a vTPM)")
    p.set_defaults(run="cloud_gcp_cmd:push")


def run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", metavar="IMAGE", help="name of an image pushed with linuxkit push gcp")
    p.add_argument("--name", default="", help="instance name (default: the image's)")
    p.add_argument("--zone", default=None, help=f"GCP zone (${ZONE_ENV}; default {DEFAULT_ZONE})")
    p.add_argument("--machine", default=None, help=f"GCP machine type (${MACHINE_ENV}; default {DEFAULT_MACHINE})")
    _common_flags(p)
    p.add_argument("--skip-cleanup", action="store_true", help="don't remove the instance when done")
    p.add_argument("--nested-virt", action="store_true", help="enable nested virtualization")
    p.add_argument("--vtpm", action="store_true", help="enable a vTPM device (the image must be UEFI compatible)")
    p.add_argument("--data", default=None, help="user data string for the instance (not with --data-file)")
    p.add_argument("--data-file", default=None, help="file of user data for the instance (not with --data)")
    p.add_argument(
        "--disk", action="append", default=[], help="extra disk [file=]NAME[,size=1G] created for the instance"
    )
    p.set_defaults(run="cloud_gcp_cmd:run")


def push(args: argparse.Namespace, common: CommonOptions) -> int:
    from ..cloud import gcp

    gcp.push(
        gcp.PushOptions(
            path=Path(args.path),
            project=value(args.project, PROJECT_ENV),
            bucket=value(args.bucket, BUCKET_ENV),
            name=value(args.img_name, NAME_ENV),
            family=value(args.family, FAMILY_ENV),
            public=flag_on(args.public, PUBLIC_ENV),
            nested_virt=args.nested_virt,
            uefi=args.uefi_compatible,
            keys=value(args.keys, KEYS_ENV),
        )
    )
    return 0


def user_data(data: str | None, data_file: str | None) -> str | None:
    if data is not None and data_file is not None:
        raise UserError("cannot specify both --data and --data-file")
    if data_file is None:
        return data
    try:
        return Path(data_file).read_text()
    except OSError as exc:
        raise UserError(f"unable to read metadata file {data_file}: {exc.strerror or exc}") from exc


def run(args: argparse.Namespace, common: CommonOptions) -> int:
    from ..cloud import gcp
    from ..run.disks import parse_disk

    disks = tuple((d.path, d.size_mb) for d in map(parse_disk, args.disk))
    return gcp.run(
        gcp.RunOptions(
            image=args.image,
            project=value(args.project, PROJECT_ENV),
            zone=value(args.zone, ZONE_ENV, DEFAULT_ZONE),
            machine=value(args.machine, MACHINE_ENV, DEFAULT_MACHINE),
            name=args.name,
            keys=value(args.keys, KEYS_ENV),
            skip_cleanup=args.skip_cleanup,
            nested_virt=args.nested_virt,
            vtpm=args.vtpm,
            data=user_data(args.data, args.data_file),
            disks=disks,
        )
    )
