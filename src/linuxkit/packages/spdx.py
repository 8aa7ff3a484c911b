"""The SPDX 2.3 document of a package image built from Debian packages (its SBOM attestation).

One SPDX package for the image (what the document describes), one per Debian package of the lock
(name, version, architecture, source package, licences from its copyright file, sha256 of the
``.deb``, purl, supplier), one SPDX file per regular file of the image's layer (SHA1 and SHA256),
and the relationships syft writes for BuildKit: the image ``CONTAINS`` every Debian package, a
Debian package ``CONTAINS`` the files it provided; a file made from Debian content (the kernel
and its modules tar, a ``concat``) is ``GENERATED_FROM`` those packages, and a file from the
package directory is contained by the image only.

Nothing in it varies between builds of the same inputs: identifiers and the namespace are derived
from the content, ``created`` is ``SOURCE_DATE_EPOCH`` (the files' mtime), lists are sorted.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..debian.model import DebRef
from .debian_copyright import NOASSERTION, Licensing

#: Debian release codenames → version numbers (purl's ``distro=debian-12``).
DEBIAN_RELEASES = {
    "buster": "10",
    "bullseye": "11",
    "bookworm": "12",
    "trixie": "13",
    "forky": "14",
    "sid": "sid",
    "unstable": "sid",
}
_ID_CHARS = re.compile(r"[^A-Za-z0-9.\-]+")


@dataclass(frozen=True)
class DebianPackage:
    """A package of the lock with what its ``.deb`` says about itself."""

    ref: DebRef
    source: str = ""  # the Source: field (``NAME`` or ``NAME (VERSION)``); empty: same as the package
    maintainer: str = ""
    homepage: str = ""
    licensing: Licensing = field(default_factory=Licensing)

    @property
    def source_name(self) -> str:
        return self.source.split(" ", 1)[0] if self.source else self.ref.name

    @property
    def source_version(self) -> str:
        match = re.search(r"\(([^)]+)\)", self.source)
        return match.group(1) if match else self.ref.version


@dataclass(frozen=True)
class ImageFile:
    """A regular file of the layer: its path (no leading slash), where its bytes are, and which Debian
    packages it came from (``contained_by``: it is that package's file; ``generated_from``: made from them)."""

    path: str
    staged: Path
    contained_by: str = ""
    generated_from: tuple[str, ...] = ()


def distro(suite: str) -> str:
    """``bookworm-security`` → ``debian-12`` (an unknown codename is kept: ``debian-NAME``)."""
    codename = suite.split("-", 1)[0].split("/", 1)[0]
    return "debian-" + DEBIAN_RELEASES.get(codename, codename)


def purl(package: DebianPackage) -> str:
    """``pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=debian-12`` (qualifiers sorted, as the purl
    specification asks; ``upstream=SOURCE`` when the source package has another name or version, as syft
    writes it)."""
    ref = package.ref
    qualifiers = {"arch": ref.architecture, "distro": distro(ref.suite)}
    if package.source_name != ref.name or package.source_version != ref.version:
        upstream = package.source_name
        if package.source_version != ref.version:
            upstream += "@" + package.source_version
        qualifiers["upstream"] = upstream
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in sorted(qualifiers.items()))
    return f"pkg:deb/debian/{quote(ref.name, safe='')}@{quote(ref.version, safe=':')}?{query}"


def supplier(maintainer: str) -> str:
    """``Name <mail>`` (a Debian ``Maintainer:``) → SPDX's ``Person: Name (mail)``."""
    match = re.match(r"^\s*(.*?)\s*<([^>]*)>\s*$", maintainer)
    if match:
        return f"Person: {match.group(1)} ({match.group(2)})" if match.group(1) else f"Person: ({match.group(2)})"
    return f"Person: {maintainer.strip()}" if maintainer.strip() else NOASSERTION


def element_id(kind: str, text: str) -> str:
    """An SPDX identifier (``SPDXRef-KIND-…``, letters, digits, ``.`` and ``-`` only); a short digest of
    ``text`` keeps two names that reduce to the same characters apart."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"SPDXRef-{kind}-{_ID_CHARS.sub('-', text).strip('-')[:80]}-{digest}"


def package_id(ref: DebRef) -> str:
    return element_id("Package-deb", f"{ref.name}-{ref.version}-{ref.architecture}")


def _file_checksums(path: Path) -> list[dict[str, str]]:
    sha1, sha256 = hashlib.sha1(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            sha1.update(chunk)
            sha256.update(chunk)
    return [
        {"algorithm": "SHA1", "checksumValue": sha1.hexdigest()},
        {"algorithm": "SHA256", "checksumValue": sha256.hexdigest()},
    ]


def _deb_package(package: DebianPackage) -> dict[str, Any]:
    ref = package.ref
    item: dict[str, Any] = {
        "name": ref.name,
        "SPDXID": package_id(ref),
        "versionInfo": ref.version,
        "supplier": supplier(package.maintainer),
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": False,  # True (with a verification code) when it provided files of the image
        "checksums": [{"algorithm": "SHA256", "checksumValue": ref.sha256}],
        "sourceInfo": f"built from the Debian source package {package.source_name} {package.source_version}",
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": package.licensing.expression,
        "copyrightText": NOASSERTION,
        "externalRefs": [
            {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl(package)}
        ],
    }
    if package.homepage:
        item["homepage"] = package.homepage
    return item


def verification_code(sha1s: Iterable[str]) -> str:
    """SPDX's package verification code: SHA1 of the sorted SHA1s of its files, concatenated."""
    return hashlib.sha1("".join(sorted(sha1s)).encode(), usedforsecurity=False).hexdigest()


def _verification_codes(
    packages: Sequence[dict[str, Any]], files: Sequence[dict[str, Any]], relationships: Sequence[dict[str, str]]
) -> None:
    """A package that ``CONTAINS`` elements has its files analysed (SPDX: ``filesAnalyzed`` true, with
    the verification code of the files it contains)."""
    sha1 = {f["SPDXID"]: f["checksums"][0]["checksumValue"] for f in files}
    for package in packages:
        contained = [
            r["relatedSpdxElement"]
            for r in relationships
            if r["spdxElementId"] == package["SPDXID"] and r["relationshipType"] == "CONTAINS"
        ]
        if not contained:
            continue
        package["filesAnalyzed"] = True
        package["packageVerificationCode"] = {
            "packageVerificationCodeValue": verification_code(sha1[c] for c in contained if c in sha1)
        }


def package_document(
    image: str,
    version: str,
    architecture: str,
    packages: Sequence[DebianPackage],
    files: Iterable[ImageFile],
    *,
    created: datetime,
) -> dict[str, Any]:
    """The SPDX 2.3 document (JSON object) of image ``image`` (``org/name``) at ``version`` (its tag)."""
    image_id = element_id("Image", image)
    by_name = {p.ref.name: p for p in packages}
    pkgs = [_deb_package(by_name[name]) for name in sorted(by_name)]
    relationships: list[dict[str, str]] = [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": image_id}
    ]
    relationships += [
        {"spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": p["SPDXID"]} for p in pkgs
    ]
    spdx_files: list[dict[str, Any]] = []
    for item in sorted(files, key=lambda f: f.path):
        file_id = element_id("File", f"{image}/{item.path}")
        spdx_files.append(
            {
                "fileName": "./" + item.path,
                "SPDXID": file_id,
                "checksums": _file_checksums(item.staged),
                "licenseConcluded": NOASSERTION,
                "copyrightText": NOASSERTION,
            }
        )
        owner = by_name.get(item.contained_by)
        container = package_id(owner.ref) if owner is not None else image_id
        relationships.append(
            {"spdxElementId": container, "relationshipType": "CONTAINS", "relatedSpdxElement": file_id}
        )
        for name in sorted(set(item.generated_from)):
            if name in by_name:
                relationships.append(
                    {
                        "spdxElementId": file_id,
                        "relationshipType": "GENERATED_FROM",
                        "relatedSpdxElement": package_id(by_name[name].ref),
                    }
                )
    extracted: dict[str, str] = {}
    for name in sorted(by_name):
        for ref, text in sorted(by_name[name].licensing.extracted.items()):
            extracted.setdefault(ref, text)  # the first package (by name) that gives a text names it
    root = {
        "name": image,
        "SPDXID": image_id,
        "versionInfo": version,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": False,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
        "primaryPackagePurpose": "CONTAINER",
        "comment": f"a LinuxKit package image for {architecture}, built from Debian packages",
    }
    _verification_codes([root, *pkgs], spdx_files, relationships)
    body: dict[str, Any] = {
        "packages": [root, *pkgs],
        "files": spdx_files,
        "relationships": relationships,
    }
    if extracted:
        body["hasExtractedLicensingInfos"] = [
            {"licenseId": ref, "extractedText": text, "name": ref.removeprefix("LicenseRef-")}
            for ref, text in extracted.items()
        ]
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()
    namespace = uuid.UUID(bytes=digest[:16], version=5)
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{image}:{version}" if version else image,
        "documentNamespace": f"https://github.com/linuxkit/linuxkit/pkg/{image}-{namespace}",
        "creationInfo": {
            "licenseListVersion": "3.20",
            "creators": ["Organization: LinuxKit", "Tool: linuxkit"],
            "created": created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        **body,
    }


def render(document: Mapping[str, Any]) -> bytes:
    """Compact JSON, one line and a newline (as the merged SBOM is written)."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
