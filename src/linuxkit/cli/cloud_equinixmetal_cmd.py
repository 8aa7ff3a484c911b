"""``linuxkit push equinixmetal`` and ``linuxkit run equinixmetal``: upstream's flags and environment variables (a
flag, else its variable, else the default). :mod:`linuxkit.cloud.equinixmetal` is imported when the verb runs."""

from __future__ import annotations

import argparse
import getpass
import platform

from ..errors import UserError
from .cloud_gcp_cmd import value
from .common import CommonOptions

BASE_URL_ENV = "METAL_BASE_URL"
NAME_ENV = "METAL_NAME"
FACILITY_ENV = "METAL_FACILITY"
METRO_ENV = "METAL_METRO"  # ours: facilities are retired, devices are placed in metros
MACHINE_ENV = "METAL_MACHINE"
PROJECT_ENV = "METAL_PROJECT_ID"
HOSTNAME_ENV = "METAL_HOSTNAME"
TOKEN_ENVS = ("METAL_API_TOKEN", "METAL_AUTH_TOKEN", "PACKET_API_KEY")

#: upstream's baremetal_0 is gone; c3.small.x86 is the smallest x86 machine today
DEFAULT_MACHINE = "c3.small.x86"
DEFAULT_METRO = "am"  # Amsterdam, where upstream's default facility ams1 was


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "t"):
        return True
    if text.lower() in ("false", "0", "f"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not true or false")


def _default_arch() -> str:
    return "aarch64" if platform.machine() in ("aarch64", "arm64") else "x86_64"


def _default_hostname() -> str:
    try:
        return f"{getpass.getuser()}-linuxkit"
    except (KeyError, OSError):
        return "linuxkit"


def _common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--base-url",
        default=None,
        help=f"base URL the kernel, initrd and iPXE script are served from (${BASE_URL_ENV})",
    )
    p.add_argument("--img-name", default=None, help=f"prefix of the files (default: NAME; ${NAME_ENV})")


def push_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "prefix",
        metavar="NAME",
        nargs="?",
        default="equinixmetal",
        help="prefix of NAME-kernel, NAME-initrd.img, NAME-cmdline (default equinixmetal)",
    )
    _common_flags(p)
    p.add_argument(
        "--arch", default=_default_arch(), help="image architecture: x86_64 or aarch64 (default: this machine's)"
    )
    p.add_argument("--decompress", action="store_true", help="decompress a gzip'ed kernel/initrd while copying")
    p.add_argument(
        "--destination", default="", help="directory (or file:// URL) to copy the files and the iPXE script to"
    )
    p.set_defaults(run="cloud_equinixmetal_cmd:push")


def run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("prefix", metavar="NAME", help="prefix of the files pushed with linuxkit push equinixmetal")
    _common_flags(p)
    p.add_argument("--zone", default=None, help=f"facility (${FACILITY_ENV}; facilities are retired: prefer --metro)")
    p.add_argument(
        "--metro", default=None, help=f"metro to create the device in (${METRO_ENV}; default {DEFAULT_METRO})"
    )
    p.add_argument("--machine", default=None, help=f"machine type (${MACHINE_ENV}; default {DEFAULT_MACHINE})")
    p.add_argument("--api-key", default=None, help=f"API key (${', $'.join(TOKEN_ENVS)})")
    p.add_argument("--project-id", default=None, help=f"project ID (${PROJECT_ENV})")
    p.add_argument("--device", default="", help="the ID of an existing device to boot instead of creating one")
    p.add_argument("--hostname", default=None, help=f"host name of the device (${HOSTNAME_ENV}; default USER-linuxkit)")
    p.add_argument(
        "--always-pxe",
        type=_bool,
        nargs="?",
        const=True,
        default=True,
        metavar="BOOL",
        help="boot by iPXE at every reboot (default true)",
    )
    p.add_argument(
        "--console",
        type=_bool,
        nargs="?",
        const=True,
        default=True,
        metavar="BOOL",
        help="print the serial console's ssh command and wait until the device powers off or Ctrl-C (default true)",
    )
    p.add_argument("--keep", action="store_true", help="keep the device after exiting")
    p.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    p.set_defaults(run="cloud_equinixmetal_cmd:run")


def push(args: argparse.Namespace, common: CommonOptions) -> int:
    from ..cloud import equinixmetal

    equinixmetal.push(
        equinixmetal.PushOptions(
            prefix=value(args.img_name, NAME_ENV, args.prefix),
            destination=args.destination,
            base_url=value(args.base_url, BASE_URL_ENV),
            arch=args.arch,
            decompress=args.decompress,
        )
    )
    return 0


def token(flag: str | None) -> str:
    if flag:
        return flag
    for env in TOKEN_ENVS:
        if value(None, env):
            return value(None, env)
    return ""


def run(args: argparse.Namespace, common: CommonOptions) -> int:
    from ..cloud import equinixmetal

    if args.serve is not None:
        raise UserError(
            "--serve is not built in here",
            hint="serve the pushed directory with: linuxkit serve --directory DIR --port PORT, and give its --base-url",
        )
    facility = value(args.zone, FACILITY_ENV)
    return equinixmetal.run(
        equinixmetal.RunOptions(
            prefix=args.prefix,
            name=value(args.img_name, NAME_ENV),
            base_url=value(args.base_url, BASE_URL_ENV),
            token=token(args.api_key),
            project=value(args.project_id, PROJECT_ENV),
            plan=value(args.machine, MACHINE_ENV, DEFAULT_MACHINE),
            hostname=value(args.hostname, HOSTNAME_ENV, _default_hostname()),
            metro="" if facility else value(args.metro, METRO_ENV, DEFAULT_METRO),
            facility=facility,
            device=args.device,
            always_pxe=args.always_pxe,
            console=args.console,
            keep=args.keep,
        )
    )
