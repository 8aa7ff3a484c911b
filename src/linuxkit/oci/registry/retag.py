"""``pkg remote-tag FROM TO``: name an image of a registry with another tag, without pulling it when
both are in one repository (its manifest is stored again under the new tag), else copied over."""

from __future__ import annotations

import tempfile

from ... import log
from .. import reference
from ..cache import Cache
from .client import Client
from .errors import RegistryError
from .options import RegistryOptions
from .pull import pull
from .push import Pushed, push_image
from .remote import put_manifest, remote_digest, remote_manifest


def remote_tag(source: str, target: str, *, options: RegistryOptions | None = None) -> Pushed:
    """Make ``target`` name what ``source`` names in the registry (upstream's rules: nothing is done
    when ``target`` names it already; a different image under ``target`` is overwritten)."""
    opts = options or RegistryOptions()
    src = reference.parse(source).with_default_tag()
    dst = reference.parse(target).with_default_tag()
    if dst.digest or not dst.tag:
        raise RegistryError(f"cannot tag {dst}: the target must be a tag, not a digest")
    what = f"tagging {src} as {dst}"
    with Client(src.domain, opts, what) as client:
        found = remote_manifest(client, src.path, src.digest or src.tag or "latest")
        if found is None:
            raise RegistryError(f"{what}: {src} is not in the registry", hint="check its name and tag")
    with Client(dst.domain, opts, what) as client:
        current = remote_digest(client, dst.path, dst.tag)
        if current == found.digest:
            log.info(f"image {dst} already exists in the registry, identical to {src}, skipping")
            return Pushed(found.descriptor, "unchanged")
        if current is not None:
            log.info(f"image {dst} already exists in the registry, but is different from {src}, overwriting")
        if (src.domain, src.path) == (dst.domain, dst.path):
            put_manifest(client, dst.path, found.raw, found.media_type, dst.tag)
            return Pushed(found.descriptor, "pushed")
    # another repository: copied through a private cache (all platforms; blobs mounted when the registry is the same)
    with tempfile.TemporaryDirectory(prefix="linuxkit-remote-tag-") as tmp:
        cache = Cache(tmp)
        pull(cache, f"{src.name}@{found.digest}", options=opts, name=str(src))
        return push_image(cache, str(src), str(dst), options=opts)
