"""``pkg build --push`` asks the package's registry before building: a failure for a package without a
registry host in its org says that the image goes to Docker Hub and how to name another registry."""

from __future__ import annotations

import pytest

from linuxkit.cli import pkg_cmd
from linuxkit.oci.registry import RegistryError, RegistryOptions


def failing(message: str, hint: str | None) -> object:
    def lookup(ref: str, options: RegistryOptions, what: str) -> str | None:
        raise RegistryError(f"{what}: {message}", hint=hint)

    return lookup


@pytest.mark.parametrize("hint", ["check the network", None])
def test_docker_hub_packages_are_told_about_org(monkeypatch: pytest.MonkeyPatch, hint: str | None) -> None:
    monkeypatch.setattr(pkg_cmd, "lookup", failing("cannot reach registry registry-1.docker.io", hint))
    with pytest.raises(RegistryError) as info:
        pkg_cmd._check_registry("docker.io/test/tiny:abc", RegistryOptions())
    assert "cannot reach registry registry-1.docker.io" in info.value.message
    assert info.value.hint is not None and "--org HOST/ORG" in info.value.hint
    assert info.value.hint.startswith("check the network; ") == (hint is not None)


def test_other_registries_keep_their_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pkg_cmd, "lookup", failing("refused", "log in"))
    with pytest.raises(RegistryError) as info:
        pkg_cmd._check_registry("127.0.0.1:5000/test/tiny:abc", RegistryOptions())
    assert info.value.hint == "log in"


def test_a_registry_that_answers_lets_the_build_go_on(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def lookup(ref: str, options: RegistryOptions, what: str) -> str | None:
        asked.append(ref)
        return None

    monkeypatch.setattr(pkg_cmd, "lookup", lookup)
    pkg_cmd._check_registry("docker.io/test/tiny:abc", RegistryOptions())
    assert asked == ["docker.io/test/tiny:abc"]
