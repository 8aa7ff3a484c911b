"""SBOM attestations of Debian-built packages: written as BuildKit writes them, read back by ``build``'s
reader, kept in the package's index with their image, merged without duplicate identifiers."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from linuxkit.oci import mediatypes as mt
from linuxkit.oci.cache import Cache
from linuxkit.oci.image import Platform
from linuxkit.packages.attestation import add_sbom_attestation, subject_name
from linuxkit.packages.pkgbuild import _name_index
from linuxkit.sbom import SbomCollector, attestation_sboms

AMD64, ARM64 = Platform("linux", "amd64"), Platform("linux", "arm64")
N = "docker.io/library/n:t"


def _layer(content: bytes) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("f")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    buf.seek(0)
    return buf


def _doc(name: str, packages: list[dict[str, object]], files: list[dict[str, object]]) -> dict[str, object]:
    rels = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": name}]
    rels += [
        {"spdxElementId": str(p["SPDXID"]), "relationshipType": "CONTAINS", "relatedSpdxElement": str(f["SPDXID"])}
        for p in packages[:1]
        for f in files
    ]
    return {"spdxVersion": "SPDX-2.3", "packages": packages, "files": files, "relationships": rels}


def test_the_attestation_is_read_back_by_builds_reader_and_names_its_image(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    writer = cache.writer()
    image = writer.add_image({"architecture": "amd64", "os": "linux"}, [_layer(b"1")], platform=AMD64)
    doc = _doc("x", [{"SPDXID": "SPDXRef-P", "name": "p"}], [])
    attestation = add_sbom_attestation(writer, image, "docker.io/linuxkit/p:abc", "linux/amd64", doc)
    assert attestation.is_attestation
    assert attestation.annotations == {
        mt.ANNOTATION_DOCKER_REFERENCE_DIGEST: image.digest,
        mt.ANNOTATION_DOCKER_REFERENCE_TYPE: "attestation-manifest",
    }
    _name_index(cache, "docker.io/linuxkit/p:abc", {AMD64: image}, [attestation])
    assert [json.loads(d) for d in attestation_sboms(cache, "docker.io/linuxkit/p:abc", AMD64)] == [doc]
    assert attestation_sboms(cache, "docker.io/linuxkit/p:abc", ARM64) == []
    manifest = json.loads(cache.layout.read_blob(attestation.digest, attestation.size, "m"))
    (layer,) = manifest["layers"]
    statement = json.loads(cache.layout.read_blob(layer["digest"], layer["size"], "s"))
    assert statement["subject"] == [
        {"name": "pkg:docker/docker.io/linuxkit/p@abc?platform=linux%2Famd64", "digest": {"sha256": image.digest[7:]}}
    ]
    assert layer["annotations"] == {"in-toto.io/predicate-type": "https://spdx.dev/Document"}
    # the same document and image: the same manifest (a rebuild gives the same index)
    again = add_sbom_attestation(cache.writer(), image, "docker.io/linuxkit/p:abc", "linux/amd64", doc)
    assert again.digest == attestation.digest


def test_the_index_keeps_an_attestation_only_with_its_image(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    writer = cache.writer()
    amd = writer.add_image({"architecture": "amd64", "os": "linux"}, [_layer(b"a")], platform=AMD64)
    arm = writer.add_image({"architecture": "arm64", "os": "linux"}, [_layer(b"b")], platform=ARM64)
    amd_sbom = add_sbom_attestation(writer, amd, N, "linux/amd64", _doc("a", [], []))
    arm_sbom = add_sbom_attestation(writer, arm, N, "linux/arm64", _doc("b", [], []))
    _name_index(cache, N, {AMD64: amd}, [amd_sbom])
    _name_index(cache, N, {ARM64: arm}, [arm_sbom])
    root = cache.find(N)
    assert root is not None
    listed = [d.digest for d in cache.children(root)]
    assert listed == [amd.digest, arm.digest, amd_sbom.digest, arm_sbom.digest]  # images first, as BuildKit
    # amd64 rebuilt into another image: its old attestation goes with the old image
    amd2 = writer.add_image({"architecture": "amd64", "os": "linux"}, [_layer(b"c")], platform=AMD64)
    amd2_sbom = add_sbom_attestation(writer, amd2, N, "linux/amd64", _doc("c", [], []))
    _name_index(cache, N, {AMD64: amd2}, [amd2_sbom])
    root = cache.find(N)
    assert root is not None
    assert [d.digest for d in cache.children(root)] == [amd2.digest, arm.digest, amd2_sbom.digest, arm_sbom.digest]
    assert cache.platforms(N) == [AMD64, ARM64]


def test_subject_names() -> None:
    assert subject_name("localhost:5000/org/img:tag", "linux/arm64") == (
        "pkg:docker/localhost:5000/org/img@tag?platform=linux%2Farm64"
    )
    assert subject_name("localhost:5000/org/img", "linux/arm64") == "pkg:docker/localhost:5000/org/img"


def test_the_merge_lists_a_shared_package_once_and_keeps_clashing_files_apart() -> None:
    libc = {"SPDXID": "SPDXRef-Package-deb-libc6", "name": "libc6", "versionInfo": "2.36"}
    libc_file = {"SPDXID": "SPDXRef-File-libc", "fileName": "./lib/libc.so.6"}
    collector = SbomCollector()
    collector.add("containers/services/getty/lower", json.dumps(_doc("g", [libc], [dict(libc_file)])).encode())
    collector.add("containers/onboot/000-x/lower", json.dumps(_doc("o", [dict(libc)], [dict(libc_file)])).encode())
    merged = json.loads(collector.render())
    assert [p["SPDXID"] for p in merged["packages"]] == ["SPDXRef-Package-deb-libc6"]  # the same element: once
    files = {f["SPDXID"]: f["fileName"] for f in merged["files"]}
    assert files == {
        "SPDXRef-File-libc": "containers/services/getty/lower/lib/libc.so.6",
        "SPDXRef-File-libc-2": "containers/onboot/000-x/lower/lib/libc.so.6",
    }
    contains = sorted(r["relatedSpdxElement"] for r in merged["relationships"] if r["relationshipType"] == "CONTAINS")
    assert contains == ["SPDXRef-File-libc", "SPDXRef-File-libc-2"]
    assert len(merged["relationships"]) == 4  # two DESCRIBES (of g and o), two CONTAINS


def test_a_merge_without_clashes_is_upstreams_concatenation() -> None:
    a = _doc("a", [{"SPDXID": "SPDXRef-A", "name": "a"}], [{"SPDXID": "SPDXRef-F", "fileName": "f"}])
    b = _doc("b", [{"SPDXID": "SPDXRef-B", "name": "b"}], [])
    collector = SbomCollector()
    collector.add("", json.dumps(a).encode())
    collector.add("p", json.dumps(b).encode())
    merged = json.loads(collector.render())
    assert merged["packages"] == [*a["packages"], *b["packages"]]  # type: ignore[misc]
    assert merged["relationships"] == [*a["relationships"], *b["relationships"]]  # type: ignore[misc]
