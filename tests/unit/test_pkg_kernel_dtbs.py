"""A kernel package's device trees (``debian.kernel.dtbs`` → ``kernel.tar``'s ``boot/dtb/``) and the
archive components of a ``debian:`` section (``debian.components``, part of the lock's inputs)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from linuxkit.debian.sources import debian_sources
from linuxkit.errors import UserError
from linuxkit.packages import kmod
from linuxkit.packages.buildyml import parse_build_yml
from linuxkit.packages.debian_image import archive_components
from linuxkit.packages.fstree import Tree
from linuxkit.packages.lockfile import inputs_digest

VERSION = "6.1.0-99-arm64"


def _kernel_tree(tmp_path: Path) -> Tree:
    tree = Tree(tmp_path / "stage")
    tree.root.mkdir()
    base = f"usr/lib/linux-image-{VERSION}"
    for name in ("bcm2837-rpi-3-b.dtb", "bcm2837-rpi-3-b-plus.dtb", "bcm2711-rpi-4-b.dtb", "bcm2837-rpi-cm3-io3.dtb"):
        tree.add_bytes(f"{base}/broadcom/{name}", name.encode(), origin="linux-image")
    tree.add_bytes(f"{base}/freescale/imx8mq-evk.dtb", b"imx", origin="linux-image")
    tree.add_bytes(f"lib/modules/{VERSION}/modules.order", b"", origin="linux-image")
    return tree


def test_device_trees_are_placed_under_boot_dtb(tmp_path: Path) -> None:
    tree = _kernel_tree(tmp_path)
    found = kmod.device_trees(tree, VERSION, ["broadcom/bcm2837-rpi-3-b*.dtb", "/broadcom/bcm2711-rpi-4-b.dtb"])
    assert sorted(found) == [
        "boot/dtb/broadcom/bcm2711-rpi-4-b.dtb",
        "boot/dtb/broadcom/bcm2837-rpi-3-b-plus.dtb",
        "boot/dtb/broadcom/bcm2837-rpi-3-b.dtb",
    ]
    assert found["boot/dtb/broadcom/bcm2711-rpi-4-b.dtb"].read_bytes() == b"bcm2711-rpi-4-b.dtb"


def test_a_device_tree_pattern_matching_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"no device tree of kernel 6\.1\.0-99-arm64 matches broadcom/bcm2712") as err:
        kmod.device_trees(_kernel_tree(tmp_path), VERSION, ["broadcom/bcm2712*.dtb"])
    assert err.value.hint and f"usr/lib/linux-image-{VERSION}/" in err.value.hint


def test_kernel_tar_holds_the_device_trees_with_their_directories(tmp_path: Path) -> None:
    tree = _kernel_tree(tmp_path)
    dtbs = kmod.device_trees(tree, VERSION, ["broadcom/bcm2837-rpi-3-b.dtb"])
    data = kmod.kernel_tar(tree, VERSION, [], mtime=7, added=dtbs)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = {m.name: m for m in tf.getmembers()}
        dtb = members["boot/dtb/broadcom/bcm2837-rpi-3-b.dtb"]
        assert dtb.mtime == 7 and dtb.mode == 0o644
        got = tf.extractfile(dtb)
        assert got is not None and got.read() == b"bcm2837-rpi-3-b.dtb"
    assert {"boot", "boot/dtb", "boot/dtb/broadcom"} <= set(members)
    assert kmod.kernel_tar(tree, VERSION, [], mtime=7, added=dtbs) == data


def test_components_default_to_main_and_reach_the_sources() -> None:
    info = parse_build_yml("image: fw\ndebian:\n  packages: [raspi-firmware]\n", "build.yml")
    assert info.debian is not None and archive_components(info.debian) == ("main",)
    info = parse_build_yml(
        "image: fw\ndebian:\n  components: [main, non-free-firmware]\n  packages: [raspi-firmware]\n", "build.yml"
    )
    assert info.debian is not None and archive_components(info.debian) == ("main", "non-free-firmware")
    components = archive_components(info.debian)
    sources = debian_sources(("bookworm",), mirror="http://mirror.test/debian", components=components)
    assert sources[0].components == ("main", "non-free-firmware")


def test_components_change_the_lock_inputs_only_when_given() -> None:
    plain = inputs_digest(["raspi-firmware"], [], ["bookworm"])
    assert inputs_digest(["raspi-firmware"], [], ["bookworm"], ()) == plain
    assert inputs_digest(["raspi-firmware"], [], ["bookworm"], ["main", "non-free-firmware"]) != plain
