"""``linuxkit pkg verify``'s comparison, without I/O: the images a rebuild made against the ones
published (in the cache or a registry), platform by platform, down to the config and each layer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ImageView:
    """One platform's image: its manifest digest, config digest and layer digests (bottom first)."""

    digest: str
    config: str
    layers: tuple[str, ...]


@dataclass(frozen=True)
class Published:
    """An image as some place holds it: the root digest (index or manifest) and each platform's image
    (``None``: the index lists the platform but its image is not there, e.g. never pulled)."""

    root: str
    images: Mapping[str, ImageView | None]


@dataclass(frozen=True)
class Comparison:
    lines: tuple[str, ...]
    matches: bool


def compare(rebuilt: Published, published: Published) -> Comparison:
    """Each rebuilt platform against the published one (``match``, or what differs); and the root
    digest when every platform published was rebuilt (an index also lists the SBOM attestations)."""
    lines: list[str] = []
    ok = True
    for platform, mine in sorted(rebuilt.images.items()):
        assert mine is not None
        theirs = published.images.get(platform)
        if platform not in published.images:
            lines.append(f"{platform}: not published")
            ok = False
        elif theirs is None:
            lines.append(f"{platform}: listed, but its image is not there to compare ({mine.digest} rebuilt)")
            ok = False
        elif theirs.digest == mine.digest:
            lines.append(f"{platform}: match {mine.digest}")
        else:
            ok = False
            lines.append(f"{platform}: differs: rebuilt {mine.digest}, published {theirs.digest}")
            lines.extend(f"  {line}" for line in _differences(mine, theirs))
    if set(published.images) <= set(rebuilt.images):
        if rebuilt.root == published.root:
            lines.append(f"index: match {rebuilt.root}")
        else:
            ok = False
            lines.append(f"index: differs: rebuilt {rebuilt.root}, published {published.root}")
    return Comparison(tuple(lines), ok)


def _differences(mine: ImageView, theirs: ImageView) -> list[str]:
    out = []
    if mine.config != theirs.config:
        out.append(f"config: rebuilt {mine.config}, published {theirs.config}")
    if len(mine.layers) != len(theirs.layers):
        out.append(f"layers: {len(mine.layers)} rebuilt, {len(theirs.layers)} published")
    for i in range(max(len(mine.layers), len(theirs.layers))):
        a = mine.layers[i] if i < len(mine.layers) else "(none)"
        b = theirs.layers[i] if i < len(theirs.layers) else "(none)"
        if a != b:
            out.append(f"layer {i}: rebuilt {a}, published {b}")
    if not out:
        out.append("config and layers are the same: the manifests differ in their annotations or media types")
    return out
