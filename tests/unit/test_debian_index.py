"""Packages index parsing and :class:`Archive` loading from a local signed archive (file:// mirror)."""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from linuxkit.debian.index import Archive, parse_packages, parse_rows
from linuxkit.debian.resolver import resolve
from linuxkit.debian.sources import Source
from linuxkit.errors import BuildError, UserError

DATA = Path(__file__).parent / "data" / "debian"
BOOKWORM = (DATA / "bookworm-main-amd64.Packages").read_bytes()


def test_parse_recorded_index() -> None:
    packages = parse_packages(BOOKWORM, arch="amd64", suite="bookworm", source_uri="http://m.test/debian")
    by_name = {p.name: p for p in packages}
    assert len(packages) == 25
    libc = by_name["libc6"]
    assert libc.filename.startswith("pool/main/g/glibc/libc6_") and libc.size > 1_000_000
    assert len(libc.sha256) == 64 and libc.priority == "optional" and libc.multi_arch == "same"
    assert by_name["tar"].essential is True and by_name["libc6"].essential is False
    # Pre-Depends are merged in front of Depends
    tar = by_name["tar"]
    assert [str(g[0]) for g in tar.depends][:1] == ["libacl1 (>= 2.2.23)"]
    assert [str(r) for r in by_name["mawk"].provides] == ["awk"]
    ref = libc.ref()
    assert (ref.name, ref.version, ref.suite, ref.sha256) == ("libc6", libc.version, "bookworm", libc.sha256)


def test_parse_rows_filters_architecture_and_joins_continuations() -> None:
    data = (
        b"Package: a\nVersion: 1\nArchitecture: arm64\nFilename: f\nSize: 1\nSHA256: AB\n\n"
        b"Package: b\nVersion: 1\nArchitecture: all\nFilename: f\nSize: 1\nSHA256: AB\nDepends: x,\n y\n"
        b"Description: d\n long text\n\n\n"
    )
    rows = parse_rows(data, "amd64")
    assert [(r[0], r[2], r[5], r[6]) for r in rows] == [("b", "all", "ab", "x, y")]
    with pytest.raises(BuildError, match="malformed Packages stanza for 'c'"):
        parse_rows(b"Package: c\nVersion: 1\nArchitecture: all\n", "amd64")


# -- a local archive signed with a throw-away key --------------------------------------------------------------------

STANZA = """\
Package: {name}
Version: {version}
Architecture: amd64
Depends: {depends}
Filename: pool/main/{name}_{version}_amd64.deb
Size: 10
SHA256: {sha}
Priority: optional
"""


class LocalArchive:
    """A file:// Debian archive with signed InRelease files (``gpg`` with a temporary home)."""

    def __init__(self, root: Path, gnupg: Path) -> None:
        self.root = root
        self.gnupg = gnupg
        self.keyring = gnupg / "keyring.gpg"

    def gpg(self, *args: str) -> bytes:
        env = {**os.environ, "GNUPGHOME": str(self.gnupg)}
        return subprocess.run(["gpg", "--batch", "--quiet", *args], env=env, check=True, capture_output=True).stdout

    def publish(
        self, suite: str, packages: list[tuple[str, str, str]], *, extra: str = "", by_hash: bool = False
    ) -> str:
        text = "\n".join(
            STANZA.format(name=n, version=v, depends=d or "base", sha=hashlib.sha256(n.encode()).hexdigest())
            for n, v, d in packages
        )
        xz = lzma.compress(text.encode())
        digest = hashlib.sha256(xz).hexdigest()
        dists = self.root / "dists" / suite
        index_dir = dists / "main" / "binary-amd64"
        index_dir.mkdir(parents=True, exist_ok=True)
        if by_hash:
            (index_dir / "by-hash" / "SHA256").mkdir(parents=True, exist_ok=True)
            (index_dir / "by-hash" / "SHA256" / digest).write_bytes(xz)
        else:
            (index_dir / "Packages.xz").write_bytes(xz)
        release = (
            f"Origin: Test\nSuite: {suite}\nCodename: {suite}\nDate: Sat, 11 Jul 2026 10:00:00 UTC\n{extra}"
            f"Acquire-By-Hash: {'yes' if by_hash else 'no'}\n"
            f"SHA256:\n {digest} {len(xz)} main/binary-amd64/Packages.xz\n"
        )
        (dists / "Release").write_text(release)
        (dists / "InRelease").unlink(missing_ok=True)
        self.gpg("--digest-algo", "SHA256", "--clearsign", "-o", str(dists / "InRelease"), str(dists / "Release"))
        return digest

    def source(self, suite: str, keyring: Path | None = None) -> Source:
        return Source(f"file://{self.root}", suite, ("main",), keyring or self.keyring)


@pytest.fixture(scope="module")
def gnupg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if shutil.which("gpg") is None or shutil.which("gpgv") is None:
        pytest.skip("gpg/gpgv not installed")
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    keygen = ["--passphrase", "", "--quick-gen-key", "Test Archive <t@test>", "ed25519", "sign", "never"]
    subprocess.run(["gpg", "--batch", "--quiet", *keygen], env=env, check=True, capture_output=True)
    (home / "keyring.gpg").write_bytes(
        subprocess.run(["gpg", "--batch", "--export"], env=env, check=True, capture_output=True).stdout
    )
    yield home
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, check=False, capture_output=True)


@pytest.fixture
def local(tmp_path: Path, gnupg: Path) -> LocalArchive:
    return LocalArchive(tmp_path / "mirror", gnupg)


NOW = datetime(2026, 7, 12, tzinfo=UTC)


@pytest.mark.integration
def test_load_merges_suites_newest_first(local: LocalArchive, tmp_path: Path) -> None:
    local.publish("stable", [("base", "1.0", "libc6"), ("kernel", "6.1.1-1", ""), ("libc6", "2.36-9", "libc6")])
    local.publish("stable-security", [("kernel", "6.1.9-1", ""), ("libc6", "2.36-9", "")], by_hash=True)
    archive = Archive([local.source("stable"), local.source("stable-security")], "amd64", tmp_path / "cache", now=NOW)
    archive.load()
    assert [(p.version, p.suite) for p in archive.candidates("kernel")] == [
        ("6.1.9-1", "stable-security"),
        ("6.1.1-1", "stable"),
    ]
    # the same version in two suites is kept once, from the suite listed first
    assert [(p.version, p.suite) for p in archive.candidates("libc6")] == [("2.36-9", "stable")]
    assert archive.lookup("kernel", "6.1.1-1") is not None and archive.lookup("kernel", "7") is None
    assert archive.candidates("nope") == [] and archive.names() == ["base", "kernel", "libc6"]
    assert [p.name for p in resolve(archive, ["kernel"])] == ["base", "kernel", "libc6"]
    assert archive.candidates("kernel")[0].source_uri == f"file://{local.root}"


@pytest.mark.integration
def test_index_cache_is_reused_and_verified(local: LocalArchive, tmp_path: Path) -> None:
    digest = local.publish("stable", [("base", "1.0", "")])
    cache = tmp_path / "cache"
    Archive([local.source("stable")], "amd64", cache, now=NOW).load()
    cached = cache / "indexes" / f"{digest}.xz"
    assert cached.exists() and hashlib.sha256(cached.read_bytes()).hexdigest() == digest
    # served from the cache: the mirror no longer needs the file
    (local.root / "dists/stable/main/binary-amd64/Packages.xz").unlink()
    archive = Archive([local.source("stable")], "amd64", cache, now=NOW)
    archive.load()
    assert archive.names() == ["base"]
    # a corrupt cached index is detected and fetched again (here: gone from the mirror -> error)
    cached.write_bytes(b"corrupt")
    with pytest.raises(BuildError, match="not found on the mirror"):
        Archive([local.source("stable")], "amd64", cache, now=NOW).load()
    assert not cached.exists()


@pytest.mark.integration
def test_index_not_matching_inrelease_is_refused(local: LocalArchive, tmp_path: Path) -> None:
    local.publish("stable", [("base", "1.0", "")])
    index = local.root / "dists/stable/main/binary-amd64/Packages.xz"
    index.write_bytes(lzma.compress(b"Package: evil\n"))
    with pytest.raises(BuildError, match="does not match its InRelease"):
        Archive([local.source("stable")], "amd64", tmp_path / "cache", now=NOW).load()
    assert not list((tmp_path / "cache" / "indexes").iterdir())


@pytest.mark.integration
def test_valid_until(local: LocalArchive, tmp_path: Path) -> None:
    local.publish("stable", [("base", "1.0", "")], extra="Valid-Until: Sat, 11 Jul 2026 12:00:00 UTC\n")
    archive = Archive([local.source("stable")], "amd64", tmp_path / "cache", now=NOW)
    with pytest.raises(UserError, match="expired on 2026-07-11 12:00") as info:
        archive.load()
    assert info.value.hint is not None and "--debian-allow-expired" in info.value.hint
    archive.load(ignore_valid_until=True)
    assert archive.names() == ["base"]
    fresh = Archive([local.source("stable")], "amd64", tmp_path / "cache", now=datetime(2026, 7, 11, tzinfo=UTC))
    fresh.load()


@pytest.mark.integration
def test_signature_suite_and_missing_release_errors(local: LocalArchive, tmp_path: Path) -> None:
    local.publish("stable", [("base", "1.0", "")])
    cache = tmp_path / "cache"
    other_keyring = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
    if other_keyring.exists():
        with pytest.raises(BuildError, match="signature check failed"):
            Archive([local.source("stable", other_keyring)], "amd64", cache, now=NOW).load()
    # a suite served under another name
    shutil.copytree(local.root / "dists/stable", local.root / "dists/testing")
    with pytest.raises(BuildError, match="InRelease is for suite 'stable'"):
        Archive([local.source("testing")], "amd64", cache, now=NOW).load()
    with pytest.raises(UserError, match="no InRelease file"):
        Archive([local.source("unstable")], "amd64", cache, now=NOW).load()
    with pytest.raises(UserError, match="has no main/binary-arm64/Packages index"):
        Archive([local.source("stable")], "arm64", cache, now=NOW).load()
    with pytest.raises(RuntimeError):
        Archive([local.source("stable")], "amd64", cache).candidates("base")
