"""container_spec: precedence, errors, volumes, labels and the keys we honour where upstream drops them."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from linuxkit.config import schema
from linuxkit.containerspec.capabilities import KNOWN_CAPABILITIES
from linuxkit.containerspec.oci import ContainerSpec, container_spec, runtime_json, runtime_mount
from linuxkit.containerspec.resources import hugepage_size, rlimits
from linuxkit.errors import BuildError, UserError

LABEL = "org.mobyproject.config"


def _image(**fields: Any) -> schema.Image:
    return schema.parse(schema.Image, {"name": "svc", "image": "docker.io/test/img:1", **fields})


def _config(label: Any = None, **config: Any) -> dict[str, Any]:
    inner = dict(config)
    if label is not None:
        inner["Labels"] = {LABEL: label if isinstance(label, str) else json.dumps(label)}
    return {"architecture": "amd64", "os": "linux", "config": inner}


def _spec(
    image: schema.Image | None = None,
    config: dict[str, Any] | None = None,
    ids: dict[str, int] | None = None,
    volumes: dict[str, schema.Volume] | None = None,
) -> ContainerSpec:
    return container_spec(image or _image(), config or _config(), ids or {}, volumes or {})


def _json(spec: ContainerSpec) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(spec.config_json)
    return value


# ------------------------------------------------------------------ defaults and precedence


def test_minimal_defaults() -> None:
    spec = _spec(config={})
    doc = _json(spec)
    assert list(doc) == ["ociVersion", "process", "root", "mounts", "linux"]
    assert doc["ociVersion"] == "1.2.1"
    assert doc["process"] == {"user": {"uid": 0, "gid": 0}, "cwd": "/", "capabilities": {}}
    assert doc["root"] == {"path": "rootfs"}
    assert [m["destination"] for m in doc["mounts"]] == ["/dev", "/dev/pts", "/proc", "/sys", "/sys/fs/cgroup"]
    assert doc["linux"] == {"resources": {}, "namespaces": [{"type": "pid"}, {"type": "mount"}]}
    assert spec.readonly is False
    assert spec.runtime == {
        "cgroups": [],
        "mounts": [],
        "mkdir": [],
        "interfaces": [],
        "bindNS": dict.fromkeys(("cgroup", "ipc", "mnt", "net", "pid", "user", "uts"), ""),
        "namespace": "",
    }


def test_args_env_cwd_precedence() -> None:
    image_cfg = {"Entrypoint": ["/ep"], "Cmd": ["a"], "Env": ["I=1"], "WorkingDir": "/img"}
    doc = _json(_spec(config=_config(**image_cfg)))["process"]
    assert (doc["args"], doc["env"], doc["cwd"]) == (["/ep", "a"], ["I=1"], "/img")
    label = {"command": ["/lbl"], "env": ["L=1"], "cwd": "/lbl"}
    doc = _json(_spec(config=_config(label, **image_cfg)))["process"]
    assert (doc["args"], doc["env"], doc["cwd"]) == (["/lbl"], ["L=1"], "/lbl")
    doc = _json(_spec(_image(command=["/y"], env=["Y=1"], cwd="/y"), _config(label, **image_cfg)))["process"]
    assert (doc["args"], doc["env"], doc["cwd"]) == (["/y"], ["Y=1"], "/y")
    # an empty list replaces; an empty cwd does not
    doc = _json(_spec(_image(command=[], env=[], cwd=""), _config(label, **image_cfg)))["process"]
    assert "args" not in doc and "env" not in doc and doc["cwd"] == "/lbl"


def test_adds_extend_label_lists_unless_yaml_sets_them() -> None:
    label = {"capabilities": ["CAP_KILL"], "binds": ["/a:/a"], "capabilities.add": ["CAP_BPF"]}
    doc = _json(_spec(_image(**{"capabilities.add": ["CAP_CHOWN"], "binds.add": ["/b:/b"]}), _config(label)))
    assert doc["process"]["capabilities"]["effective"] == ["CAP_KILL", "CAP_CHOWN"]
    assert {m["destination"] for m in doc["mounts"]} >= {"/a", "/b"}
    doc = _json(_spec(_image(capabilities=["CAP_SYS_ADMIN"], **{"capabilities.add": ["CAP_CHOWN"]}), _config(label)))
    assert doc["process"]["capabilities"]["effective"] == ["CAP_SYS_ADMIN"]


def test_readonly_and_bools() -> None:
    label = {"readonly": True, "noNewPrivileges": True}
    spec = _spec(config=_config(label))
    doc = _json(spec)
    assert spec.readonly and doc["root"] == {"path": "rootfs", "readonly": True}
    assert doc["process"]["noNewPrivileges"] is True
    assert "ro" in next(m for m in doc["mounts"] if m["destination"] == "/sys")["options"]
    spec = _spec(_image(readonly=False, noNewPrivileges=False), _config(label))
    assert not spec.readonly and "noNewPrivileges" not in _json(spec)["process"]


# ------------------------------------------------------------------ mounts


def test_mounts_binds_tmpfs() -> None:
    image = _image(
        tmpfs=["/run:size=1m,mode=755", "/t"],
        binds=["/src:/dst", "/x:/y:ro", "/dev:/dev"],
        mounts=[{"source": "mqueue"}, {"type": "tmpfs", "destination": "/run"}, {"destination": "/dev"}],
    )
    mounts = {m["destination"]: m for m in _json(_spec(image))["mounts"]}
    assert list(mounts) == sorted(mounts)
    assert mounts["/t"] == {"destination": "/t", "type": "tmpfs", "source": "tmpfs"}
    assert mounts["/run"] == {"destination": "/run", "type": "tmpfs", "source": "tmpfs"}
    assert mounts["/dst"]["options"] == ["rw", "rbind", "rshared"]
    assert mounts["/y"]["options"] == ["ro", "rbind"]
    assert mounts["/dev/mqueue"] == {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue"}
    assert mounts["/dev"] == {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tmpfs": ["/a:b:c"]}, "cannot parse tmpfs"),
        ({"binds": ["/a"]}, "missing ':'"),
        ({"binds": ["/a:/b:ro:x"]}, "too many ':'"),
        ({"mounts": [{"source": "/x", "destination": "/y"}]}, "missing type"),
        ({"mounts": [{"type": "bind", "source": "/x"}]}, "missing destination"),
    ],
)
def test_mount_errors(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message) as info:
        _spec(_image(**fields))
    assert info.value.message.startswith("svc (docker.io/test/img:1): ")


# ------------------------------------------------------------------ capabilities


def test_capability_keywords() -> None:
    caps = _json(_spec(_image(capabilities=["All"], ambient=["none"])))["process"]["capabilities"]
    assert caps["effective"] == list(KNOWN_CAPABILITIES)
    assert caps["bounding"] == sorted(KNOWN_CAPABILITIES) == caps["permitted"] == caps["inheritable"]
    assert "ambient" not in caps
    caps = _json(_spec(_image(capabilities=["NONE"], ambient=["CAP_NET_RAW"])))["process"]["capabilities"]
    assert caps == {k: ["CAP_NET_RAW"] for k in ("bounding", "inheritable", "permitted", "ambient")}
    # keywords only count alone
    with pytest.raises(UserError, match="unknown capability: all"):
        _spec(_image(capabilities=["all", "CAP_KILL"]))


@pytest.mark.parametrize(
    ("fields", "hint"), [({"capabilities": ["cap_kill"]}, "CAP_KILL"), ({"ambient": ["BOGUS"]}, None)]
)
def test_unknown_capability(fields: dict[str, Any], hint: str | None) -> None:
    with pytest.raises(UserError, match="unknown capability") as info:
        _spec(_image(**fields))
    assert info.value.exit_code == 2
    if hint:
        assert info.value.hint is not None and hint in info.value.hint


# ------------------------------------------------------------------ rlimits, devices, ids


def test_rlimit_parsing() -> None:
    assert rlimits(["nofile,1,2", "RLIMIT_core, unlimited ,Unlimited", "rttime,0,18446744073709551615"]) == [
        {"type": "RLIMIT_NOFILE", "hard": 2, "soft": 1},
        {"type": "RLIMIT_CORE", "hard": 2**64 - 1, "soft": 2**64 - 1},
        {"type": "RLIMIT_RTTIME", "hard": 2**64 - 1, "soft": 0},
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("nofile,1", "cannot parse rlimit"),
        ("nofile,-1,2", "cannot parse '-1'"),
        ("nofile,1,18446744073709551616", "unsigned 64-bit"),
        ("nofile,1,2,3", "cannot parse '2,3'"),
        ("bogus,1,2", "unknown rlimit 'bogus'"),
    ],
)
def test_rlimit_errors(entry: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        rlimits([entry])


def test_devices() -> None:
    image = _image(
        devices=[
            {"path": "all", "type": "c"},
            {"path": "all"},
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "mode": "0666"},
        ]
    )
    linux = _json(_spec(image))["linux"]
    assert linux["devices"] == [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666}]
    assert linux["resources"]["devices"] == [
        {"allow": True, "type": "c", "access": "rwm"},
        {"allow": True, "access": "rwm"},
        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
    ]


@pytest.mark.parametrize("mode", [None, "", "0999", "rw", "0o666", "77777777777"])
def test_device_mode_errors(mode: str | None) -> None:
    device = {"path": "/dev/x", "type": "c", "major": 1, "minor": 1}
    if mode is not None:
        device["mode"] = mode
    with pytest.raises(UserError, match="octal"):
        _spec(_image(devices=[device]))


def test_ids_from_label_and_yaml() -> None:
    ids = {"web": 103, "db": 104}
    config = _config({"uid": "web", "gid": 5, "additionalGids": ["db"]})
    assert _json(_spec(config=config, ids=ids))["process"]["user"] == {"uid": 103, "gid": 5, "additionalGids": [104]}
    user = _json(_spec(_image(uid=0, gid="db", additionalGids=[]), config, ids))["process"]["user"]
    assert user == {"uid": 0, "gid": 104}
    with pytest.raises(UserError, match="cannot find id: nope"):
        _spec(_image(additionalGids=["nope"]), ids=ids)


def test_namespaces() -> None:
    ns = _json(_spec(_image(net="none", ipc="none", uts="new", pid="host", userns="new")))["linux"]["namespaces"]
    assert ns == [
        {"type": "network"},
        {"type": "ipc", "path": "none"},
        {"type": "uts"},
        {"type": "user"},
        {"type": "mount"},
    ]
    ns = _json(_spec(_image(net="/run/netns/x"), _config({"net": "new", "pid": "/p"})))["linux"]["namespaces"]
    assert ns == [{"type": "network", "path": "/run/netns/x"}, {"type": "pid", "path": "/p"}, {"type": "mount"}]


# ------------------------------------------------------------------ volumes


def _volumes() -> dict[str, schema.Volume]:
    return {"rw": schema.Volume(name="rw"), "ro": schema.Volume(name="ro", readonly=True)}


def test_volume_binds_are_rewritten() -> None:
    image = _image(
        binds=["rw:/a", "ro:/b:ro", "/abs:/c"],
        mounts=[{"type": "bind", "source": "ro", "destination": "/d", "options": ["rbind", "ro", "rw"]}],
    )
    mounts = {m["destination"]: m for m in _json(_spec(image, volumes=_volumes()))["mounts"]}
    assert mounts["/a"]["source"] == "/containers/volumes/rw/merged"
    assert mounts["/b"]["source"] == "/containers/volumes/ro/merged"
    assert mounts["/c"]["source"] == "/abs"
    assert mounts["/d"]["source"] == "/containers/volumes/ro/merged"
    binds_add = _json(_spec(_image(**{"binds.add": ["rw:/e"]}), volumes=_volumes()))["mounts"]
    assert any(m["source"] == "/containers/volumes/rw/merged" for m in binds_add)


def test_label_binds_are_not_rewritten() -> None:
    mounts = _json(_spec(config=_config({"binds": ["rw:/a"]}), volumes=_volumes()))["mounts"]
    assert any(m["source"] == "rw" for m in mounts)


@pytest.mark.parametrize(
    "fields",
    [
        {"binds": ["ro:/b"]},
        {"binds": ["ro:/b:ro,rshared"]},
        {"binds.add": ["ro:/b:rw"]},
        {"mounts": [{"type": "bind", "source": "ro", "destination": "/d", "options": ["rw", "ro"]}]},
        {"mounts": [{"type": "bind", "source": "ro", "destination": "/d"}]},
    ],
)
def test_read_only_volume_needs_ro(fields: dict[str, Any]) -> None:
    with pytest.raises(UserError, match="volume ro is read-only"):
        _spec(_image(**fields), volumes=_volumes())


def test_unknown_volume() -> None:
    with pytest.raises(UserError, match="volume 'nope'"):
        _spec(_image(binds=["nope:/x"]), volumes=_volumes())


# ------------------------------------------------------------------ labels


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected an object"),
        ({"bogus": 1}, "bogus: unknown key"),
        ({"capabilities": "CAP_KILL"}, "capabilities"),
        ({"name": "x"}, "name cannot be set"),
        ({"mounts": [{"typo": "x"}]}, "mounts.0.typo: unknown key"),
    ],
)
def test_invalid_label(label: Any, message: str) -> None:
    with pytest.raises(BuildError, match=message) as info:
        _spec(config=_config(label))
    assert "docker.io/test/img:1" in info.value.message and LABEL in info.value.message
    assert info.value.hint and info.value.exit_code == 1


def test_yaml_label_and_empty_label() -> None:
    assert _json(_spec(config=_config("capabilities: [CAP_KILL]")))["process"]["capabilities"]["effective"] == [
        "CAP_KILL"
    ]
    assert _json(_spec(config=_config("")))["process"]["capabilities"] == {}


def test_runtime_merges_per_field() -> None:
    label = {"runtime": {"cgroups": ["l"], "mkdir": ["/l"], "bindNS": {"net": "/l", "ipc": "/li"}, "namespace": "l"}}
    image = _image(runtime={"mkdir": ["/y"], "bindNS": {"net": "/y"}, "interfaces": [{"name": "eth0"}]})
    runtime = _spec(image, _config(label)).runtime
    assert runtime["cgroups"] == ["l"] and runtime["mkdir"] == ["/y"] and runtime["namespace"] == "l"
    assert runtime["bindNS"]["net"] == "/y" and runtime["bindNS"]["ipc"] == "/li"
    assert runtime["interfaces"] == [{"name": "eth0", "createInRoot": False}]


def test_runtime_json_fills_defaults() -> None:
    mount = runtime_mount("/x", "", "/y", ["bind"])
    assert mount == {"destination": "/x", "source": "/y", "options": ["bind"]}
    assert runtime_json({"mounts": [mount]}) == (
        b'{\n    "cgroups": [],\n    "mounts": [\n        {\n            "destination": "/x",\n'
        b'            "source": "/y",\n            "options": [\n                "bind"\n            ]\n'
        b'        }\n    ],\n    "mkdir": [],\n    "interfaces": [],\n    "bindNS": {\n        "cgroup": "",\n'
        b'        "ipc": "",\n        "mnt": "",\n        "net": "",\n        "pid": "",\n        "user": "",\n'
        b'        "uts": ""\n    },\n    "namespace": ""\n}'
    )


# ------------------------------------------------------------------ keys upstream's YAML decoding drops, honoured here

HONOURED_CONFIG = b"""    "linux": {
        "uidMappings": [
            {
                "containerID": 0,
                "hostID": 100000,
                "size": 65536
            }
        ],
        "gidMappings": [
            {
                "containerID": 1,
                "hostID": 2,
                "size": 3
            }
        ],
        "resources": {
            "memory": {
                "limit": 100,
                "kernelTCP": 5,
                "disableOOMKiller": true
            },
            "cpu": {
                "realtimeRuntime": 10,
                "realtimePeriod": 20
            },
            "blockIO": {
                "weight": 10,
                "leafWeight": 20,
                "weightDevice": [
                    {
                        "major": 8,
                        "minor": 0,
                        "weight": 30
                    }
                ],
                "throttleReadBpsDevice": [
                    {
                        "major": 8,
                        "minor": 0,
                        "rate": 1000
                    }
                ],
                "throttleWriteIOPSDevice": [
                    {
                        "major": 8,
                        "minor": 16,
                        "rate": 5
                    }
                ]
            },
            "hugepageLimits": [
                {
                    "pageSize": "2MB",
                    "limit": 4194304
                }
            ],
            "network": {
                "classID": 7
            }
        },
"""


def test_camel_case_keys_are_honoured() -> None:
    image = _image(
        uidMappings=[{"hostID": 100000, "containerID": 0, "size": 65536}],
        gidMappings=[{"hostID": 2, "containerID": 1, "size": 3}],
        resources={
            "memory": {"limit": 100, "kernelTCP": 5, "disableOOMKiller": True},
            "cpu": {"realtimeRuntime": 10, "realtimePeriod": 20},
            "blockio": {
                "weight": 10,
                "leafWeight": 20,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 30}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 5}],
            },
            "hugepageLimits": [{"pageSize": 2097152, "limit": 4194304}],
            "network": {"classID": 7},
        },
    )
    assert HONOURED_CONFIG in _spec(image).config_json


def test_resource_range_checks() -> None:
    with pytest.raises(UserError, match=r"resources.blockio.weight: 70000 does not fit in uint16"):
        _spec(_image(resources={"blockio": {"weight": 70000}}))
    with pytest.raises(UserError, match="uidMappings"):
        _spec(_image(uidMappings=[{"hostID": -1}]))


@pytest.mark.parametrize(("size", "text"), [(2097152, "2MB"), (1 << 30, "1GB"), (65536, "64KB"), (1000, "1000B")])
def test_hugepage_size(size: int, text: str) -> None:
    assert hugepage_size(size) == text


@pytest.mark.parametrize(
    ("label", "field"),
    [
        ({"binds": ["/host:/../../etc"]}, "binds[0]: bind destination '/../../etc' contains a '..' component"),
        ({"binds": ["/host:etc/../.."]}, "binds[0]: bind destination 'etc/../..' contains a '..' component"),
        ({"tmpfs": ["/ok", "/a/.."]}, "tmpfs[1]: tmpfs destination '/a/..'"),
        ({"mounts": [{"type": "tmpfs", "destination": "../x"}]}, "mounts[0].destination: mount destination '../x'"),
        ({"runtime": {"mkdir": ["../../../tmp/x"]}}, "runtime.mkdir[0]: mkdir path '../../../tmp/x'"),
        ({"runtime": {"cgroups": ["../x"]}}, "runtime.cgroups[0]: cgroup '../x'"),
        (
            {"runtime": {"mounts": [{"type": "bind", "source": "/", "destination": "../../x"}]}},
            "runtime.mounts[0].destination: runtime mount destination '../../x'",
        ),
    ],
)
def test_label_paths_that_climb_out_are_refused(label: dict[str, Any], field: str) -> None:
    with pytest.raises(UserError) as info:
        _spec(config=_config(label))
    assert info.value.exit_code == 2 and info.value.hint
    assert f"image docker.io/test/img:1: {LABEL} label: {field}" in info.value.message


def test_label_paths_overridden_by_the_yaml_are_not_used_so_not_refused() -> None:
    label = {"binds": ["/h:/../x"], "binds.add": ["/h:/../y"], "runtime": {"mkdir": ["../z"], "cgroups": ["ok"]}}
    spec = _spec(_image(binds=["/h:/ok"], runtime={"mkdir": ["/ok"]}), config=_config(label))
    assert "/ok" in [m["destination"] for m in _json(spec)["mounts"]]
    assert spec.runtime["mkdir"] == ["/ok"] and spec.runtime["cgroups"] == ["ok"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "../../x"}, "invalid container name '../../x': it contains '/'"),
        ({"name": ".."}, "invalid container name '..'"),
        ({"binds": ["/h:/a/../.."]}, "binds[0]: bind destination '/a/../..' contains a '..' component"),
        ({"runtime": {"mkdir": ["a/../../b"]}}, "runtime.mkdir[0]: mkdir path"),
    ],
)
def test_yaml_models_not_from_the_loader_are_checked_too(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=re.escape(message)):
        _spec(_image(**fields))
