"""``pkg manifest``: the index of a tag rebuilt in the registry from its ``TAG-<arch>`` images."""

from __future__ import annotations

from collections.abc import Sequence

from ... import log
from ...errors import UserError
from .. import reference
from ..descriptor import Descriptor
from ..digest import of_bytes
from ..image import Platform
from ..indexmerge import INDEX_PLATFORMS, index_bytes, index_entries, merge_manifests
from ..mediatypes import OCI_INDEX, is_image_manifest, is_index
from .client import Client
from .errors import RegistryError
from .options import RegistryOptions
from .push import Pushed
from .remote import put_manifest, remote_manifest


def push_arch_index(
    ref: str, *, options: RegistryOptions | None = None, platforms: Sequence[str] = INDEX_PLATFORMS
) -> Pushed:
    """Point ``ref`` in its registry at an index of the ``ref-<arch>`` images there, for each of
    ``platforms`` (upstream's list), merged with the index ``ref`` names already (its other platforms
    stay). Missing arch images are skipped with a warning; none at all is an error."""
    opts = options or RegistryOptions()
    target = reference.parse(ref).with_default_tag()
    tag = target.tag or "latest"
    what = f"updating the index {target}"
    with Client(target.domain, opts, what) as client:
        found: list[Descriptor] = []
        for text in platforms:
            plat = Platform.parse(text)
            arch_tag = f"{tag}-{plat.architecture}"
            image = remote_manifest(client, target.path, arch_tag)
            if image is None:
                log.warn(f"image {target.name}:{arch_tag} not found; skipping")
                continue
            if not is_image_manifest(image.media_type):
                raise RegistryError(
                    f"{what}: {target.name}:{arch_tag} is not a single-platform image ({image.media_type})",
                    hint="a TAG-<arch> tag must name the image of that architecture",
                )
            found.append(image.descriptor.with_platform(plat))
        if not found:
            raise UserError(
                f"{what}: the registry has no {target.name}:{tag}-<arch> image for "
                + ", ".join(p.split("/")[1] for p in platforms),
                hint="push the images of each platform first (`linuxkit pkg push --platforms linux/ARCH DIR`)",
            )
        current = remote_manifest(client, target.path, tag)
        entries: list[Descriptor] | None = found
        if current is not None:
            if not is_index(current.media_type):
                raise RegistryError(
                    f"{what}: {target} is a single-platform image, not an index",
                    hint="remove that tag from the registry, or choose another tag",
                )
            try:
                entries = merge_manifests(found, index_entries(current.raw, f"index {current.digest}"))
            except ValueError as exc:
                raise RegistryError(f"{what}: {exc}") from exc
        if entries is None and current is not None:
            log.info(f"{target}: the index already lists every platform")
            return Pushed(current.descriptor, "unchanged")
        raw = index_bytes(entries or found)
        desc = Descriptor(OCI_INDEX, of_bytes(raw), len(raw))
        if current is not None and current.digest == desc.digest:
            return Pushed(desc, "unchanged")
        put_manifest(client, target.path, raw, desc.media_type, tag)
    return Pushed(desc, "pushed")
