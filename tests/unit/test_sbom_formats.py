"""`linuxkit sbom`'s pure parts: the SBOM read back from a tar or a cpio initrd, and CycloneDX 1.5 from SPDX."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from linuxkit.cyclonedx import from_spdx
from linuxkit.errors import UserError
from linuxkit.formats.cpio import CpioWriter
from linuxkit.sbom_files import output_file, sbom_from_output

SBOM = b'{"spdxVersion": "SPDX-2.3"}\n'
DOC = {
    "spdxVersion": "SPDX-2.3",
    "name": "sbom",
    "creationInfo": {"created": "2024-01-02T00:00:00Z"},
    "packages": [
        {"SPDXID": "SPDXRef-Image", "name": "docker.io/linuxkit/getty", "primaryPackagePurpose": "CONTAINER"},
        {
            "SPDXID": "SPDXRef-libc",
            "name": "libc6",
            "versionInfo": "2.36-9+deb12u13",
            "supplier": "Person: GNU Libc Maintainers (debian-glibc@lists.debian.org)",
            "licenseDeclared": "LGPL-2.1-or-later AND LicenseRef-public-domain",
            "checksums": [{"algorithm": "SHA256", "checksumValue": "ab" * 32}],
            "externalRefs": [
                {
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": "pkg:deb/debian/libc6@2.36-9%2Bdeb12u13?arch=amd64&distro=debian-12",
                }
            ],
        },
        {"SPDXID": "SPDXRef-busybox", "name": "busybox-static", "licenseDeclared": "NOASSERTION"},
    ],
    "files": [
        {
            "SPDXID": "SPDXRef-File-libc",
            "fileName": "lib/libc.so.6",
            "checksums": [
                {"algorithm": "SHA1", "checksumValue": "a" * 40},
                {"algorithm": "SHA256", "checksumValue": "b" * 64},
            ],
        }
    ],
    "relationships": [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": "SPDXRef-Image"},
        {"spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS", "relatedSpdxElement": "SPDXRef-libc"},
        {"spdxElementId": "SPDXRef-libc", "relationshipType": "CONTAINS", "relatedSpdxElement": "SPDXRef-File-libc"},
        {
            "spdxElementId": "SPDXRef-File-libc",
            "relationshipType": "GENERATED_FROM",
            "relatedSpdxElement": "SPDXRef-libc",
        },
    ],
}


def _tar(path: Path, members: dict[str, bytes], *, compress: bool = False) -> Path:
    with tarfile.open(path, "w:gz" if compress else "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _initrd(path: Path, members: dict[str, bytes]) -> Path:
    raw = io.BytesIO()
    cpio = CpioWriter(raw)
    for name, data in members.items():
        cpio.write_header(name.encode(), kind=0o100000, mode=0o644, size=len(data))
        cpio.write(data)
    cpio.close()
    # two gzip members, as an initrd made of several parts is
    half = len(raw.getvalue()) // 2
    path.write_bytes(gzip.compress(raw.getvalue()[:half]) + gzip.compress(raw.getvalue()[half:]))
    return path


@pytest.mark.parametrize("compress", [False, True])
def test_the_sbom_of_a_tar_output(tmp_path: Path, compress: bool) -> None:
    out = _tar(tmp_path / "x.tar", {"bin/sh": b"x" * 5000, "sbom.spdx.json": SBOM}, compress=compress)
    assert sbom_from_output(out, "sbom.spdx.json") == SBOM
    assert output_file(str(out)) == out
    with pytest.raises(UserError, match=r"has no other.json"):
        sbom_from_output(out, "other.json")


def test_the_sbom_of_a_kernel_initrd_output_by_its_prefix(tmp_path: Path) -> None:
    initrd = _initrd(tmp_path / "m-initrd.img", {"etc": b"", "bin/busybox": b"y" * 7, "sbom.spdx.json": SBOM})
    found = output_file(str(tmp_path / "m"))
    assert found == initrd
    assert sbom_from_output(found, "/sbom.spdx.json") == SBOM
    assert output_file(str(tmp_path / "nothing")) is None


def test_a_file_that_is_neither_is_a_user_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00" * 100 + b"not an archive")
    with pytest.raises(UserError, match=r"cannot read it as a tar or a cpio initrd"):
        sbom_from_output(junk, "sbom.spdx.json")
    truncated = tmp_path / "t-initrd.img"
    truncated.write_bytes(_initrd(tmp_path / "whole", {"sbom.spdx.json": SBOM}).read_bytes()[:40])
    with pytest.raises(UserError):
        sbom_from_output(truncated, "sbom.spdx.json")


def test_cyclonedx_has_the_same_facts_and_passes_the_1_5_schema() -> None:
    bom = from_spdx(DOC)
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(json.dumps(bom)) is None
    by_ref = {c["bom-ref"]: c for c in bom["components"]}
    libc = by_ref["SPDXRef-libc"]
    assert libc["type"] == "library"
    assert libc["version"] == "2.36-9+deb12u13"
    assert libc["licenses"] == [{"expression": "LGPL-2.1-or-later AND LicenseRef-public-domain"}]
    assert libc["hashes"] == [{"alg": "SHA-256", "content": "ab" * 32}]
    assert libc["supplier"] == {
        "name": "GNU Libc Maintainers",
        "contact": [{"email": "debian-glibc@lists.debian.org"}],
    }
    assert PackageURL.from_string(libc["purl"]).qualifiers == {"arch": "amd64", "distro": "debian-12"}
    assert libc["properties"] == [{"name": "linuxkit:contained-by", "value": "SPDXRef-Image"}]
    assert by_ref["SPDXRef-Image"]["type"] == "container"
    assert "licenses" not in by_ref["SPDXRef-busybox"]  # NOASSERTION: no claim
    libc_file = by_ref["SPDXRef-File-libc"]
    assert libc_file["type"] == "file"
    assert libc_file["properties"] == [
        {"name": "linuxkit:contained-by", "value": "SPDXRef-libc"},
        {"name": "linuxkit:generated-from", "value": "SPDXRef-libc"},
    ]
    assert bom["metadata"]["timestamp"] == "2024-01-02T00:00:00Z"
    assert from_spdx(DOC) == bom  # deterministic, serial number included
