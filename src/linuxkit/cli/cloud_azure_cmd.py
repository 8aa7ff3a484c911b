"""``linuxkit push azure`` and ``linuxkit run azure``: upstream's flags (push: ``--resource-group``,
``--storage-account``; run: ``--resourceGroupName``, ``--location``, ``--accountName``) and ours.

Imported when one of the two verbs is selected; the Azure SDK only when the verb runs (through
:func:`linuxkit.cloud.extras.require`, which names the ``azure`` extra if it is missing).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from .common import CommonOptions

_ENV = (
    "environment: AZURE_SUBSCRIPTION_ID, AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET (a service "
    "principal, as upstream); AZURE_STORAGE_CONNECTION_STRING (upload with this storage account, e.g. Azurite); "
    "AZURE_RESOURCE_MANAGER_ENDPOINT (another Resource Manager than https://management.azure.com)"
)


def _load_sdk(verb: str) -> None:
    from ..cloud.extras import require

    for module in ("azure.storage.blob", "azure.identity", "azure.mgmt.compute"):
        require("azure", module, verb=verb)


def push_flags(p: argparse.ArgumentParser) -> None:
    p.description = "Upload a fixed VHD into a page blob and create a managed image from it. " + _ENV
    p.add_argument("path", metavar="PATH.vhd", help="fixed VHD (linuxkit build -format vhd)")
    p.add_argument("--resource-group", default="", help="resource group of the storage account and image")
    p.add_argument("--storage-account", default="", help="name of the storage account")
    p.add_argument("--container", default="linuxkitcontainer", help="blob container (default linuxkitcontainer)")
    p.add_argument("--blob", default="", help="blob name (default: the file's name)")
    p.add_argument("--img-name", default="", help="image name (default: the file's name without .vhd)")
    p.add_argument("--location", default="", help="region of the image (default: the storage account's)")
    p.add_argument("--no-image", action="store_true", help="only upload the blob (upstream's push)")
    p.add_argument("--parallel", type=int, default=8, help="ranges uploaded at once (default 8)")
    p.set_defaults(run="cloud_azure_cmd:push")


def run_flags(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Start an Azure VM from a fixed VHD (uploaded first) or from an image pushed with push azure, show its "
        "serial console (boot diagnostics) and delete what was made for it on exit. " + _ENV
    )
    p.add_argument("image", metavar="PATH.vhd|IMAGE", help="fixed VHD, or the name or ID of a pushed image")
    p.add_argument("--resourceGroupName", "--resource-group", dest="resource_group", default="", help="resource group")
    p.add_argument("--location", default="westus", help="location of the VM (default westus)")
    p.add_argument(
        "--accountName",
        "--storage-account",
        dest="storage_account",
        default="linuxkit",
        help="storage account for a VHD upload (default linuxkit; created if missing)",
    )
    p.add_argument("--size", default="Standard_B1s", help="VM size (default Standard_B1s)")
    p.add_argument("--name", default="", help="VM name (default linuxkitvmNNNNNN)")
    p.add_argument("--data", default=None, help="user data for the VM (string)")
    p.add_argument("--data-file", default=None, help="user data for the VM (file)")
    p.add_argument("--keep", action="store_true", help="leave the VM running and return (upstream's behaviour)")
    p.add_argument(
        "--timeout", type=float, default=0, help="seconds to show the console before cleaning up (0: until Ctrl-C)"
    )
    p.set_defaults(run="cloud_azure_cmd:run")


def push(args: argparse.Namespace, common: CommonOptions | None = None) -> int:
    _load_sdk("push azure")
    from ..cloud.azure import PushOptions, azure_errors
    from ..cloud.azure import push as do_push

    if args.parallel < 1:
        raise UserError(f"--parallel {args.parallel}: give at least 1")
    with azure_errors("push azure"):
        pushed = do_push(
            PushOptions(
                path=Path(args.path),
                resource_group=args.resource_group,
                storage_account=args.storage_account,
                container=args.container,
                blob=args.blob,
                image=args.img_name,
                location=args.location,
                no_image=args.no_image,
                workers=args.parallel,
            )
        )
    print(pushed.image_id or pushed.blob_url)
    return 0


def user_data(data: str | None, data_file: str | None) -> bytes | None:
    """``--data`` or ``--data-file`` (not both), as bytes."""
    if data is not None and data_file is not None:
        raise UserError("give --data or --data-file, not both")
    if data_file is not None:
        try:
            return Path(data_file).read_bytes()
        except OSError as exc:
            raise UserError(f"--data-file {data_file}: {exc.strerror}") from exc
    return None if data is None else data.encode()


def run(args: argparse.Namespace, common: CommonOptions | None = None) -> int:
    data = user_data(args.data, args.data_file)
    _load_sdk("run azure")
    from ..cloud.azure import RunOptions, azure_errors
    from ..cloud.azure import run as do_run

    with azure_errors("run azure"):
        return do_run(
            RunOptions(
                image=args.image,
                resource_group=args.resource_group,
                location=args.location,
                storage_account=args.storage_account,
                size=args.size,
                name=args.name,
                data=data,
                keep=args.keep,
                timeout=args.timeout,
            )
        )
