"""``linuxkit sbom IMAGE|OUTPUT``: print an SBOM as SPDX 2.3 JSON (or CycloneDX 1.5 JSON).

OUTPUT is a build output holding ``sbom.spdx.json`` (a ``tar``, or ``kernel+initrd`` by its prefix or
its ``-initrd.img``); anything else is an image name: its SBOM attestations in the cache (pulled when
the image is missing), merged as ``build`` merges them when there are several.
"""

from __future__ import annotations

import argparse
import json
import sys

from .. import log
from ..cyclonedx import from_spdx
from ..errors import UserError
from ..oci import jsonfmt, reference, registry
from ..oci.cache import Cache
from ..oci.image import Platform
from ..sbom import SbomCollector, attestation_sboms
from ..sbom_files import MAX_SBOM, output_file, sbom_from_output
from .common import CommonOptions
from .registries import registry_options


def _image_sbom(args: argparse.Namespace, common: CommonOptions) -> bytes:
    cache, name = Cache(common.cache_dir), reference.normalize(args.target)
    platform = Platform.parse(args.platform)
    if cache.find(name) is None:
        with log.step(f"Pulling {name}"):
            registry.pull(cache, name, [platform], options=registry_options(common))
    documents = attestation_sboms(cache, name, platform)
    if not documents:
        raise UserError(
            f"{name} has no SBOM attestation for {platform}",
            hint="images built by `linuxkit pkg build` from Debian packages carry one; others only when their"
            " builder attached one (docker buildx --sbom)",
        )
    if len(documents) == 1:
        return documents[0]
    collector = SbomCollector()
    for document in documents:
        collector.add("", document, source=name)
    return collector.render()


def run(args: argparse.Namespace, common: CommonOptions) -> int:
    path = output_file(args.target)
    data = sbom_from_output(path, args.sbom_output) if path is not None else _image_sbom(args, common)
    try:  # the one JSON reader: an output or image's SBOM is untrusted (nesting bounded)
        document = jsonfmt.loads(data, "its SBOM", max_size=MAX_SBOM)
    except ValueError as exc:
        raise UserError(f"{args.target}: its SBOM is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise UserError(f"{args.target}: its SBOM is not an SPDX JSON document")
    if args.format == "cyclonedx":
        document = from_spdx(document)
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 0
