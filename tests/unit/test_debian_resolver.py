"""The dependency closure on recorded and hand-written Packages indexes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from linuxkit.debian.index import Archive, parse_packages
from linuxkit.debian.resolver import resolve
from linuxkit.debian.sources import DEFAULT_KEYRING, Source
from linuxkit.errors import UserError

DATA = Path(__file__).parent / "data" / "debian"


def archive(*indexes: tuple[str, str]) -> Archive:
    """An archive from (file, suite) pairs, merged in the order given."""
    sources = [Source("http://mirror.test/debian", suite, ("main",), DEFAULT_KEYRING) for _, suite in indexes]
    arch = Archive(sources, "amd64", Path("/nonexistent"))
    for name, suite in indexes:
        arch.add_packages(
            parse_packages(
                (DATA / name).read_bytes(), arch="amd64", suite=suite, source_uri="http://mirror.test/debian"
            )
        )
    return arch


@pytest.fixture(scope="module")
def cases() -> Archive:
    return archive(("resolver-cases.Packages", "test"))


@pytest.fixture(scope="module")
def bookworm() -> Archive:
    return archive(("bookworm-main-amd64.Packages", "bookworm"))


def names(packages: list) -> list[str]:  # type: ignore[type-arg]
    return [f"{p.name}={p.version}" for p in packages]


def test_full_example(cases: Archive) -> None:
    got = resolve(cases, ["app"])
    assert names(got) == [
        "app=1.0-1",
        "init-helper=3",  # Pre-Depends followed
        "libc6=2.36-9",  # via libfoo
        "libfoo=3.0~rc1-1",  # newest satisfying ">= 2.0"
        "mawk=1.3.4-3",  # virtual awk: Priority required beats gawk's optional
        "perl=5.36.0-7",  # perl:any, Multi-Arch: allowed
        "postfix=3.7-1",  # "mta | mail-transport-agent": the first alternative a package provides
        "tool=1",  # tool:native
    ]
    # Recommends is ignored; the result is sorted by name
    assert "docs" not in [p.name for p in got]
    assert got == sorted(got, key=lambda p: p.name)


def test_add_packages_after_use_keeps_newest_first(cases: Archive) -> None:
    local = archive(("resolver-cases.Packages", "test"))
    assert local.candidates("libc6")[0].version == "2.36-9"
    newer = parse_packages(
        b"Package: libc6\nVersion: 2.36-9+deb12u1\nArchitecture: amd64\nFilename: f\nSize: 1\nSHA256: 00\n",
        arch="amd64",
        suite="test-security",
        source_uri="http://mirror.test/debian-security",
    )
    local.add_packages(newer)
    assert [(p.version, p.suite) for p in local.candidates("libc6")] == [
        ("2.36-9+deb12u1", "test-security"),
        ("2.36-9", "test"),
    ]


def test_pre_depends_come_first(cases: Archive) -> None:
    app = cases.candidates("app")[0]
    assert str(app.depends[0][0]) == "init-helper"
    assert [str(r) for r in app.depends[2]] == ["mta", "mail-transport-agent"]


def test_alternative_prefers_chosen_package(cases: Archive) -> None:
    # exim4 is a root; "mta | mail-transport-agent" is then met by it (it provides mail-transport-agent)
    got = resolve(cases, ["exim4", "app"])
    assert "exim4" in [p.name for p in got]
    assert "postfix" not in [p.name for p in got]


def test_virtual_prefers_chosen_provider(cases: Archive) -> None:
    # gawk is needed by name, so awk is satisfied by it rather than by mawk (decided later)
    assert names(resolve(cases, ["needs-gawk-via-awk"])) == ["gawk=1:5.2.1-2", "needs-gawk-via-awk=1"]
    assert names(resolve(cases, ["awk"])) == ["mawk=1.3.4-3"]


def test_pinned_root_and_version_constraints(cases: Archive) -> None:
    got = resolve(cases, ["libfoo=2.1-1"])
    assert names(got) == ["libc6=2.36-9", "libfoo=2.1-1"]
    assert names(resolve(cases, ["old-user"])) == ["libfoo=1.5-1", "old-user=1"]


def test_version_conflict_names_both_sides(cases: Archive) -> None:
    with pytest.raises(UserError, match=r"version conflict.*libfoo=3.0~rc1-1.*old-user=1 → libfoo \(<< 2.0\)"):
        resolve(cases, ["app", "old-user"])


def test_versioned_provides(cases: Archive) -> None:
    assert names(resolve(cases, ["versioned-virtual-user"])) == ["libbar2=2.0", "versioned-virtual-user=1"]


def test_exclude_real_and_virtual(cases: Archive) -> None:
    got = resolve(cases, ["app"], exclude=["libfoo", "awk", "mail-transport-agent"])
    assert names(got) == ["app=1.0-1", "init-helper=3", "perl=5.36.0-7", "tool=1"]
    assert resolve(cases, ["app"], exclude=["app"]) == []


def test_unsatisfiable_dependency_names_the_chain(cases: Archive) -> None:
    with pytest.raises(UserError) as info:
        resolve(cases, ["broken"])
    assert str(info.value).startswith(
        "cannot resolve Debian packages: no version satisfies: broken=1 → middle=2 → libc6 (>= 9.0) | libmissing"
    )
    assert info.value.hint is not None and "exclude" in info.value.hint
    # excluding the missing alternative makes it resolvable
    assert names(resolve(cases, ["broken"], exclude=["libmissing"])) == ["broken=1", "middle=2"]


def test_unknown_roots_and_versions(cases: Archive) -> None:
    with pytest.raises(UserError, match="unknown Debian package 'nope'"):
        resolve(cases, ["nope"])
    with pytest.raises(UserError, match=r"libfoo has no version 9 \(available: 3.0~rc1-1, 2.1-1, 1.5-1\)"):
        resolve(cases, ["libfoo=9"])
    with pytest.raises(UserError, match="unknown Debian package 'i386-only'"):
        resolve(cases, ["i386-only"])  # another architecture is not in the view


def test_any_qualifier_needs_multi_arch_allowed(cases: Archive) -> None:
    with pytest.raises(UserError, match=r"foreign-user=1 → tool:any"):
        resolve(cases, ["foreign-user"])


def test_recorded_bookworm_closures(bookworm: Archive) -> None:
    runc = [p.name for p in resolve(bookworm, ["runc"])]
    assert runc == ["gcc-12-base", "libc6", "libgcc-s1", "libseccomp2", "runc"]
    assert [p.name for p in resolve(bookworm, ["busybox-static"])] == ["busybox-static"]
    assert [p.name for p in resolve(bookworm, ["awk"])] == ["gcc-12-base", "libc6", "libgcc-s1", "mawk"]
    assert [p.name for p in bookworm.providers("awk")] == ["gawk", "mawk", "original-awk"]


def test_deterministic_regardless_of_root_order(bookworm: Archive) -> None:
    a = resolve(bookworm, ["runc", "gawk", "busybox-static"])
    b = resolve(bookworm, ["busybox-static", "gawk", "runc"])
    assert a == b
    assert "mawk" not in [p.name for p in a]


def test_resolve_is_fast(bookworm: Archive) -> None:
    start = time.monotonic()
    for _ in range(50):
        resolve(bookworm, ["runc", "gawk"])
    assert time.monotonic() - start < 2.0
