"""uid/gid allocation and lookup by container name."""

from __future__ import annotations

import pytest

from linuxkit.config import schema
from linuxkit.containerspec.ids import allocate_ids, resolve_id
from linuxkit.errors import UserError


def _moby(**sections: list[str]) -> schema.Moby:
    return schema.parse(
        schema.Moby, {key: [{"name": n, "image": "alpine"} for n in names] for key, names in sections.items()}
    )


def test_ids_follow_onboot_onshutdown_services_order() -> None:
    moby = _moby(services=["s1", "s2"], onboot=["b1", "b2"], onshutdown=["d1"])
    assert allocate_ids(moby) == {"b1": 100, "b2": 101, "d1": 102, "s1": 103, "s2": 104}


def test_reused_name_keeps_last_id() -> None:
    assert allocate_ids(_moby(onboot=["x", "y"], services=["x"])) == {"x": 102, "y": 101}


def test_empty_config() -> None:
    assert allocate_ids(schema.Moby()) == {}


@pytest.mark.parametrize(
    ("value", "want"),
    [(None, 0), ("", 0), ("root", 0), (0, 0), (1000, 1000), ("web", 105), (-1, 4294967295), (2**32 + 5, 5)],
)
def test_resolve(value: int | str | None, want: int) -> None:
    assert resolve_id(value, {"web": 105}) == want


def test_unknown_name() -> None:
    with pytest.raises(UserError, match="cannot find id: nobody") as info:
        resolve_id("nobody", {"web": 105})
    assert info.value.hint is not None and "web" in info.value.hint
    with pytest.raises(UserError, match="cannot find id: 100"):
        resolve_id("100", {})
