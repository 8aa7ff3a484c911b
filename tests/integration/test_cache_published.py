"""``cache push`` with and without ``--override``, and ``cache rm|clean --published-only``, against a
real ``docker-registry`` (plain and with token auth; read back with ``skopeo``), through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import RunLinuxkit
from tests.imagefactory import ImageSpec, file, write_layout_tar
from tests.integration.test_pkg_multiarch import Target, by_arch, raw, skopeo, target, token_registry
from tests.integration.test_registry_client import free_port

from linuxkit.oci.cache import Cache

pytestmark = [pytest.mark.integration]
__all__ = ["target", "token_registry"]  # fixtures


def load(
    linuxkit: RunLinuxkit, tmp_path: Path, cache: str, specs: list[ImageSpec], *, multiarch: bool = False
) -> Cache:
    """A cache holding ``specs`` (imported from an OCI layout tar)."""
    tar = tmp_path / f"{cache}.tar"
    write_layout_tar(tar, specs, multiarch=multiarch)
    linuxkit("--cache", tmp_path / cache, "cache", "import", tar)
    return Cache(tmp_path / cache)


def app(name: str, text: str, arch: str = "amd64") -> ImageSpec:
    return ImageSpec(name, [[file("etc/app", text)]], cmd=["/bin/sh"], arch=arch)


def digest_of(target: Target, ref: str) -> str:
    return skopeo(target, "--format", "{{.Digest}}", f"docker://{ref}").decode().strip()


def cached(cache: Cache, name: str) -> str:
    root = cache.find(name)
    assert root is not None, name
    return root.digest


def test_cache_push_override(linuxkit: RunLinuxkit, tmp_path: Path, target: Target) -> None:
    name = f"{target.host}/demo/app:1"
    first = load(linuxkit, tmp_path, "first", [app(name, "one\n")])
    second = load(linuxkit, tmp_path, "second", [app(name, "two\n")])
    lk = [*target.cli, "--cache"]
    linuxkit(*lk, first.root, "cache", "push", name)
    assert digest_of(target, name) == cached(first, name)

    skipped = linuxkit(*lk, second.root, "cache", "push", name).stderr.decode()
    assert f"image {name} already exists in the registry, skipping" in skipped
    assert digest_of(target, name) == cached(first, name)  # left as it was
    linuxkit(*lk, second.root, "cache", "push", "--override", name)
    assert digest_of(target, name) == cached(second, name)

    # an index pushed over another keeps the registry's other platforms (ours win for our own)
    multi = f"{target.host}/demo/multi:1"
    amd = load(linuxkit, tmp_path, "amd", [app(multi, "amd\n", "amd64")], multiarch=True)
    both = load(linuxkit, tmp_path, "both", [app(multi, "a2\n", "amd64"), app(multi, "arm\n", "arm64")], multiarch=True)
    linuxkit(*lk, both.root, "cache", "push", multi)
    theirs = by_arch(raw(target, multi))
    proc = linuxkit(*lk, amd.root, "cache", "push", "--override", "--with-arch-tags", multi)
    assert "merged with the platforms" in proc.stderr.decode()
    ours = by_arch(raw(target, multi))
    assert ours["arm64"] == theirs["arm64"] and ours["amd64"] != theirs["amd64"]
    assert ours["amd64"] == by_arch(amd.layout.read_json_blob(cached(amd, multi)))["amd64"]
    assert digest_of(target, f"{multi}-amd64") == ours["amd64"]
    again = linuxkit(*lk, amd.root, "cache", "push", "--override", multi).stderr.decode()
    assert "(unchanged)" in again
    # one platform pulled of the registry's index: pushed back unchanged, arch tags for what the cache has
    part = tmp_path / "part"
    linuxkit(*lk, part, "cache", "pull", "--platform", "linux/arm64", f"{multi}")
    assert skopeo(target, "--raw", f"docker://{multi}-arm64", check=False) == b""
    linuxkit(*lk, part, "cache", "push", "--override", "--with-arch-tags", multi)
    assert digest_of(target, f"{multi}-arm64") == ours["arm64"]
    assert digest_of(target, f"{multi}-amd64") == ours["amd64"]  # as the first push tagged it


def test_rm_and_clean_published_only(linuxkit: RunLinuxkit, tmp_path: Path, target: Target) -> None:
    host = target.host
    pushed, changed, never = f"{host}/demo/pushed:1", f"{host}/demo/changed:1", f"{host}/demo/never:1"
    nowhere = f"127.0.0.1:{free_port()}/demo/nowhere:1"  # no registry listens there
    source = load(linuxkit, tmp_path, "source", [app(pushed, "p\n"), app(changed, "c1\n")])
    lk = [*target.cli, "--cache"]
    for name in (pushed, changed):
        linuxkit(*lk, source.root, "cache", "push", name)
    specs = [app(pushed, "p\n"), app(changed, "c2\n"), app(never, "n\n"), app(nowhere, "x\n")]

    # rm: only the named images the registry holds identical
    cache = load(linuxkit, tmp_path, "rm", specs)
    assert cached(cache, pushed) == cached(source, pushed)
    kept_blobs = set(cache.layout.blob_digests())
    proc = linuxkit(*lk, cache.root, "cache", "rm", "--published-only", pushed, changed, never)
    err = proc.stderr.decode()
    assert f"removing image {pushed} from cache" in err
    assert f"image {changed} has mismatched hashes, cache {cached(cache, changed)}" in err
    assert f"image {never} not found in remote registry, leaving in cache" in err
    assert set(cache.images()) == {changed, never, nowhere}
    assert cached(source, pushed) not in set(cache.layout.blob_digests())  # its blobs went with it
    assert set(cache.layout.blob_digests()) < kept_blobs
    missing = linuxkit(*lk, cache.root, "cache", "rm", "--published-only", f"{host}/demo/absent:1", check=False)
    assert missing.returncode == 2 and b"is not in the cache" in missing.stderr

    # clean: every image the registry holds identical; an unreachable registry keeps its images
    cache = load(linuxkit, tmp_path, "clean", specs)
    proc = linuxkit(*lk, cache.root, "cache", "clean", "--published-only")
    err = proc.stderr.decode()
    assert proc.returncode == 0
    assert f"removing image {pushed} from cache" in err
    assert f"image {nowhere} not found in remote registry, leaving in cache (registry 127.0.0.1:" in err
    assert set(cache.images()) == {changed, never, nowhere}
    # after pushing them all (the unreachable one excepted), clean leaves only that one
    for name in (changed, never):
        linuxkit(*lk, cache.root, "cache", "push", "--override", name)
    linuxkit(*lk, cache.root, "cache", "clean", "--published-only")
    assert set(cache.images()) == {nowhere}
    assert cache.root.is_dir()
