"""The Debian client against the real archive configured on this machine (apt sources, network)."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import pytest

from linuxkit.debian import Archive, debian_sources, fetch_debs, iter_deb_data, resolve
from linuxkit.debian.sources import Source
from linuxkit.errors import BuildError, UserError

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("gpgv") is None, reason="gpgv not installed"),
]

SUITES = ("bookworm", "bookworm-updates", "bookworm-security")


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    default = Path.home() / ".cache" / "linuxkit-tests"
    return Path(os.environ.get("LINUXKIT_TEST_CACHE", default)) / "debian"


@pytest.fixture(scope="session")
def sources() -> list[Source]:
    try:
        return debian_sources(SUITES)
    except UserError as exc:
        pytest.skip(f"no Debian mirror configured: {exc}")


@pytest.fixture(scope="session")
def archive(sources: list[Source], cache_dir: Path) -> Archive:
    start = time.monotonic()
    archive = Archive(sources, "amd64", cache_dir)
    archive.load()
    print(f"\nfirst load (cold or warm): {time.monotonic() - start:.2f}s")
    return archive


def test_warm_load_is_fast(archive: Archive, sources: list[Source], cache_dir: Path) -> None:
    start = time.monotonic()
    again = Archive(sources, "amd64", cache_dir)
    again.load()
    elapsed = time.monotonic() - start
    print(f"\nwarm load: {elapsed:.2f}s")
    assert again.names() == archive.names()
    assert elapsed < 10  # generous: a shared machine; typically ~0.4 s


def test_suites_are_merged(archive: Archive) -> None:
    assert len(archive.names()) > 50_000
    suites = {p.suite for name in ("libc6", "linux-image-cloud-amd64") for p in archive.candidates(name)}
    assert "bookworm" in suites
    kernels = archive.candidates("linux-image-cloud-amd64")
    assert kernels[0].suite in SUITES and len(kernels) >= 1


def test_resolve_runc_busybox_kernel(archive: Archive) -> None:
    start = time.monotonic()
    runc = {p.name for p in resolve(archive, ["runc"])}
    busybox = [p.name for p in resolve(archive, ["busybox-static"])]
    kernel = {p.name for p in resolve(archive, ["linux-image-cloud-amd64"])}
    elapsed = time.monotonic() - start
    print(f"\nresolve runc + busybox-static + linux-image-cloud-amd64: {elapsed * 1000:.1f} ms")
    assert {"runc", "libc6", "libseccomp2"} <= runc
    assert busybox == ["busybox-static"]
    assert any(name.startswith("linux-image-6.") for name in kernel)
    assert elapsed < 1.0


def test_download_busybox_static(archive: Archive, sources: list[Source], cache_dir: Path) -> None:
    (pkg,) = resolve(archive, ["busybox-static"])
    ref = pkg.ref()
    path = fetch_debs([ref], sources, cache_dir)[ref]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == ref.sha256 == pkg.sha256
    names = {info.name.removeprefix("./"): data is not None for info, data in iter_deb_data(path)}
    assert names.get("bin/busybox") is True


def test_unknown_package(archive: Archive) -> None:
    with pytest.raises(UserError, match="unknown Debian package 'no-such-package-here'"):
        resolve(archive, ["no-such-package-here"])


def test_wrong_keyring_is_refused(sources: list[Source], tmp_path: Path) -> None:
    removed = Path("/usr/share/keyrings/debian-archive-removed-keys.gpg")
    if not removed.exists():
        pytest.skip("debian-archive-removed-keys.gpg not present")
    bad = [Source(s.uri, s.suite, s.components, removed) for s in sources[:1]]
    with pytest.raises(BuildError, match="signature check failed"):
        Archive(bad, "amd64", tmp_path).load()
