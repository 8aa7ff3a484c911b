"""``cryptography`` is the optional ``signing`` extra: without it the signing flags are a clear error
naming the extra, before any key is read."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from linuxkit.cli import signing_args
from linuxkit.errors import UserError


@pytest.mark.parametrize(
    ("call", "flag"),
    [
        (lambda: signing_args.signing_key("cosign.key"), "--sign-key"),
        (lambda: signing_args.verify_policy("cosign.pub", ""), "--verify-key"),
        (lambda: signing_args.verify_policy("", "policy.yml"), "--verify-policy"),
    ],
)
def test_without_cryptography_the_signing_flags_name_the_extra(
    call: Callable[[], object], flag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "cryptography", None)  # import cryptography now raises ImportError
    with pytest.raises(UserError) as err:
        call()
    assert flag in str(err.value) and "'signing'" in str(err.value)
    assert err.value.hint == "install them with: pip install 'linuxkit[signing]'"


def test_without_the_flags_nothing_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cryptography", None)
    assert signing_args.signing_key("") is None
    assert signing_args.verify_policy("", "") is None
