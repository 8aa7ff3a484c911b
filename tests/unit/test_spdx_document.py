"""The SPDX document of a Debian-built package image: purl, supplier, relationships, determinism, and
what spdx-tools says of it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from linuxkit.debian.model import DebRef
from linuxkit.packages.debian_copyright import Licensing, copyright_licensing
from linuxkit.packages.spdx import (
    DebianPackage,
    ImageFile,
    distro,
    package_document,
    purl,
    render,
    supplier,
    verification_code,
)

BUSYBOX = DebRef(
    "busybox-static",
    "1:1.35.0-4+deb12u1+b1",
    "amd64",
    "bookworm",
    "pool/main/b/busybox/busybox-static_1.35.0-4+deb12u1+b1_amd64.deb",
    928188,
    "3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744",
)
LIBC = DebRef("libc6", "2.36-9+deb12u13", "amd64", "bookworm-security", "pool/main/g/glibc/libc6.deb", 1, "ab" * 32)
GPL = Licensing("GPL-2.0-or-later AND LicenseRef-public-domain", {"LicenseRef-public-domain": "no rights reserved"})


def test_purl_names_the_package_version_arch_and_debian_release() -> None:
    plain = DebianPackage(LIBC, source="glibc")
    assert purl(plain) == "pkg:deb/debian/libc6@2.36-9%2Bdeb12u13?arch=amd64&distro=debian-12&upstream=glibc"
    # an epoch's colon stays; a binNMU's source version differs from the package's: upstream carries it
    rebuilt = DebianPackage(BUSYBOX, source="busybox (1:1.35.0-4+deb12u1)")
    assert purl(rebuilt) == (
        "pkg:deb/debian/busybox-static@1:1.35.0-4%2Bdeb12u1%2Bb1?arch=amd64&distro=debian-12"
        "&upstream=busybox%401%3A1.35.0-4%2Bdeb12u1"
    )
    same = DebianPackage(DebRef("crun", "1.21-1", "arm64", "trixie", "f", 1, "0" * 64))
    assert purl(same) == "pkg:deb/debian/crun@1.21-1?arch=arm64&distro=debian-13"


def test_distro_and_supplier() -> None:
    assert distro("bookworm-updates") == "debian-12"
    assert distro("sid") == "debian-sid"
    assert distro("duke") == "debian-duke"
    assert supplier("GNU Libc Maintainers <debian-glibc@lists.debian.org>") == (
        "Person: GNU Libc Maintainers (debian-glibc@lists.debian.org)"
    )
    assert supplier("") == "NOASSERTION"


def _document(tmp_path: Path) -> dict[str, object]:
    (tmp_path / "busybox").write_bytes(b"\x7fELF busybox")
    (tmp_path / "libc.so.6").write_bytes(b"\x7fELF libc")
    (tmp_path / "script").write_bytes(b"#!/bin/sh\n")
    (tmp_path / "bundle").write_bytes(b"made from libc\n")
    files = [
        ImageFile("bin/busybox", tmp_path / "busybox", "busybox-static"),
        ImageFile("lib/x86_64-linux-gnu/libc.so.6", tmp_path / "libc.so.6", "libc6"),
        ImageFile("usr/bin/getty.sh", tmp_path / "script"),  # from the package directory
        ImageFile("etc/bundle", tmp_path / "bundle", "", ("libc6",)),  # a concat of libc6's files
    ]
    packages = [
        DebianPackage(LIBC, "glibc", "GNU Libc Maintainers <debian-glibc@lists.debian.org>", "", GPL),
        DebianPackage(BUSYBOX, "busybox (1:1.35.0-4+deb12u1)", "Debian Install System Team <debian-boot@l.d.o>"),
    ]
    return package_document(
        "docker.io/linuxkit/getty", "abc123", "amd64", packages, files, created=datetime(2024, 1, 2, tzinfo=UTC)
    )


def test_the_document_is_valid_spdx_and_says_where_every_file_came_from(tmp_path: Path) -> None:
    doc = _document(tmp_path)
    out = tmp_path / "doc.spdx.json"
    out.write_bytes(render(doc))
    assert validate_full_spdx_document(parse_file(str(out))) == []
    packages = {p["name"]: p for p in doc["packages"]}  # type: ignore[attr-defined]
    assert set(packages) == {"docker.io/linuxkit/getty", "busybox-static", "libc6"}
    libc = packages["libc6"]
    assert libc["versionInfo"] == "2.36-9+deb12u13"
    assert libc["checksums"] == [{"algorithm": "SHA256", "checksumValue": "ab" * 32}]
    assert libc["licenseDeclared"] == "GPL-2.0-or-later AND LicenseRef-public-domain"
    assert packages["busybox-static"]["licenseDeclared"] == "NOASSERTION"
    assert doc["hasExtractedLicensingInfos"] == [
        {"licenseId": "LicenseRef-public-domain", "extractedText": "no rights reserved", "name": "public-domain"}
    ]
    ids = {p["SPDXID"]: p["name"] for p in doc["packages"]}  # type: ignore[attr-defined]
    files = {f["SPDXID"]: f["fileName"] for f in doc["files"]}  # type: ignore[attr-defined]
    ids.update(files)
    triples = {
        (ids.get(r["spdxElementId"], r["spdxElementId"]), r["relationshipType"], ids[r["relatedSpdxElement"]])
        for r in doc["relationships"]
    }  # type: ignore[attr-defined]
    assert triples == {
        ("SPDXRef-DOCUMENT", "DESCRIBES", "docker.io/linuxkit/getty"),
        ("docker.io/linuxkit/getty", "CONTAINS", "busybox-static"),
        ("docker.io/linuxkit/getty", "CONTAINS", "libc6"),
        ("busybox-static", "CONTAINS", "./bin/busybox"),
        ("libc6", "CONTAINS", "./lib/x86_64-linux-gnu/libc.so.6"),
        ("docker.io/linuxkit/getty", "CONTAINS", "./usr/bin/getty.sh"),
        ("docker.io/linuxkit/getty", "CONTAINS", "./etc/bundle"),
        ("./etc/bundle", "GENERATED_FROM", "libc6"),
    }
    busybox_file = next(f for f in doc["files"] if f["fileName"] == "./bin/busybox")  # type: ignore[attr-defined]
    sha1 = busybox_file["checksums"][0]["checksumValue"]
    assert packages["busybox-static"]["packageVerificationCode"] == {
        "packageVerificationCodeValue": verification_code([sha1])
    }
    assert doc["creationInfo"]["created"] == "2024-01-02T00:00:00Z"  # type: ignore[index]


def test_the_same_inputs_give_the_same_bytes_and_other_inputs_another_namespace(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first, second = _document(tmp_path / "one"), _document(tmp_path / "two")
    assert render(first) == render(second)
    (tmp_path / "two" / "busybox").write_bytes(b"changed")
    files = [ImageFile("bin/busybox", tmp_path / "two" / "busybox", "busybox-static")]
    changed = package_document(
        "docker.io/linuxkit/getty", "abc123", "amd64", [DebianPackage(BUSYBOX)], files, created=datetime.now(UTC)
    )
    assert changed["documentNamespace"] != first["documentNamespace"]
    assert json.loads(render(first))["documentNamespace"].startswith("https://github.com/linuxkit/linuxkit/pkg/")


def test_licensing_of_a_real_dep5_text_reaches_the_package(tmp_path: Path) -> None:
    text = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: ISC\n"
    (tmp_path / "f").write_bytes(b"x")
    doc = package_document(
        "i",
        "",
        "amd64",
        [DebianPackage(LIBC, licensing=copyright_licensing(text))],
        [ImageFile("f", tmp_path / "f", "libc6")],
        created=datetime(2020, 1, 1, tzinfo=UTC),
    )
    assert [p.get("licenseDeclared") for p in doc["packages"]] == ["NOASSERTION", "ISC"]  # type: ignore[attr-defined]
