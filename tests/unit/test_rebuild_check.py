"""``pkg verify``'s comparison: per platform, the config and layers that differ, and the index."""

from __future__ import annotations

from linuxkit.packages.rebuild_check import ImageView, Published, compare


def d(n: int) -> str:
    return f"sha256:{n:064x}"


AMD = ImageView(d(1), d(2), (d(3), d(4)))
ARM = ImageView(d(5), d(6), (d(7),))


def test_identical_images_match() -> None:
    both = Published(d(9), {"linux/amd64": AMD, "linux/arm64": ARM})
    result = compare(both, both)
    assert result.matches
    assert result.lines == (f"linux/amd64: match {d(1)}", f"linux/arm64: match {d(5)}", f"index: match {d(9)}")


def test_a_differing_layer_and_config_are_named() -> None:
    other = ImageView(d(10), d(11), (d(3), d(12), d(13)))
    result = compare(Published(d(9), {"linux/amd64": AMD}), Published(d(14), {"linux/amd64": other}))
    assert not result.matches
    assert result.lines == (
        f"linux/amd64: differs: rebuilt {d(1)}, published {d(10)}",
        f"  config: rebuilt {d(2)}, published {d(11)}",
        "  layers: 2 rebuilt, 3 published",
        f"  layer 1: rebuilt {d(4)}, published {d(12)}",
        f"  layer 2: rebuilt (none), published {d(13)}",
        f"index: differs: rebuilt {d(9)}, published {d(14)}",
    )


def test_platforms_not_rebuilt_leave_the_index_out_and_missing_ones_fail() -> None:
    published = Published(d(9), {"linux/amd64": AMD, "linux/arm64": ARM})
    result = compare(Published(d(15), {"linux/amd64": AMD}), published)
    assert result.matches and result.lines == (f"linux/amd64: match {d(1)}",)
    not_there = compare(Published(d(15), {"linux/amd64": AMD}), Published(d(9), {"linux/amd64": None}))
    assert not not_there.matches and "its image is not there" in not_there.lines[0]
    unpublished = compare(Published(d(15), {"linux/arm64": ARM}), Published(d(9), {"linux/amd64": AMD}))
    assert not unpublished.matches and unpublished.lines[0] == "linux/arm64: not published"
