"""Architecture names: the host's, and Go/OCI spellings (``amd64``, ``arm64``) of kernel ones.

Kept apart from :mod:`linuxkit.oci.image` so that the command line can name the host's
architecture (``--arch`` defaults) without loading image code; ``os.uname`` is what
``platform.machine`` reads, without importing ``platform`` (1.3 ms).
"""

from __future__ import annotations

import os

_GOARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "riscv64": "riscv64",
    "s390x": "s390x",
    "ppc64le": "ppc64le",
}


def normalize_arch(arch: str) -> str:
    """Accept ``x86_64``/``aarch64`` spellings as well as Go's."""
    return _GOARCH.get(arch.lower(), arch.lower())


def host_arch() -> str:
    """The host architecture in Go/OCI spelling (amd64, arm64, ...)."""
    return normalize_arch(os.uname().machine)
