"""Every verb's flags (upstream's cobra spellings) and the module that runs it.

Each parser names what runs its verb as ``"module:function"`` (``run``) in :mod:`linuxkit.cli`;
:func:`linuxkit.cli.main.main` imports that module only after parsing, so a verb loads what it
uses and nothing else (``tests/unit/test_cli_startup.py`` holds each verb to an allow-list). This
module imports only what the flags need: the format table's names (no writer) and the host's
architecture.
"""

from __future__ import annotations

import argparse
import textwrap
from typing import TYPE_CHECKING

from ..formats import registry  # the format table: no writer is imported
from ..oci.image import host_arch  # small: the --arch defaults
from .common import BUILD_YML, EXPORT_FORMATS, add_common, add_verb, new_parser

if TYPE_CHECKING:
    Verbs = argparse._SubParsersAction[argparse.ArgumentParser]

BUILD = "build_cmd:run"
DRY_RUN = "dry_run_cmd:run"


def build_target(args: argparse.Namespace) -> str:
    """``build --dry-run`` loads and prints the YAML only: none of the build is imported."""
    return DRY_RUN if args.dry_run else BUILD


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("linuxkit", "Build and run small, immutable Linux systems made of containers.")
    add_common(parser, top_level=True)
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND")
    verbs.required = True
    _build(verbs)
    _cache(verbs)
    _pkg(verbs)
    _run(verbs)
    _metadata(verbs)
    _schema(verbs)
    _version(verbs)
    return parser


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps help lines between words only, so format names such as ``iso-efi-initrd`` stay whole."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def _build(verbs: Verbs) -> None:
    p = add_verb(verbs, "build", "Build a bootable OS image from a yaml configuration file")
    p.formatter_class = _HelpFormatter
    p.add_argument("configs", nargs="+", metavar="FILE", help="YAML files (or - for stdin, or http(s) URLs)")
    p.add_argument("--name", default="", help="name to use for output files")
    p.add_argument("--dir", default="", help="directory for output files (default: current directory)")
    p.add_argument("--o", dest="output_file", default="", metavar="FILE", help="single output file, or - for stdout")
    p.add_argument("--size", default="1024M", help="size of disk images, where the format has a fixed size")
    p.add_argument("--pull", action="store_true", help="always pull images")
    p.add_argument("--docker", action="store_true", help="look for images in docker before the linuxkit cache")
    p.add_argument("--decompress-kernel", action="store_true", help="decompress the Linux kernel")
    p.add_argument("--arch", default=host_arch(), help="target architecture (default: host)")
    p.add_argument(
        "-f",
        "--format",
        action="append",
        default=[],
        help="formats to create (repeat or comma list): " + " ".join(registry.names()),
    )
    p.add_argument("--input-tar", default="", help="tar from a previous build to reuse unchanged parts from")
    p.add_argument("--no-sbom", action="store_true", help="do not write a consolidated SBOM into the image")
    p.add_argument("--sbom-output", default="sbom.spdx.json", help="SBOM file name in the root filesystem")
    p.add_argument("--sbom-current-time", action="store_true", help="use the current time in the SBOM")
    p.add_argument("--dry-run", action="store_true", help="print the merged configuration and stop")
    p.add_argument("--debian-mirror", default=None, help="Debian archive URL for @pkg: packages built on the way")
    p.add_argument("--debian-security-mirror", default=None, help="Debian security archive URL (same)")
    p.set_defaults(run=build_target)


def _cache(verbs: Verbs) -> None:
    cache = add_verb(verbs, "cache", "manage the linuxkit cache")
    sub = cache.add_subparsers(dest="cache_verb", metavar="COMMAND")
    sub.required = True

    p = add_verb(sub, "ls", "list images in the linuxkit cache")
    p.set_defaults(run="cache_cmd:run_ls")

    p = add_verb(sub, "rm", "remove individual images from the linuxkit cache")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--published-only", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(run="cache_cmd:run_rm")

    p = add_verb(sub, "clean", "empty the linuxkit cache")
    p.add_argument("--published-only", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(run="cache_cmd:run_clean")

    p = add_verb(sub, "pull", "pull images from their registries into the linuxkit cache")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--platform", action="append", default=[], help="platform to pull (repeatable; default: all)")
    p.set_defaults(run="cache_registry_cmd:run_pull")

    p = add_verb(sub, "push", "push an image from the linuxkit cache to its registry")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--remote-name", default="", help="push under this name instead of NAME")
    p.add_argument(
        "--with-arch-tags",
        action="store_true",
        help="for a multi-platform image, also tag each platform's image as TAG-<arch>",
    )
    p.set_defaults(run="cache_registry_cmd:run_push")

    help_text = "check every blob of the cached images (size and digest); --repair pulls broken ones again"
    p = sub.add_parser("verify", aliases=["check"], help=help_text, description=help_text, allow_abbrev=False)
    add_common(p)
    p.add_argument("names", nargs="*", metavar="NAME", help="images to check (default: all)")
    p.add_argument(
        "--repair",
        action="store_true",
        help="pull broken images again by digest; remove the names that cannot be repaired",
    )
    p.set_defaults(run="cache_registry_cmd:run_verify")

    p = add_verb(sub, "import", "import images from an OCI image-layout tar (FILE, or - for stdin)")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(run="cache_cmd:run_import")

    p = add_verb(sub, "export", "export an image from the linuxkit cache")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--platform", default=f"linux/{host_arch()}", help="platform to pick from a multi-arch index")
    p.add_argument("--outfile", default="", help="file to write, or - for stdout")
    p.add_argument(
        "--format", default="oci", choices=EXPORT_FORMATS, help="oci (OCI tar), docker (docker tar), filesystem"
    )
    p.add_argument("--name", default="", help="name to record in the exported tar instead of NAME")
    p.set_defaults(run="cache_cmd:run_export")


def _add_pkg_flags(p: argparse.ArgumentParser) -> None:
    """Upstream's ``pkg`` persistent flags that affect the tag."""
    p.add_argument("--org", default=None, help="override the org (env LINUXKIT_PKG_ORG)")
    p.add_argument("--build-yml", default=BUILD_YML, help="name of the package's yml file")
    p.add_argument("--hash", default="", help="override the image hash (default: git tree hash of the package)")
    p.add_argument("--tag", default="", help="tag template, e.g. {{.Hash}}")
    p.add_argument("--hash-commit", default="HEAD", help="git commit to hash")
    p.add_argument("--hash-path", default="", help="directory to hash, a parent of the package directory")
    p.add_argument("--force-dirty", action="store_true", help="consider the package dirty")
    p.add_argument("--dev", action="store_true", help='force org and hash to $USER and "dev"')


def _add_debian_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debian-mirror", default=None, help="Debian archive URL (env LINUXKIT_DEBIAN_MIRROR)")
    p.add_argument(
        "--debian-security-mirror",
        default=None,
        help="Debian security archive URL (env LINUXKIT_DEBIAN_SECURITY_MIRROR)",
    )
    p.add_argument(
        "--debian-allow-expired",
        action="store_true",
        help="accept archive indexes past their Valid-Until date (for snapshot mirrors)",
    )


def _pkg(verbs: Verbs) -> None:
    pkg = add_verb(verbs, "pkg", "package building")
    sub = pkg.add_subparsers(dest="pkg_verb", metavar="COMMAND")
    sub.required = True
    p = add_verb(sub, "show-tag", "show the tag of packages from their source directories")
    _add_pkg_flags(p)
    p.add_argument("dirs", nargs="+", metavar="DIR")
    p.add_argument("--canonical", action="store_true", help="show docker.io/org/image:tag")
    p.set_defaults(run="pkg_tag_cmd:run_show_tag")

    p = add_verb(sub, "build", "build packages (from Debian packages, or a Dockerfile through buildah/docker)")
    _add_pkg_flags(p)
    _add_debian_flags(p)
    p.add_argument("dirs", nargs="+", metavar="DIR")
    p.add_argument("--force", action="store_true", help="build even when the image is already in the cache")
    p.add_argument("--platforms", default="", help="comma-separated platforms, e.g. linux/amd64 (default: build.yml)")
    p.add_argument(
        "--release",
        default="",
        help="also name the image org/image:RELEASE (with --push, default: the git tag of HEAD, if any)",
    )
    p.add_argument("--update", action="store_true", help="resolve the Debian packages again and rewrite debian.lock")
    p.add_argument("--locked", action="store_true", help="fail instead of changing a missing or stale debian.lock")
    p.add_argument(
        "--push",
        action="store_true",
        help="push the result (index and TAG-<arch> images) to its registry; refuses a dirty package",
    )
    p.set_defaults(run="pkg_cmd:run_build")

    p = add_verb(sub, "lock", "resolve the Debian packages of packages and write their debian.lock")
    _add_pkg_flags(p)
    _add_debian_flags(p)
    p.add_argument("dirs", nargs="+", metavar="DIR")
    p.add_argument("--platforms", default="", help="comma-separated platforms (default: the arches of build.yml)")
    p.set_defaults(run="pkg_cmd:run_lock")


def _run(verbs: Verbs) -> None:
    run = add_verb(verbs, "run", "run a VM image")
    backends = run.add_subparsers(dest="run_backend", metavar="BACKEND")
    backends.required = True
    p = add_verb(backends, "qemu", "launch a VM using qemu")
    p.add_argument("path", metavar="PATH", help="image prefix (PATH-kernel, ...), .iso, disk image or .efi")
    p.add_argument("--cpus", type=int, default=1, help="number of CPUs (default 1)")
    p.add_argument("--mem", type=int, default=1024, help="memory in MB (default 1024)")
    p.add_argument("--disk", action="append", default=[], help="disk [file=]PATH[,size=1G][,format=qcow2]")
    p.add_argument("--kernel", action="store_true", help="boot PATH-kernel, PATH-initrd.img, PATH-cmdline")
    p.add_argument("--iso", action="store_true", help="PATH is an ISO")
    p.add_argument("--uefi", action="store_true", help="boot with UEFI firmware (OVMF)")
    p.add_argument("--squashfs", action="store_true", help="boot PATH-kernel with PATH-squashfs.img as root")
    p.add_argument("--state", default="", help="directory for VM state (default PREFIX-state)")
    p.add_argument("--data", default=None, help="metadata string, passed to the VM as an ISO holding config")
    p.add_argument("--data-file", default=None, help="file of metadata, passed like --data")
    p.add_argument("--fw", default="", help="OVMF firmware for UEFI boot (default: found on the host)")
    p.add_argument("--accel", default=None, help="accelerator, e.g. kvm or tcg (default: KVM if it works)")
    p.add_argument("--arch", default="", help="x86_64, aarch64, s390x or riscv64 (default: the host's)")
    p.add_argument("--qemu", default="", help="qemu binary (default qemu-system-ARCH from PATH)")
    p.add_argument("--gui", action="store_true", help="show the VM's display instead of a serial console")
    p.add_argument("--detached", action="store_true", help="run in the background, console in STATE/console.log")
    p.add_argument("--networking", default="user", help="user, tap,IFACE, bridge,BRIDGE or none (default user)")
    p.add_argument("--publish", action="append", default=[], help="HOST:GUEST[/tcp|udp] (repeatable)")
    p.add_argument("--cmdline", default="", help="extra kernel command line")
    p.add_argument("--usb", action="store_true", help="enable a USB controller")
    p.add_argument("--device", action="append", default=[], help="extra qemu -device (repeatable)")
    p.set_defaults(run="run_cmd:run_qemu_cmd")


def _metadata(verbs: Verbs) -> None:
    metadata = add_verb(verbs, "metadata", "manage ISO metadata")
    sub = metadata.add_subparsers(dest="metadata_verb", metavar="COMMAND")
    sub.required = True
    p = add_verb(sub, "create", "create an ISO with metadata (written to /config in the ISO)")
    p.add_argument("iso", metavar="FILE.iso")
    p.add_argument("data", metavar="DATA")
    p.set_defaults(run="metadata_cmd:run_create")


def _schema(verbs: Verbs) -> None:
    parser = add_verb(verbs, "schema", "print the JSON Schema (draft 2020-12) of a LinuxKit YAML")
    parser.set_defaults(run="schema_cmd:run", uses_log=False)


def _version(verbs: Verbs) -> None:
    parser = add_verb(verbs, "version", "report the version of linuxkit")
    parser.add_argument("--short", action="store_true", help="print just the version number")
    parser.add_argument("--commit", action="store_true", help="print just the commit")
    parser.set_defaults(run="version_cmd:run", uses_log=False)
