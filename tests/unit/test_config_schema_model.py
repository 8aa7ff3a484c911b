"""The schema's class mechanism (:class:`linuxkit.config.schema.Model`): dataclass behaviour
without generating code at import."""

from __future__ import annotations

import copy

import pytest

from linuxkit.config import schema
from linuxkit.config.schema import fields_of
from linuxkit.packages.buildyml import DebianCopy, DebianKernel


def test_fields_default_to_none_and_are_set_by_keyword() -> None:
    kernel = schema.Kernel(image="k:1")
    assert (kernel.image, kernel.cmdline, kernel.tar) == ("k:1", None, None)
    with pytest.raises(TypeError, match="unexpected keyword arguments: imag"):
        schema.Kernel(imag="k:1")  # type: ignore[call-arg]


def test_a_field_without_default_is_required() -> None:
    with pytest.raises(TypeError, match="missing required keyword argument: 'name'"):
        schema.Image(image="i:1")  # type: ignore[call-arg]
    assert [s.required for s in fields_of(DebianCopy)] == [True, True, False]


def test_a_default_factory_gives_each_object_its_own_value() -> None:
    a, b = DebianKernel(), DebianKernel()
    a.modules.append("ext4")
    assert b.modules == []


def test_subclass_fields_follow_the_base_class_fields() -> None:
    names = [s.name for s in schema.Image.SLOTS]
    assert names[-2:] == ["name", "image"]
    assert names[: len(schema.ImageConfig.SLOTS)] == [s.name for s in schema.ImageConfig.SLOTS]
    assert not hasattr(schema.Image, "name")  # no class attribute shadows a missing value


def test_equality_repr_replace_and_copy_behave_as_a_dataclass() -> None:
    a = schema.Image(name="a", image="i:1", env=["A=1"])
    b = schema.Image(name="a", image="i:1", env=["A=1"])
    assert a == b and a != schema.replace(b, env=["A=2"]) and a != schema.ImageConfig()
    assert repr(schema.Kernel(image="k")) == ("Kernel(image='k', cmdline=None, binary=None, tar=None, ucode=None)")
    c = schema.replace(a, name="c")
    assert (c.name, c.image, c.env, a.name) == ("c", "i:1", ["A=1"], "a")
    deep = copy.deepcopy(a)
    assert deep == a and deep.env is not a.env
    with pytest.raises(TypeError):
        hash(a)  # mutable: unhashable, as a dataclass with eq


def test_yaml_keys_and_go_printing_come_from_f() -> None:
    spec = {s.attr: s for s in fields_of(schema.ImageConfig)}
    assert spec["capabilities_add"].key == "capabilities.add"
    assert spec["capabilities_add"].go == schema.P
    assert spec["cwd"].go == schema.VO
