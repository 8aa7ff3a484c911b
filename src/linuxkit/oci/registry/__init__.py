"""A small OCI distribution client: pull images into the cache and push them from it.

Public API::

    pull(cache, ref, platforms, options=...) -> Descriptor   # root (index or manifest) now named in the cache
    push(cache, ref, remote_ref=None, options=...) -> Descriptor
    push_image(cache, ref, ..., override=, merge=) -> Pushed      # upstream's cache push rules
    RegistryOptions(...)                                     # insecure hosts, mirrors, CA files, credentials

Everything goes through :class:`~linuxkit.oci.registry.client.Client` (one per registry host per
operation), which owns the bearer-token cache and sends through the project's one HTTP stack
(:mod:`linuxkit.http`: connections, redirects, the retry policy).
"""

from __future__ import annotations

from .errors import RegistryError
from .options import Credentials, RegistryOptions
from .pull import pull
from .push import Pushed, push, push_image

__all__ = ["Credentials", "Pushed", "RegistryError", "RegistryOptions", "pull", "push", "push_image"]
