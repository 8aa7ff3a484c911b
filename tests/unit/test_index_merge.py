"""Merging indexes as upstream's pushes do (``AppendIndex``, ``cleanDanglingReferences``), and the
platforms ``pkg build|push --platforms`` accepts."""

from __future__ import annotations

import json

import pytest

from linuxkit.errors import UserError
from linuxkit.oci.descriptor import Descriptor
from linuxkit.oci.image import Platform
from linuxkit.oci.indexmerge import index_bytes, index_entries, merge_manifests, without_dangling
from linuxkit.oci.mediatypes import ANNOTATION_DOCKER_REFERENCE_DIGEST, OCI_INDEX, OCI_MANIFEST
from linuxkit.packages.pkgbuild import parse_platforms


def image(n: int, arch: str, variant: str | None = None) -> Descriptor:
    plat = {"architecture": arch, "os": "linux", **({"variant": variant} if variant else {})}
    return Descriptor(OCI_MANIFEST, "sha256:" + f"{n:064x}", 400 + n, platform=plat)


def attestation(n: int, describes: Descriptor) -> Descriptor:
    return Descriptor(
        OCI_MANIFEST,
        "sha256:" + f"{n:064x}",
        800 + n,
        annotations={ANNOTATION_DOCKER_REFERENCE_DIGEST: describes.digest, "vnd.docker.reference.type": "x"},
        platform={"architecture": "unknown", "os": "unknown"},
    )


def digests(items: list[Descriptor] | None) -> list[str]:
    assert items is not None
    return [d.digest[-2:] for d in items]


def test_the_registrys_other_platforms_are_kept_and_ours_win() -> None:
    amd_new, amd_old, arm_old, s390_old = image(1, "amd64"), image(2, "amd64"), image(3, "arm64"), image(4, "s390x")
    merged = merge_manifests([amd_new], [amd_old, arm_old, s390_old])
    assert digests(merged) == ["01", "03", "04"]  # ours first, then theirs in their order, old amd64 gone


def test_nothing_to_push_when_the_registry_lists_all_of_ours() -> None:
    amd, arm = image(1, "amd64"), image(2, "arm64")
    assert merge_manifests([amd], [arm, amd]) is None
    assert merge_manifests([amd, arm], [arm, amd]) is None
    assert merge_manifests([amd, arm], [amd]) is not None


def test_variants_are_platforms_of_their_own() -> None:
    v7, v6 = image(1, "arm", "v7"), image(2, "arm", "v6")
    assert digests(merge_manifests([v7], [v6])) == ["01", "02"]


def test_attestations_follow_the_image_they_describe() -> None:
    amd_new, amd_old, arm = image(1, "amd64"), image(2, "amd64"), image(3, "arm64")
    about_old, about_arm = attestation(10, amd_old), attestation(11, arm)
    merged = merge_manifests([amd_new], [amd_old, about_old, arm, about_arm])
    assert digests(merged) == ["01", "03", "0b"]  # the replaced image's attestation is dropped
    ours = attestation(12, image(9, "riscv64"))  # describes nothing listed
    assert digests(without_dangling([amd_new, ours, about_arm, arm])) == ["01", "0b", "03"]


def test_index_bytes_round_trip_like_the_cache_writes_them() -> None:
    items = [image(1, "amd64"), image(2, "arm64", "v8")]
    raw = index_bytes(items)
    assert json.loads(raw) == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [d.to_json() for d in items]}
    assert raw.startswith(b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[')
    assert [d.digest for d in index_entries(raw, "index")] == [d.digest for d in items]
    with pytest.raises(ValueError, match="manifests is not a list"):
        index_entries(b'{"manifests": 3}', "index")


def test_platforms_flag() -> None:
    assert parse_platforms("linux/amd64, linux/arm64,,linux/amd64") == (
        Platform("linux", "amd64"),
        Platform("linux", "arm64"),
    )
    assert parse_platforms("linux/aarch64") == (Platform("linux", "arm64"),)
    assert parse_platforms("") == ()
    for bad, why in (
        ("amd64", "invalid target platform specification 'amd64'"),
        ("linux/", "invalid target platform"),
        ("linux/foo", "unknown platform 'linux/foo'"),
        ("windows/amd64", "unknown platform 'windows/amd64'"),
    ):
        with pytest.raises(UserError, match=why) as info:
            parse_platforms(bad)
        assert info.value.hint
