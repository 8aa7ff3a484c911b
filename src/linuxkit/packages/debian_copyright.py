"""Licences of a Debian package from its ``usr/share/doc/NAME/copyright`` file, as SPDX expressions.

Only machine-readable copyright files (DEP-5: a first paragraph with ``Format:`` naming the
copyright-format specification) are read: the synopsis (first line) of every ``License:`` field of
a ``Files:`` paragraph (and of the header paragraph), translated to SPDX. A free-text copyright
file gives no licence (the SBOM says ``NOASSERTION``): guessing from prose would be a claim the
file does not make.

DEP-5 short names are mapped to SPDX identifiers where the meaning is the same (``GPL-2+`` is
``GPL-2.0-or-later``, ``Expat`` is ``MIT``); any other name becomes ``LicenseRef-NAME`` with its
text (the stand-alone ``License:`` paragraph of that name) as extracted licensing information.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DEP5_FORMAT = re.compile(r"^https?://(www\.)?debian\.org/doc/packaging-manuals/copyright-format/", re.IGNORECASE)
NOASSERTION = "NOASSERTION"

#: DEP-5 (and common) short names whose SPDX identifier is not the same spelling.
_NAMES = {
    "apache-1.0": "Apache-1.0",
    "apache-1.1": "Apache-1.1",
    "apache-2": "Apache-2.0",
    "apache-2.0": "Apache-2.0",
    "artistic": "Artistic-1.0",
    "artistic-1.0": "Artistic-1.0",
    "artistic-2.0": "Artistic-2.0",
    "bsd-2-clause": "BSD-2-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "bsd-4-clause": "BSD-4-Clause",
    "bsl-1.0": "BSL-1.0",
    "bzip2-1.0.6": "bzip2-1.0.6",
    "cc-by-3.0": "CC-BY-3.0",
    "cc-by-4.0": "CC-BY-4.0",
    "cc-by-sa-3.0": "CC-BY-SA-3.0",
    "cc-by-sa-4.0": "CC-BY-SA-4.0",
    "cc0": "CC0-1.0",
    "cc0-1.0": "CC0-1.0",
    "curl": "curl",
    "expat": "MIT",
    "fsfap": "FSFAP",
    "fsful": "FSFUL",
    "fsfullr": "FSFULLR",
    "ftl": "FTL",
    "isc": "ISC",
    "libpng": "Libpng",
    "libpng-2.0": "libpng-2.0",
    "mit": "MIT",
    "mpl-1.1": "MPL-1.1",
    "mpl-2.0": "MPL-2.0",
    "ofl-1.1": "OFL-1.1",
    "openldap-2.8": "OLDAP-2.8",
    "openssl": "OpenSSL",
    "psf-2": "PSF-2.0",
    "python-2.0": "Python-2.0",
    "sleepycat": "Sleepycat",
    "unicode-dfs-2016": "Unicode-DFS-2016",
    "unlicense": "Unlicense",
    "wtfpl": "WTFPL",
    "x11": "X11",
    "zlib": "Zlib",
    "zpl-2.1": "ZPL-2.1",
    "0bsd": "0BSD",
}
#: ``with NAME exception`` of DEP-5 → SPDX exception identifiers (by licence major version where it differs).
_EXCEPTIONS = {
    "autoconf": {"2": "Autoconf-exception-2.0", "3": "Autoconf-exception-3.0"},
    "bison": {"": "Bison-exception-2.2"},
    "libtool": {"": "Libtool-exception"},
    "linux-syscall-note": {"": "Linux-syscall-note"},
    "gcc": {"": "GCC-exception-3.1"},
    "classpath": {"": "Classpath-exception-2.0"},
    "font": {"": "Font-exception-2.0"},
}
_GNU = re.compile(r"^(a|l)?gpl-?v?(\d(?:\.\d)?)(\+)?$", re.IGNORECASE)
_GNU_VERSIONS = {"GPL": ("1.0", "2.0", "3.0"), "LGPL": ("2.0", "2.1", "3.0"), "AGPL": ("1.0", "3.0")}
_GFDL = re.compile(r"^gfdl-(\d\.\d)(\+)?$", re.IGNORECASE)
_REF_CHARS = re.compile(r"[^A-Za-z0-9.\-]+")
_OPERATORS = {"and": "AND", "or": "OR"}


@dataclass(frozen=True)
class Licensing:
    """What one copyright file says: the SPDX expression (or ``NOASSERTION``) and the texts of the
    ``LicenseRef-`` identifiers it uses."""

    expression: str = NOASSERTION
    extracted: dict[str, str] = field(default_factory=dict)  # LicenseRef-… → its text


def license_ref(name: str) -> str:
    """``LicenseRef-`` + ``name`` reduced to the characters SPDX allows (letters, digits, ``.``, ``-``)."""
    return "LicenseRef-" + (_REF_CHARS.sub("-", name.replace("+", "plus")).strip("-") or "unnamed")


def spdx_license(name: str) -> str | None:
    """The SPDX identifier of one DEP-5 short name, or ``None`` when SPDX has no such licence."""
    key = name.strip().lower()
    if key in _NAMES:
        return _NAMES[key]
    gnu = _GNU.match(key)
    if gnu:
        family = {"a": "AGPL", "l": "LGPL", "": "GPL"}[(gnu.group(1) or "").lower()]
        version = gnu.group(2) if "." in gnu.group(2) else gnu.group(2) + ".0"
        if version not in _GNU_VERSIONS[family]:
            return None
        return f"{family}-{version}-{'or-later' if gnu.group(3) else 'only'}"
    gfdl = _GFDL.match(key)
    if gfdl and gfdl.group(1) in ("1.1", "1.2", "1.3"):
        return f"GFDL-{gfdl.group(1)}-{'or-later' if gfdl.group(2) else 'only'}"
    return None


def _exception(name: str, licence: str) -> str | None:
    table = _EXCEPTIONS.get(name.strip().lower())
    if table is None:
        return None
    major = licence.split("-")[1].split(".")[0] if "-" in licence else ""
    return table.get(major) or table.get("")


def _term(words: list[str], refs: dict[str, str]) -> str:
    """One licence of a synopsis (``GPL-2+``, ``GPL-2+ with OpenSSL exception``, free text) as SPDX."""
    text = " ".join(words)
    lowered = [w.lower() for w in words]
    if len(words) >= 3 and lowered[1] == "with":
        base = spdx_license(words[0])
        tail = words[2:-1] if lowered[-1] == "exception" else words[2:]
        exception = _exception(" ".join(tail), base) if base else None
        if base and exception:
            return f"{base} WITH {exception}"
    elif len(words) == 1 and (found := spdx_license(words[0])) is not None:
        return found
    ref = license_ref(text)
    refs.setdefault(ref, text)
    return ref


def synopsis_expression(synopsis: str, refs: dict[str, str]) -> str:
    """A DEP-5 licence synopsis (``GPL-2+ or Artistic``, ``A or B, and C``) as an SPDX expression;
    every ``LicenseRef-`` made is added to ``refs`` (ref → DEP-5 name)."""
    # a comma before "and"/"or" binds loosest in DEP-5: each side is one group
    groups = re.split(r",\s*(and|or)\s+", synopsis.strip(), flags=re.IGNORECASE)
    parts: list[str] = []
    for i, group in enumerate(groups):
        if i % 2 == 1:
            parts.append(_OPERATORS[group.lower()])
            continue
        terms: list[str] = []
        words: list[str] = []
        for word in group.replace(",", " ").split():
            if word.lower() in _OPERATORS and words:
                terms.extend([_term(words, refs), _OPERATORS[word.lower()]])
                words = []
            else:
                words.append(word)
        if words:
            terms.append(_term(words, refs))
        elif terms:
            terms.pop()  # a trailing operator
        inner = " ".join(terms)
        parts.append(f"({inner})" if len(groups) > 1 and len(terms) > 1 else inner)
    return " ".join(p for p in parts if p)


def _paragraphs(text: str) -> list[dict[str, str]]:
    """RFC-822 style paragraphs (field → value with continuation lines joined by newlines)."""
    out: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                out.append(current)
            current, key = {}, ""
        elif line[0] in " \t":
            if key:
                current[key] += "\n" + line.strip()
        elif ":" in line:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            current[key] = value.strip()
        else:
            key = ""  # not a field: a free-text file, or a broken line
    if current:
        out.append(current)
    return out


def _text_of(body: str) -> str:
    """A licence text of a DEP-5 field body: the lines after the synopsis, ``.`` lines as blank ones."""
    lines = body.split("\n")[1:]
    return "\n".join("" if line == "." else line for line in lines).strip()


def copyright_licensing(text: str) -> Licensing:
    """The licences of a copyright file (:class:`Licensing`); ``NOASSERTION`` when it is not DEP-5."""
    paragraphs = _paragraphs(text)
    if not paragraphs or not DEP5_FORMAT.match(paragraphs[0].get("format", "")):
        return Licensing()
    refs: dict[str, str] = {}
    expressions: list[str] = []
    texts: dict[str, str] = {}
    for i, para in enumerate(paragraphs):
        if "license" not in para:
            continue
        synopsis = para["license"].split("\n")[0].strip()
        body = _text_of(para["license"])
        if synopsis and body:
            texts.setdefault(synopsis.lower(), body)
        if not synopsis or (i > 0 and "files" not in para):
            continue  # a stand-alone licence text, not a use
        expression = synopsis_expression(synopsis, refs)
        if expression and expression not in expressions:
            expressions.append(expression)
    if not expressions:
        return Licensing()
    grouped = [f"({e})" if " " in e and len(expressions) > 1 else e for e in sorted(expressions)]
    extracted = {
        ref: texts.get(name.lower()) or f"{name}: named by the Debian copyright file, which gives no text for it"
        for ref, name in sorted(refs.items())
    }
    return Licensing(" AND ".join(grouped), extracted)
