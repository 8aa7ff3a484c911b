"""The registry client's error type."""

from __future__ import annotations

from ...errors import BuildError


class RegistryError(BuildError):
    """Talking to a registry failed; the message names the image and the cause."""


class AuthError(RegistryError):
    """The registry refused our credentials (or asked for some we do not have)."""
