"""Mirror selection: explicit mirrors, environment, apt configuration (deb822 and one-line), Signed-By."""

from __future__ import annotations

from pathlib import Path

import pytest

from linuxkit.debian.sources import (
    DEFAULT_KEYRING,
    Source,
    debian_sources,
    derive_security_uri,
    parse_deb822_sources,
    parse_one_line_sources,
    uri_for,
)
from linuxkit.errors import UserError

DEB822 = """\
Types: deb deb-src
# a comment
URIs: http://mirror.test/debian/ http://other.test/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.test/debian-security
Suites: bookworm-security
Components: main
Signed-By: /etc/apt/keyrings/security.asc

Types: deb
Enabled: no
URIs: http://disabled.test/debian
Suites: trixie
Components: main

Types: deb-src
URIs: http://src.test/debian
Suites: sid
Components: main
"""

ONE_LINE = """\
# comment
deb http://mirror.test/debian bookworm main contrib
deb-src http://mirror.test/debian bookworm main
deb [arch=amd64 signed-by=/etc/apt/keyrings/x.gpg] http://sec.test/debian-security/ bookworm-security main # tail
deb [ trusted=yes ] http://plain.test/debian bookworm-updates main
"""


@pytest.fixture(autouse=True)
def _no_mirror_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LINUXKIT_DEBIAN_MIRROR", raising=False)
    monkeypatch.delenv("LINUXKIT_DEBIAN_SECURITY_MIRROR", raising=False)


def test_parse_deb822() -> None:
    entries = parse_deb822_sources(DEB822, "x.sources")
    assert [(e.uri, e.suites, e.components) for e in entries] == [
        ("http://mirror.test/debian", ("bookworm", "bookworm-updates"), ("main", "contrib")),
        ("http://other.test/debian", ("bookworm", "bookworm-updates"), ("main", "contrib")),
        ("http://mirror.test/debian-security", ("bookworm-security",), ("main",)),
    ]
    assert entries[2].signed_by == Path("/etc/apt/keyrings/security.asc")


def test_parse_one_line() -> None:
    entries = parse_one_line_sources(ONE_LINE, "sources.list")
    assert [(e.uri, e.suites, e.components, e.signed_by) for e in entries] == [
        ("http://mirror.test/debian", ("bookworm",), ("main", "contrib"), None),
        ("http://sec.test/debian-security", ("bookworm-security",), ("main",), Path("/etc/apt/keyrings/x.gpg")),
        ("http://plain.test/debian", ("bookworm-updates",), ("main",), None),
    ]
    assert entries[1].origin == "sources.list:4"


def test_inline_signed_by_is_refused() -> None:
    text = (
        "Types: deb\nURIs: http://m.test/debian\nSuites: s\nComponents: main\n"
        "Signed-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n"
    )
    with pytest.raises(UserError, match="inline Signed-By"):
        parse_deb822_sources(text, "x.sources")


def _apt_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    for name, text in files.items():
        (apt / name).write_text(text)
    return apt


def test_sources_from_apt_config(tmp_path: Path) -> None:
    apt = _apt_dir(tmp_path, {"sources.list.d/debian.sources": DEB822, "sources.list.d/old.list": ONE_LINE})
    sources = debian_sources(apt_dir=apt)
    assert sources == [
        # *.list and *.sources files are read in name order: debian.sources comes first
        Source("http://mirror.test/debian", "bookworm", ("main",), DEFAULT_KEYRING),
        Source("http://mirror.test/debian", "bookworm-updates", ("main",), DEFAULT_KEYRING),
        Source(
            "http://mirror.test/debian-security", "bookworm-security", ("main",), Path("/etc/apt/keyrings/security.asc")
        ),
    ]


def test_sources_list_then_parts(tmp_path: Path) -> None:
    apt = _apt_dir(tmp_path, {"sources.list": ONE_LINE, "sources.list.d/debian.sources": DEB822})
    sources = debian_sources(["bookworm-security"], apt_dir=apt)
    assert sources == [
        Source("http://sec.test/debian-security", "bookworm-security", ("main",), Path("/etc/apt/keyrings/x.gpg"))
    ]


def test_explicit_mirror_derives_security(tmp_path: Path) -> None:
    apt = _apt_dir(tmp_path, {"sources.list.d/debian.sources": DEB822})
    sources = debian_sources(mirror="http://m.test/archive/debian/20250520T000000Z/", apt_dir=apt)
    assert [(s.uri, s.suite, s.keyring) for s in sources] == [
        ("http://m.test/archive/debian/20250520T000000Z", "bookworm", DEFAULT_KEYRING),
        ("http://m.test/archive/debian/20250520T000000Z", "bookworm-updates", DEFAULT_KEYRING),
        ("http://m.test/archive/debian-security/20250520T000000Z", "bookworm-security", DEFAULT_KEYRING),
    ]


def test_environment_and_explicit_security(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LINUXKIT_DEBIAN_MIRROR", "https://env.test/debian")
    monkeypatch.setenv("LINUXKIT_DEBIAN_SECURITY_MIRROR", "https://env-sec.test/sec")
    sources = debian_sources(apt_dir=tmp_path)
    assert [s.uri for s in sources] == ["https://env.test/debian"] * 2 + ["https://env-sec.test/sec"]
    # an argument wins over the environment
    sources = debian_sources(["bookworm"], mirror="http://arg.test/debian", apt_dir=tmp_path)
    assert sources[0].uri == "http://arg.test/debian"


def test_security_falls_back_to_apt_when_not_derivable(tmp_path: Path) -> None:
    apt = _apt_dir(tmp_path, {"sources.list.d/debian.sources": DEB822})
    sources = debian_sources(mirror="http://flat.test/mirror", apt_dir=apt)
    assert [s.uri for s in sources] == ["http://flat.test/mirror"] * 2 + ["http://mirror.test/debian-security"]
    with pytest.raises(UserError, match="security suite 'bookworm-security'") as info:
        debian_sources(mirror="http://flat.test/mirror", apt_dir=tmp_path / "nothing")
    assert info.value.hint is not None and "--debian-security-mirror" in info.value.hint


def test_other_release_uses_the_mirror_of_an_entry_of_the_same_kind(tmp_path: Path) -> None:
    apt = _apt_dir(tmp_path, {"sources.list.d/debian.sources": DEB822})
    sources = debian_sources(["trixie", "trixie-updates", "trixie-security"], apt_dir=apt)
    # the disabled trixie entry is not used; Signed-By of bookworm's entries is not carried over
    assert sources == [
        Source("http://mirror.test/debian", "trixie", ("main",), DEFAULT_KEYRING),
        Source("http://mirror.test/debian", "trixie-updates", ("main",), DEFAULT_KEYRING),
        Source("http://mirror.test/debian-security", "trixie-security", ("main",), DEFAULT_KEYRING),
    ]


def test_no_mirror_is_a_user_error_with_hint(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no Debian mirror known for suite 'bookworm'") as info:
        debian_sources(apt_dir=tmp_path)
    assert info.value.exit_code == 2
    assert info.value.hint is not None and "--debian-mirror" in info.value.hint


def test_bad_uri_and_keyring_override(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unsupported Debian mirror URI"):
        debian_sources(mirror="ftp://x.test/debian", apt_dir=tmp_path)
    sources = debian_sources(["bookworm"], mirror="file:///srv/debian", keyring=tmp_path / "k.gpg", apt_dir=tmp_path)
    assert sources[0].keyring == tmp_path / "k.gpg"


def test_derive_security_uri() -> None:
    assert derive_security_uri("http://m.test/debian") == "http://m.test/debian-security"
    assert derive_security_uri("http://debian/pub/debian/") == "http://debian/pub/debian-security"
    assert derive_security_uri("http://debian/pub") is None


def test_uri_for() -> None:
    sources = [Source("http://a/debian", "bookworm", ("main",), DEFAULT_KEYRING)]
    assert uri_for(sources, "bookworm") == "http://a/debian"
    with pytest.raises(UserError, match="bookworm-security"):
        uri_for(sources, "bookworm-security")
