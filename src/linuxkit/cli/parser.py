"""Every verb's flags (upstream's cobra spellings) and the module that runs it.

Each level of the command line is a table of verbs, ``(name, help, fill)``: ``fill`` adds the verb's
flags (and its own sub-verbs) to its parser. The parser is built lazily: every verb is listed (so
``--help`` and the "invalid choice" error name them all), but a verb's flags are added only when
argparse selects that verb (:class:`_Verbs`). Adding an argparse argument costs ~40 µs, and the
whole tree (~25 parsers, ~250 arguments) cost 11 ms of every start; ``linuxkit version`` now builds
the top level and the ``version`` parser only. ``build_parser(lazy=False)`` builds everything (for
tests and documentation).

Each verb names what runs it as ``"module:function"`` (``run``) in :mod:`linuxkit.cli`;
:func:`linuxkit.cli.main.main` imports that module only after parsing, so a verb loads what it
uses and nothing else (``tests/unit/test_cli_startup.py`` holds each verb to an allow-list). The
fill functions are where a parser's own needs are imported: ``build``'s format names come from the
format table (no writer is imported), the ``--arch`` defaults from the host.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..arch import host_arch
from .common import BUILD_YML, EXPORT_FORMATS, HelpFormatter, add_common, new_parser

if TYPE_CHECKING:
    _SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    _SubParsers = argparse._SubParsersAction

Fill = Callable[[argparse.ArgumentParser], None]
#: one level of verbs: name, help, the function adding its flags, aliases
VerbTable = Sequence[tuple[str, str, Fill, tuple[str, ...]]]

BUILD = "build_cmd:run"
DRY_RUN = "dry_run_cmd:run"


class _Verbs(_SubParsers):
    """Sub-parsers filled when argparse selects them: a verb's flags cost nothing unless it runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: dict[int, Fill] = {}

    def add_table(self, table: VerbTable, *, lazy: bool) -> None:
        for name, help_text, fill, aliases in table:
            parser = self.add_parser(
                name,
                help=help_text,
                description=help_text,
                aliases=aliases,
                allow_abbrev=False,
                formatter_class=HelpFormatter,
            )
            if lazy:
                self._pending[id(parser)] = fill
            else:
                _fill(parser, fill, lazy=False)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        if isinstance(values, Sequence) and values:
            chosen = self._name_parser_map.get(str(values[0]))
            if chosen is not None and id(chosen) in self._pending:
                _fill(chosen, self._pending.pop(id(chosen)), lazy=True)
        super().__call__(parser, namespace, values, option_string)


#: whether the verb being filled builds its own sub-verbs lazily (passed down by :func:`_fill`)
_LAZY = [True]


def _fill(parser: argparse.ArgumentParser, fill: Fill, *, lazy: bool) -> None:
    """A verb's parser: the global flags (accepted after the verb too) and the verb's own."""
    _LAZY.append(lazy)
    try:
        add_common(parser)
        fill(parser)
    finally:
        _LAZY.pop()


def _sub_verbs(parser: argparse.ArgumentParser, dest: str, metavar: str, table: VerbTable) -> None:
    verbs = parser.add_subparsers(dest=dest, metavar=metavar, action=_Verbs)
    verbs.required = True
    assert isinstance(verbs, _Verbs)
    verbs.add_table(table, lazy=_LAZY[-1])


def build_parser(*, lazy: bool = True) -> argparse.ArgumentParser:
    parser = new_parser("linuxkit", "Build and run small, immutable Linux systems made of containers.")
    add_common(parser, top_level=True)
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND", action=_Verbs)
    verbs.required = True
    assert isinstance(verbs, _Verbs)
    verbs.add_table(VERBS, lazy=lazy)
    return parser


def build_target(args: argparse.Namespace) -> str:
    """``build --dry-run`` loads and prints the YAML only: none of the build is imported."""
    return DRY_RUN if args.dry_run else BUILD


def _build(p: argparse.ArgumentParser) -> None:
    from ..formats import registry  # the format table: names only, no writer is imported

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
    p.add_argument(
        "--sign-key",
        default="",
        metavar="KEY",
        help="PEM private key, or pkcs11: URI of a key in a token, to sign EFI binaries with (Secure Boot)",
    )
    p.add_argument("--sign-cert", default="", metavar="CERT", help="PEM certificate of --sign-key")
    p.add_argument("--verity", action="store_true", help="dm-verity hash tree on the root image (kernel+squashfs…)")
    p.add_argument("--dry-run", action="store_true", help="print the merged configuration and stop")
    _verify_flags(p)
    p.add_argument("--debian-mirror", default=None, help="Debian archive URL for @pkg: packages built on the way")
    p.add_argument("--debian-security-mirror", default=None, help="Debian security archive URL (same)")
    p.set_defaults(run=build_target)


def _verify_flags(p: argparse.ArgumentParser) -> None:
    """``--verify-key``/``--verify-policy`` of ``build`` and ``cache pull`` (docs/signing.md)."""
    p.add_argument(
        "--verify-key",
        default="",
        metavar="KEY.pub",
        help="PEM public key (cosign's): every image pulled or used from the cache must carry a signature it verifies",
    )
    p.add_argument(
        "--verify-policy",
        default="",
        metavar="FILE",
        help="YAML mapping repository prefixes to public keys (or none), see docs/signing.md",
    )


def _names(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="+", metavar="NAME")


def _cache_ls(p: argparse.ArgumentParser) -> None:
    p.set_defaults(run="cache_cmd:run_ls")


_PUBLISHED_ONLY = "only the images the registry holds, identical (same root digest): the others stay"


def _cache_rm(p: argparse.ArgumentParser) -> None:
    _names(p)
    p.add_argument("--published-only", action="store_true", help=_PUBLISHED_ONLY)
    p.set_defaults(run="cache_remove_cmd:run_rm")


def _cache_clean(p: argparse.ArgumentParser) -> None:
    p.add_argument("--published-only", action="store_true", help=_PUBLISHED_ONLY)
    p.set_defaults(run="cache_remove_cmd:run_clean")


def _cache_pull(p: argparse.ArgumentParser) -> None:
    _names(p)
    p.add_argument("--platform", action="append", default=[], help="platform to pull (repeatable; default: all)")
    _verify_flags(p)
    p.set_defaults(run="cache_registry_cmd:run_pull")


def _cache_push(p: argparse.ArgumentParser) -> None:
    _names(p)
    p.add_argument("--remote-name", default="", help="push under this name instead of NAME")
    p.add_argument(
        "--with-arch-tags",
        action="store_true",
        help="for a multi-platform image, also tag each platform's image as TAG-<arch>",
    )
    p.add_argument(
        "--override",
        action="store_true",
        help="push even when the registry has the image already (an index keeps the registry's other platforms)",
    )
    p.add_argument(
        "--sign-key",
        default="",
        metavar="KEY",
        help="PEM ECDSA P-256 private key: sign what is pushed in cosign's format (tag sha256-<hex>.sig)",
    )
    p.set_defaults(run="cache_registry_cmd:run_push")


def _cache_verify(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NAME", help="images to check (default: all)")
    p.add_argument(
        "--repair",
        action="store_true",
        help="pull broken images again by digest; remove the names that cannot be repaired",
    )
    p.set_defaults(run="cache_registry_cmd:run_verify")


def _cache_import(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE")
    p.set_defaults(run="cache_cmd:run_import")


def _cache_export(p: argparse.ArgumentParser) -> None:
    _names(p)
    p.add_argument("--platform", default=f"linux/{host_arch()}", help="platform to pick from a multi-arch index")
    p.add_argument("--outfile", default="", help="file to write, or - for stdout")
    p.add_argument(
        "--format", default="oci", choices=EXPORT_FORMATS, help="oci (OCI tar), docker (docker tar), filesystem"
    )
    p.add_argument("--name", default="", help="name to record in the exported tar instead of NAME")
    p.set_defaults(run="cache_cmd:run_export")


CACHE_VERBS: VerbTable = (
    ("ls", "list images in the linuxkit cache", _cache_ls, ()),
    ("rm", "remove individual images from the linuxkit cache", _cache_rm, ()),
    ("clean", "empty the linuxkit cache", _cache_clean, ()),
    ("pull", "pull images from their registries into the linuxkit cache", _cache_pull, ()),
    ("push", "push an image from the linuxkit cache to its registry", _cache_push, ()),
    (
        "verify",
        "check every blob of the cached images (size and digest); --repair pulls broken ones again",
        _cache_verify,
        ("check",),
    ),
    ("import", "import images from an OCI image-layout tar (FILE, or - for stdin)", _cache_import, ()),
    ("export", "export an image from the linuxkit cache", _cache_export, ()),
)


def _pkg_flags(p: argparse.ArgumentParser) -> None:
    """Upstream's ``pkg`` persistent flags that affect the tag, and the package directories."""
    p.add_argument("--org", default=None, help="override the org (env LINUXKIT_PKG_ORG)")
    p.add_argument("--build-yml", default=BUILD_YML, help="name of the package's yml file")
    p.add_argument("--hash", default="", help="override the image hash (default: git tree hash of the package)")
    p.add_argument("--tag", default="", help="tag template, e.g. {{.Hash}}")
    p.add_argument("--hash-commit", default="HEAD", help="git commit to hash")
    p.add_argument("--hash-path", default="", help="directory to hash, a parent of the package directory")
    p.add_argument("--force-dirty", action="store_true", help="consider the package dirty")
    p.add_argument("--dev", action="store_true", help='force org and hash to $USER and "dev"')
    p.add_argument("dirs", nargs="+", metavar="DIR")


def _debian_flags(p: argparse.ArgumentParser) -> None:
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


def _pkg_show_tag(p: argparse.ArgumentParser) -> None:
    _pkg_flags(p)
    p.add_argument("--canonical", action="store_true", help="show docker.io/org/image:tag")
    p.set_defaults(run="pkg_tag_cmd:run_show_tag")


def _pkg_build(p: argparse.ArgumentParser, *, run: str = "pkg_cmd:run_build") -> None:
    _pkg_flags(p)
    _debian_flags(p)
    p.add_argument("--nobuild", action="store_true", help="with --push: push what the cache has, build nothing")
    p.add_argument(
        "--pull",
        action="store_true",
        help="pull a platform missing from the cache from its TAG-<arch> image in the registry instead of building it",
    )
    p.add_argument("--skip-platforms", default="", help="platforms of build.yml not to build, e.g. linux/arm64")
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
    p.add_argument(
        "--sign-key",
        default="",
        metavar="KEY",
        help="PEM ECDSA P-256 private key: with --push, sign what is pushed in cosign's format (tag sha256-<hex>.sig)",
    )
    p.set_defaults(run=run)


def _pkg_push(p: argparse.ArgumentParser) -> None:
    _pkg_build(p, run="pkg_cmd:run_push")


def _pkg_manifest(p: argparse.ArgumentParser) -> None:
    _pkg_flags(p)
    p.add_argument("--release", default="", help="also update the index of org/image:RELEASE")
    p.set_defaults(run="pkg_registry_cmd:run_manifest")


def _pkg_remote_tag(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="FROM", help="image in a registry")
    p.add_argument("target", metavar="TO", help="new name (copied when it is another repository)")
    p.add_argument("--release", default="", help=argparse.SUPPRESS)  # upstream's flag, unused there too
    p.set_defaults(run="pkg_registry_cmd:run_remote_tag")


def _pkg_verify(p: argparse.ArgumentParser) -> None:
    _pkg_flags(p)
    _debian_flags(p)
    p.add_argument("--platforms", default="", help="platforms to rebuild (default: build.yml's that were published)")
    p.add_argument("--registry", action="store_true", help="compare with the image in its registry, not the cache")
    p.set_defaults(run="pkg_verify_cmd:run_verify")


def _pkg_lock(p: argparse.ArgumentParser) -> None:
    _pkg_flags(p)
    _debian_flags(p)
    p.add_argument("--platforms", default="", help="comma-separated platforms (default: the arches of build.yml)")
    p.set_defaults(run="pkg_cmd:run_lock")


PKG_VERBS: VerbTable = (
    ("show-tag", "show the tag of packages from their source directories", _pkg_show_tag, ()),
    ("build", "build packages (from Debian packages, or a Dockerfile through buildah/docker)", _pkg_build, ()),
    ("lock", "resolve the Debian packages of packages and write their debian.lock", _pkg_lock, ()),
    ("push", "build packages when not in the cache, and push them (as pkg build --push)", _pkg_push, ()),
    (
        "manifest",
        "update the index of packages in their registry from the TAG-<arch> images there",
        _pkg_manifest,
        ("index",),
    ),
    ("remote-tag", "tag an image in a registry with another tag (copied if another repository)", _pkg_remote_tag, ()),
    (
        "verify",
        "rebuild packages from their debian.lock and compare with the image in the cache or registry",
        _pkg_verify,
        (),
    ),
)


def _run_qemu(p: argparse.ArgumentParser) -> None:
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
    p.add_argument("--secure-boot", action="store_true", help="UEFI with Secure Boot enforced (OVMF/AAVMF)")
    p.add_argument(
        "--secure-boot-cert",
        default="",
        metavar="CERT",
        help="with --secure-boot: enroll CERT as PK, KEK and db (default: Microsoft's keys)",
    )
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
    p.add_argument(
        "--metadata",
        default="",
        metavar="PROVIDER",
        help="serve an emulated cloud metadata service to the guest at 169.254.169.254:80 (aws, aws-v2, aws-v1, "
        "gcp, azure, openstack, hetzner, digitalocean, vultr, scaleway), or attach one as a CD "
        "(openstack-configdrive, cdrom/nocloud), answering --data/--data-file as the user data",
    )
    p.add_argument(
        "--ssh-key", action="append", default=[], metavar="FILE", help="SSH public key file for --metadata (repeatable)"
    )
    p.add_argument("--hostname", default="", help="the host name --metadata gives (default: the image's name)")
    p.set_defaults(run="run_cmd:run_qemu_cmd")


def _flags_of(target: str) -> Fill:
    """The fill function ``"module:function"`` of :mod:`linuxkit.cli`, imported when its verb is selected: each
    cloud keeps its flags next to the code that runs it (``cloud_aws_cmd``...), and no cloud's module is
    imported on another verb's path."""

    def fill(p: argparse.ArgumentParser) -> None:
        import importlib

        module, _, name = target.partition(":")
        getattr(importlib.import_module(f"{__package__}.{module}"), name)(p)

    return fill


#: the clouds ``push`` and ``run`` know: (name, what it is)
CLOUDS = (
    ("aws", "Amazon Web Services"),
    ("azure", "Microsoft Azure"),
    ("gcp", "Google Cloud Platform"),
    ("openstack", "OpenStack"),
    ("vcenter", "VMware vCenter/ESXi"),
    ("scaleway", "Scaleway"),
    ("equinixmetal", "Equinix Metal"),
)

#: the desktop hypervisors ``run`` knows besides qemu: (name, what it is); each one's flags and plan live in
#: ``cli/run_NAME_cmd.py``, imported only when its verb is chosen
DESKTOPS = (
    ("hyperkit", "hyperkit (macOS)"),
    ("hyperv", "Hyper-V (Windows)"),
    ("vbox", "VirtualBox"),
    ("virtualization", "the Virtualization framework (macOS)"),
    ("vmware", "VMware Workstation/Fusion/Player"),
)

RUN_BACKENDS: VerbTable = (
    ("qemu", "launch a VM using qemu", _run_qemu, ()),
    *((name, f"launch a VM using {what}", _flags_of(f"run_{name}_cmd:flags"), ()) for name, what in DESKTOPS),
    *((name, f"launch an instance on {what}", _flags_of(f"cloud_{name}_cmd:run_flags"), ()) for name, what in CLOUDS),
)

PUSH_VERBS: VerbTable = tuple(
    (name, f"push an image to {what}", _flags_of(f"cloud_{name}_cmd:push_flags"), ()) for name, what in CLOUDS
)


def _metadata_create(p: argparse.ArgumentParser) -> None:
    p.add_argument("iso", metavar="FILE.iso")
    p.add_argument("data", metavar="DATA")
    p.set_defaults(run="metadata_cmd:run_create")


METADATA_VERBS: VerbTable = (
    ("create", "create an ISO with metadata (written to /config in the ISO)", _metadata_create, ()),
)


def _schema(p: argparse.ArgumentParser) -> None:
    p.set_defaults(run="schema_cmd:run", uses_log=False)


def _sbom(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="IMAGE|OUTPUT", help="an image name, or a tar / kernel+initrd build output")
    p.add_argument("--format", default="spdx", choices=("spdx", "cyclonedx"), help="SPDX 2.3 or CycloneDX 1.5 JSON")
    p.add_argument("--platform", default=f"linux/{host_arch()}", help="platform of an image's SBOM")
    p.add_argument("--sbom-output", default="sbom.spdx.json", help="SBOM file name in a build output")
    p.set_defaults(run="sbom_cmd:run")


def _version(p: argparse.ArgumentParser) -> None:
    p.add_argument("--short", action="store_true", help="print just the version number")
    p.add_argument("--commit", action="store_true", help="print just the commit")
    p.set_defaults(run="version_cmd:run", uses_log=False)


VERBS: VerbTable = (
    ("build", "Build a bootable OS image from a yaml configuration file", _build, ()),
    ("cache", "manage the linuxkit cache", lambda p: _sub_verbs(p, "cache_verb", "COMMAND", CACHE_VERBS), ()),
    ("pkg", "package building", lambda p: _sub_verbs(p, "pkg_verb", "COMMAND", PKG_VERBS), ()),
    ("run", "run a VM image", lambda p: _sub_verbs(p, "run_backend", "BACKEND", RUN_BACKENDS), ()),
    ("metadata", "manage ISO metadata", lambda p: _sub_verbs(p, "metadata_verb", "COMMAND", METADATA_VERBS), ()),
    ("push", "push a VM image to a cloud", lambda p: _sub_verbs(p, "push_target", "PROVIDER", PUSH_VERBS), ()),
    ("serve", "serve a directory over HTTP (e.g. kernel+initrd for iPXE)", _flags_of("serve_cmd:flags"), ()),
    ("sbom", "print the SBOM of an image or a build output (SPDX or CycloneDX JSON)", _sbom, ()),
    ("schema", "print the JSON Schema (draft 2020-12) of a LinuxKit YAML", _schema, ()),
    ("version", "report the version of linuxkit", _version, ()),
)
