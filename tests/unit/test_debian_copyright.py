"""Licences of Debian packages from their copyright files (DEP-5 and free text) as SPDX expressions."""

from __future__ import annotations

import pytest
from license_expression import get_spdx_licensing

from linuxkit.packages.debian_copyright import (
    NOASSERTION,
    copyright_licensing,
    license_ref,
    spdx_license,
    synopsis_expression,
)

DEP5 = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: crun
Source: https://github.com/containers/crun

Files: *
Copyright: 2017-2024 Giuseppe Scrivano
License: GPL-2+

Files: libcrun/*
Copyright: 2017 Giuseppe Scrivano
License: LGPL-2.1+

Files: src/oci/*
Copyright: 2018 the libocispec authors
License: Apache-2.0 or LGPL-2.1+

Files: build-aux/*
Copyright: Free Software Foundation
License: GPL-3+ with Autoconf exception

Files: vendor/odd.c
Copyright: someone
License: public-domain

Files: debian/*
Copyright: 2019 Dmitry Smirnov
License: GPL-2+

License: public-domain
 The author placed this file in the public domain.
 .
 No rights reserved.

License: GPL-2+
 This program is free software; see /usr/share/common-licenses/GPL-2.
"""

FREE_TEXT = """\
This package was debianized by Someone <someone@example.org>.

It was downloaded from https://busybox.net/

Copyright (C) 1998-2011 Erik Andersen and others.
License: GPL-2
"""


def _valid(expression: str) -> bool:
    """A valid SPDX expression whose only identifiers SPDX does not list are LicenseRef-s."""
    info = get_spdx_licensing().validate(expression)
    return all(str(symbol).startswith("LicenseRef-") for symbol in info.invalid_symbols) and not [
        e for e in info.errors if not e.startswith("Unknown license key")
    ]


def test_a_dep5_file_gives_every_licence_of_its_files_paragraphs() -> None:
    found = copyright_licensing(DEP5)
    assert found.expression == (
        "(Apache-2.0 OR LGPL-2.1-or-later) AND GPL-2.0-or-later AND (GPL-3.0-or-later WITH Autoconf-exception-3.0)"
        " AND LGPL-2.1-or-later AND LicenseRef-public-domain"
    )
    # the stand-alone paragraph gives the text of the LicenseRef ("." lines are blank lines)
    assert found.extracted == {
        "LicenseRef-public-domain": "The author placed this file in the public domain.\n\nNo rights reserved."
    }
    assert _valid(found.expression)


def test_a_free_text_copyright_file_asserts_nothing() -> None:
    # busybox's copyright file is prose with a "License:" line: not machine-readable, so no claim is made
    assert copyright_licensing(FREE_TEXT).expression == NOASSERTION
    assert copyright_licensing("").expression == NOASSERTION
    assert copyright_licensing("Format: something else\n\nFiles: *\nLicense: MIT\n").expression == NOASSERTION


def test_the_header_paragraph_licence_counts_and_http_format_urls_are_dep5() -> None:
    text = "Format: http://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nLicense: Expat\n"
    assert copyright_licensing(text).expression == "MIT"


@pytest.mark.parametrize(
    ("name", "spdx"),
    [
        ("GPL-2", "GPL-2.0-only"),
        ("GPL-2+", "GPL-2.0-or-later"),
        ("GPL-2.0+", "GPL-2.0-or-later"),
        ("GPLv3+", "GPL-3.0-or-later"),
        ("LGPL-2.1", "LGPL-2.1-only"),
        ("lgpl-2.1+", "LGPL-2.1-or-later"),
        ("LGPL-3+", "LGPL-3.0-or-later"),
        ("AGPL-3", "AGPL-3.0-only"),
        ("GFDL-1.3+", "GFDL-1.3-or-later"),
        ("Expat", "MIT"),
        ("BSD-3-clause", "BSD-3-Clause"),
        ("Apache-2", "Apache-2.0"),
        ("Artistic", "Artistic-1.0"),
        ("OpenLDAP-2.8", "OLDAP-2.8"),
        ("zlib", "Zlib"),
        ("GPL-4", None),  # no such licence: a LicenseRef
        ("LGPL-1.5+", None),
        ("public-domain", None),
    ],
)
def test_dep5_short_names_map_to_spdx_identifiers(name: str, spdx: str | None) -> None:
    assert spdx_license(name) == spdx


@pytest.mark.parametrize(
    ("synopsis", "expression"),
    [
        ("GPL-1+ or Artistic", "GPL-1.0-or-later OR Artistic-1.0"),
        ("LGPL-2.1+ and GPL-2", "LGPL-2.1-or-later AND GPL-2.0-only"),
        ("GPL-2 with Linux-syscall-note exception", "GPL-2.0-only WITH Linux-syscall-note"),
        ("GPL-2+ with OpenSSL exception", "LicenseRef-GPL-2plus-with-OpenSSL-exception"),
        ("GPL-2+ or Artistic-2.0, and BSD-3-clause", "(GPL-2.0-or-later OR Artistic-2.0) AND BSD-3-Clause"),
        ("LGPLv3+_or_GPLv2+", "LicenseRef-LGPLv3plus-or-GPLv2plus"),
        ("GPL version 2", "LicenseRef-GPL-version-2"),
    ],
)
def test_synopses_become_valid_spdx_expressions(synopsis: str, expression: str) -> None:
    refs: dict[str, str] = {}
    assert synopsis_expression(synopsis, refs) == expression
    assert _valid(expression)
    assert all(ref.startswith("LicenseRef-") for ref in refs)


def test_license_refs_use_only_the_characters_spdx_allows() -> None:
    assert license_ref("BSD-3-clause (Berkeley)") == "LicenseRef-BSD-3-clause-Berkeley"
    assert license_ref("???") == "LicenseRef-unnamed"
