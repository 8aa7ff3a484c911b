"""``linuxkit cache pull|push|verify``: the cache and the registry client."""

from __future__ import annotations

import argparse

from .. import log
from ..errors import BuildError, UserError
from ..oci import reference, registry
from ..oci.cache import Cache
from ..oci.image import Platform
from ..oci.verify import repair, verify_names
from .common import CommonOptions
from .registries import registry_options
from .signing_args import sign_pushed, signing_key, verified_pull, verify_policy


def run_pull(args: argparse.Namespace, common: CommonOptions) -> int:
    cache, options = Cache(common.cache_dir), registry_options(common)
    platforms = [Platform.parse(p) for p in args.platform] or None
    policy = verify_policy(args.verify_key, args.verify_policy)
    for name in args.names:
        # with a key: the digest the registry names is verified first, then pulled by that digest
        source = verified_pull(name, policy, options) if policy is not None else None
        with log.step(f"Pulling {reference.normalize(name)}"):
            desc = registry.pull(cache, source or name, platforms, options=options, name=name)
        log.info(f"{reference.normalize(name)} {desc.digest}")
    return 0


def run_push(args: argparse.Namespace, common: CommonOptions) -> int:
    if args.remote_name and len(args.names) > 1:
        raise UserError("--remote-name needs exactly one NAME")
    cache, options = Cache(common.cache_dir), registry_options(common)
    key = signing_key(args.sign_key)
    for name in args.names:
        target = args.remote_name or name
        with log.step(f"Pushing {reference.normalize(name)} to {reference.normalize(target)}"):
            # upstream: an image the registry has is left alone without --override; with it, an index
            # keeps the platforms the registry's index has and this one lacks
            pushed = registry.push_image(
                cache,
                name,
                args.remote_name or None,
                options=options,
                with_arch_tags=args.with_arch_tags,
                override=args.override,
                merge=True,
            )
        if pushed.outcome != "exists":
            log.info(f"{reference.normalize(target)} {pushed.descriptor.digest}{_OUTCOMES.get(pushed.outcome, '')}")
        if key is not None and pushed.outcome == "exists":
            log.warn(f"{reference.normalize(target)}: the registry's image was left as it was: not signed")
        elif key is not None:
            sign_pushed(cache, name, target, pushed.descriptor.digest, key, options)
    return 0


_OUTCOMES = {"merged": " (merged with the platforms of the registry's index)", "unchanged": " (unchanged)"}


def run_verify(args: argparse.Namespace, common: CommonOptions) -> int:
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
    options = registry_options(common) if args.repair else None
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
