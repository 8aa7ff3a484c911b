"""The optional dependencies of the cloud verbs: imported only by the verb that needs them, and a missing one is
a clear error naming the extra that provides it."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import UserError

#: extra → the distributions it installs (pyproject.toml's optional-dependencies say the same; a test checks)
EXTRAS: dict[str, tuple[str, ...]] = {
    "aws": ("boto3",),
    "azure": ("azure-storage-blob", "azure-identity", "azure-mgmt-compute"),
    "gcp": ("google-cloud-storage", "google-auth"),
    "openstack": ("openstacksdk",),
    "vcenter": ("pyvmomi",),
    "scaleway": ("boto3",),
    "virtualization": ("pyobjc-framework-Virtualization",),  # run virtualization (macOS)
    "signing": ("cryptography",),  # --sign-key of the push verbs, --verify-key/--verify-policy
}


def require(extra: str, module: str, *, verb: str) -> ModuleType:
    """``import module``, or a :class:`UserError` saying which extra to install for ``verb``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        wanted = ", ".join(EXTRAS.get(extra, (module,)))
        raise UserError(
            f"linuxkit {verb} needs the optional '{extra}' dependencies ({wanted}): {exc}",
            hint=f"install them with: pip install 'linuxkit[{extra}]'",
        ) from exc
