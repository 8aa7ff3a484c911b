"""``linuxkit cache ls|rm|clean|pull|push|verify|import|export``."""

from __future__ import annotations

import argparse
import sys

from ..errors import BuildError, UserError
from ..oci.image import Platform, host_arch  # small module
from .common import CommonOptions, add_common, add_verb

#: ``linuxkit.oci.archive.FORMATS``, spelled here so that ``--help`` need not import the archive
#: code (a unit test keeps the two equal)
FORMATS = ("oci", "docker", "filesystem")


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cache = add_verb(verbs, "cache", "manage the linuxkit cache")
    sub = cache.add_subparsers(dest="cache_verb", metavar="COMMAND")
    sub.required = True

    p = add_verb(sub, "ls", "list images in the linuxkit cache")
    p.set_defaults(func=run_ls)

    p = add_verb(sub, "rm", "remove individual images from the linuxkit cache")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--published-only", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=run_rm)

    p = add_verb(sub, "clean", "empty the linuxkit cache")
    p.add_argument("--published-only", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=run_clean)

    p = add_verb(sub, "pull", "pull images from their registries into the linuxkit cache")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--platform", action="append", default=[], help="platform to pull (repeatable; default: all)")
    p.set_defaults(func=run_pull)

    p = add_verb(sub, "push", "push an image from the linuxkit cache to its registry")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--remote-name", default="", help="push under this name instead of NAME")
    p.add_argument(
        "--with-arch-tags",
        action="store_true",
        help="for a multi-platform image, also tag each platform's image as TAG-<arch>",
    )
    p.set_defaults(func=run_push)

    help_text = "check every blob of the cached images (size and digest); --repair pulls broken ones again"
    p = sub.add_parser("verify", aliases=["check"], help=help_text, description=help_text, allow_abbrev=False)
    add_common(p)
    p.add_argument("names", nargs="*", metavar="NAME", help="images to check (default: all)")
    p.add_argument(
        "--repair",
        action="store_true",
        help="pull broken images again by digest; remove the names that cannot be repaired",
    )
    p.set_defaults(func=run_verify)

    p = add_verb(sub, "import", "import images from an OCI image-layout tar (FILE, or - for stdin)")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=run_import)

    p = add_verb(sub, "export", "export an image from the linuxkit cache")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--platform", default=f"linux/{host_arch()}", help="platform to pick from a multi-arch index")
    p.add_argument("--outfile", default="", help="file to write, or - for stdout")
    p.add_argument("--format", default="oci", choices=FORMATS, help="oci (OCI tar), docker (docker tar), filesystem")
    p.add_argument("--name", default="", help="name to record in the exported tar instead of NAME")
    p.set_defaults(func=run_export)


def _published_only(args: argparse.Namespace) -> None:
    if args.published_only:
        raise UserError(
            "--published-only needs a registry client, which this version does not have yet",
            hint="remove images by name with `linuxkit cache rm NAME`",
        )


def run_ls(args: argparse.Namespace, common: CommonOptions) -> int:
    from .. import log
    from ..oci.cache import Cache
    from ..oci.verbs import ls_lines

    for line in ls_lines(Cache(common.cache_dir)):
        log.console().print(line, markup=False, highlight=False)
    return 0


def run_rm(args: argparse.Namespace, common: CommonOptions) -> int:
    from .. import log
    from ..oci.cache import Cache
    from ..oci.verbs import remove_images

    _published_only(args)
    for removed in remove_images(Cache(common.cache_dir), list(args.names)):
        log.info(removed.message())
    return 0


def run_clean(args: argparse.Namespace, common: CommonOptions) -> int:
    from .. import log
    from ..oci.verbs import clean

    _published_only(args)
    log.info(clean(common.cache_dir))
    return 0


def run_pull(args: argparse.Namespace, common: CommonOptions) -> int:
    from .. import log
    from ..oci import reference, registry
    from ..oci.cache import Cache

    cache, options = Cache(common.cache_dir), common.registry_options()
    platforms = [Platform.parse(p) for p in args.platform] or None
    for name in args.names:
        with log.step(f"Pulling {reference.normalize(name)}"):
            desc = registry.pull(cache, name, platforms, options=options)
        log.info(f"{reference.normalize(name)} {desc.digest}")
    return 0


def run_push(args: argparse.Namespace, common: CommonOptions) -> int:
    from .. import log
    from ..oci import reference, registry
    from ..oci.cache import Cache

    if args.remote_name and len(args.names) > 1:
        raise UserError("--remote-name needs exactly one NAME")
    cache, options = Cache(common.cache_dir), common.registry_options()
    for name in args.names:
        target = args.remote_name or name
        with log.step(f"Pushing {reference.normalize(name)} to {reference.normalize(target)}"):
            desc = registry.push(
                cache, name, args.remote_name or None, options=options, with_arch_tags=args.with_arch_tags
            )
        log.info(f"{reference.normalize(target)} {desc.digest}")
    return 0


def run_verify(args: argparse.Namespace, common: CommonOptions) -> int:
    from .. import log
    from ..oci import registry
    from ..oci.cache import Cache
    from ..oci.verify import repair, verify_names

    cache = Cache(common.cache_dir)
    names = None
    if args.names:
        names = []
        for name in args.names:
            root = cache.find(name)
            if root is None or not root.name:
                raise UserError(
                    f"image {name} is not in the cache {cache.root}", hint="list them with `linuxkit cache ls`"
                )
            names.append(root.name)
    reports = verify_names(cache, names)
    options = common.registry_options() if args.repair else None
    if args.repair:
        leftovers = cache.layout.remove_stale_temps()
        if leftovers:
            log.info(f"removed {len(leftovers)} temporary file(s) left behind by interrupted processes")
    broken = 0
    for report in reports:
        if report.ok:
            extra = f"; not pulled: {', '.join(report.not_pulled)}" if report.not_pulled else ""
            log.info(f"{report.name}: ok ({report.checked} blobs{extra})")
            continue
        for problem in report.problems:
            log.warn(f"{report.name}: {problem.message()}")
        if options is None:
            broken += 1
            continue

        def again(ref: str, name: str, platforms: list[Platform] | None) -> None:
            with log.step(f"Pulling {ref}"):
                registry.pull(cache, ref, platforms, options=options, name=name)

        result = repair(cache, report, again)
        (log.info if result.repaired else log.warn)(result.message)
        if not result.repaired:
            broken += 1
    if not reports:
        log.info("the cache holds no images")
    if broken:
        raise BuildError(
            f"{broken} image(s) in the cache {cache.root} are damaged"
            + (" and could not be repaired (their names were removed)" if args.repair else ""),
            hint=None if args.repair else "run `linuxkit cache verify --repair` to pull them again",
        )
    return 0


def run_import(args: argparse.Namespace, common: CommonOptions) -> int:
    from .. import log
    from ..oci.archive import import_archive
    from ..oci.cache import Cache

    cache = Cache(common.cache_dir)
    if args.file == "-":
        imported = import_archive(cache, sys.stdin.buffer, source="stdin")
    else:
        try:
            fh = open(args.file, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UserError(f"unable to open {args.file}: {exc.strerror}") from exc
        with fh:
            imported = import_archive(cache, fh, source=args.file)
    for item in imported:
        if item.name:
            log.info(f"imported {item.name} ({item.descriptor.digest})")
        else:
            log.warn(f"imported {item.descriptor.digest} without a name (no io.containerd.image.name annotation)")
    return 0


def run_export(args: argparse.Namespace, common: CommonOptions) -> int:
    from ..oci.archive import export_to
    from ..oci.cache import Cache

    export_to(
        Cache(common.cache_dir),
        args.names[0],
        args.outfile,
        fmt=args.format,
        platform=Platform.parse(args.platform),
        name=args.name or None,
    )
    return 0
