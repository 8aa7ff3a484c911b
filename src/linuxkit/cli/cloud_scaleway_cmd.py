"""``linuxkit push scaleway`` and ``linuxkit run scaleway``: upstream's flags and environment variables (a flag,
else its variable, else the default), plus ``--project-id``, ``--bucket`` and ``--arch`` that today's API needs.
:mod:`linuxkit.cloud.scaleway` (and boto3, for the upload) is imported when the verb runs, never here."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UserError
from .cloud_gcp_cmd import user_data, value
from .common import CommonOptions

if TYPE_CHECKING:
    from ..cloud.scaleway import Credentials

DEFAULT_ZONE = "fr-par-1"
DEFAULT_INSTANCE_TYPE = "DEV1-S"

NAME_ENV = "SCW_IMAGE_NAME"  # non-standard (upstream's)
BUCKET_ENV = "SCW_BUCKET"  # non-standard
ZONE_ENV = "SCW_DEFAULT_ZONE"
ACCESS_KEY_ENV = "SCW_ACCESS_KEY"
SECRET_KEY_ENV = "SCW_SECRET_KEY"
PROJECT_ENV = "SCW_DEFAULT_PROJECT_ID"
ORGANIZATION_ENV = "SCW_DEFAULT_ORGANIZATION_ID"
INSTANCE_TYPE_ENV = "SCW_RUN_TYPE"  # non-standard (upstream's)

#: upstream's flags for its helper server (an ISO copied over SSH): meaningless with a direct import
HELPER_FLAGS = ("--ssh-key", "--instance-id", "--device-name", "--volume-size")


def _common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--access-key", default=None, help=f"access key of the Scaleway API key (${ACCESS_KEY_ENV})")
    p.add_argument("--secret-key", default=None, help=f"secret key of the Scaleway API key (${SECRET_KEY_ENV})")
    p.add_argument("--zone", default=None, help=f"Scaleway zone (${ZONE_ENV}; default {DEFAULT_ZONE}; par1 = fr-par-1)")
    p.add_argument("--project-id", default=None, help=f"Scaleway project ID (${PROJECT_ENV})")
    p.add_argument(
        "--organization-id",
        default=None,
        help=f"organization ID (${ORGANIZATION_ENV}): the project when --project-id is not given (its default project)",
    )


def push_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH", help="the QCOW2 disk to push (linuxkit build --format qcow2-efi)")
    _common_flags(p)
    p.add_argument("--img-name", default=None, help=f"image name (default: PATH's base without .qcow2; ${NAME_ENV})")
    p.add_argument(
        "--bucket", default=None, help=f"Object Storage bucket in the zone's region, required (${BUCKET_ENV})"
    )
    p.add_argument("--arch", default="x86_64", help="the image's architecture: x86_64 or aarch64 (default x86_64)")
    p.add_argument("--no-clean", action="store_true", help="keep the uploaded object in the bucket")
    for flag in HELPER_FLAGS:
        p.add_argument(flag, default=None, help=argparse.SUPPRESS)
    p.set_defaults(run="cloud_scaleway_cmd:push")


def run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", metavar="NAME", help="name (or ID) of an image pushed with linuxkit push scaleway")
    p.add_argument(
        "--instance-type",
        default=None,
        help=f"commercial type of the server (${INSTANCE_TYPE_ENV}; default {DEFAULT_INSTANCE_TYPE})",
    )
    p.add_argument("--instance-name", default="", help="name of the server (default: the image's name)")
    _common_flags(p)
    p.add_argument("--clean", action="store_true", help="delete the server (and its volumes) when done")
    p.add_argument("--no-attach", action="store_true", help="don't wait for the server to stop, return once booting")
    p.add_argument("--data", default=None, help="cloud-init user data string for the server (not with --data-file)")
    p.add_argument("--data-file", default=None, help="file of cloud-init user data (not with --data)")
    p.set_defaults(run="cloud_scaleway_cmd:run")


def _credentials(args: argparse.Namespace) -> Credentials:
    from ..cloud import scaleway

    return scaleway.Credentials(
        access_key=value(args.access_key, ACCESS_KEY_ENV),
        secret_key=value(args.secret_key, SECRET_KEY_ENV),
        project=value(args.project_id, PROJECT_ENV) or value(args.organization_id, ORGANIZATION_ENV),
    )


def zone(args: argparse.Namespace) -> str:
    from ..cloud.scaleway_api import zone_name

    return zone_name(value(args.zone, ZONE_ENV, DEFAULT_ZONE))


def push(args: argparse.Namespace, common: CommonOptions) -> int:
    from ..cloud import scaleway

    given = [f for f in HELPER_FLAGS if getattr(args, f[2:].replace("-", "_")) is not None]
    if given:
        raise UserError(
            f"{', '.join(given)}: upstream's helper server is not used here",
            hint="the QCOW2 is uploaded to --bucket and imported as a snapshot directly (docs/platform-scaleway.md)",
        )
    creds = _credentials(args)
    scaleway.push(
        scaleway.PushOptions(
            path=Path(args.path),
            credentials=creds,
            zone=zone(args),
            bucket=value(args.bucket, BUCKET_ENV),
            name=value(args.img_name, NAME_ENV),
            arch=args.arch,
            no_clean=args.no_clean,
        )
    )
    return 0


def run(args: argparse.Namespace, common: CommonOptions) -> int:
    from ..cloud import scaleway

    creds = _credentials(args)
    return scaleway.run(
        scaleway.RunOptions(
            image=args.image,
            credentials=creds,
            zone=zone(args),
            instance_type=value(args.instance_type, INSTANCE_TYPE_ENV, DEFAULT_INSTANCE_TYPE),
            name=args.instance_name,
            clean=args.clean,
            no_attach=args.no_attach,
            data=user_data(args.data, args.data_file),
        )
    )
