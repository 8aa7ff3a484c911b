"""The registry options of the verbs that talk to registries (``build``, ``cache pull|push|verify``,
``pkg build --push``): mirrors (``--mirror``, ``LINUXKIT_MIRROR``), CA files and credentials."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError
from ..oci.registry.options import RegistryOptions, parse_registry_creds
from .common import CommonOptions


def registry_options(common: CommonOptions) -> RegistryOptions:
    """Mirrors (``--mirror``, ``LINUXKIT_MIRROR``) and CA files as upstream reads them."""
    raw = [m for m in os.environ.get("LINUXKIT_MIRROR", "").replace(",", " ").split() if m] + common.mirrors
    mirrors: dict[str, str] = {}
    for item in raw:
        key, eq, value = item.partition("=")
        if not eq:
            key, value = "*", item
        if not value.startswith(("http://", "https://")):
            raise UserError(f"mirror {value!r} must start with http:// or https://")
        for host in (
            ("docker.io", "index.docker.io", "registry-1.docker.io") if key.rstrip("/") == "docker.io" else (key,)
        ):
            mirrors[host] = value
    for cert in common.cert_files:
        if not Path(cert).is_file():
            raise UserError(f"failed to read certificate file {cert!r}")
    try:
        creds = parse_registry_creds(common.registry_creds)
    except ValueError as exc:
        raise UserError(str(exc), hint="e.g. --registry-creds ghcr.io=me:TOKEN or --registry-creds host=TOKEN") from exc
    return RegistryOptions(mirrors=mirrors, cert_files=tuple(Path(c) for c in common.cert_files), credentials=creds)
