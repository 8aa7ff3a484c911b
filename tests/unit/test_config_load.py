"""Config loading: every diagnostic kind (exact text), merging of several files, @pkg: templates."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from linuxkit.config.load import load_configs
from linuxkit.errors import ConfigError, Diagnostic, Location, UserError


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def problems(tmp_path: Path, text: str) -> list[str]:
    """The headlines of all diagnostics, with the temp dir replaced by ``c.yml``."""
    path = write(tmp_path, "c.yml", text)
    with pytest.raises(ConfigError) as info:
        load_configs([path], resolve_packages=False)
    return [d.headline().replace(path, "c.yml") for d in info.value.diagnostics]


def hints(tmp_path: Path, text: str) -> list[str | None]:
    path = write(tmp_path, "c.yml", text)
    with pytest.raises(ConfigError) as info:
        load_configs([path], resolve_packages=False)
    return [d.hint for d in info.value.diagnostics]


def test_unknown_key_suggests_the_closest_allowed_key(tmp_path: Path) -> None:
    text = "services:\n  - name: a\n    image: alpine\n    capabilties: [CAP_SYS_ADMIN]\n"
    assert problems(tmp_path, text) == ["c.yml:4:5: services[0].capabilties: unknown key"]
    assert hints(tmp_path, text) == ["did you mean 'capabilities'?"]


def test_unknown_top_level_key(tmp_path: Path) -> None:
    assert problems(tmp_path, "kernal:\n  image: x\n") == ["c.yml:1:1: kernal: unknown key"]
    assert hints(tmp_path, "kernal:\n  image: x\n") == ["did you mean 'kernel'?"]


def test_wrong_types_say_what_is_expected(tmp_path: Path) -> None:
    text = (
        "files:\n  - path: a\n    contents: x\n    mode: 0644\nonboot:\n  - name: a\n    image: b\n    readonly: yes\n"
    )
    assert problems(tmp_path, text) == [
        "c.yml:4:11: files[0].mode: must be a string, not an integer",
        "c.yml:8:15: onboot[0].readonly: must be true or false, not a string",
    ]
    assert hints(tmp_path, text) == [
        'write the mode as a quoted octal string, e.g. mode: "0644"',
        "only true and false are booleans (YAML 1.2); yes/no/on/off are strings",
    ]


def test_union_type_and_enum_and_missing(tmp_path: Path) -> None:
    text = (
        "files:\n  - path: a\n    contents: x\n    uid: [1]\n"
        "volumes:\n  - name: v\n    format: ext4\nservices:\n  - image: alpine\n"
    )
    assert problems(tmp_path, text) == [
        "c.yml:4:10: files[0].uid: must be a string or an integer, not a list",
        "c.yml:7:13: volumes[0].format: must be one of 'oci' or 'filesystem'",
        "c.yml:9:5: services[0].name: required key is missing",
    ]


def test_semantic_checks_are_all_collected(tmp_path: Path) -> None:
    text = """\
kernel:
  image: linuxkit/kernel:6.6
onboot:
  - name: a
    image: alpine
    capabilities: [NET_ADMIN, all, CAP_BOGUS]
    ambient: [none]
    binds: [/a, "/a:/b:ro", "a:b:c:d"]
    binds.add: [x]
    tmpfs: ["/t:a:b"]
    rlimits: ["nofile,1024,4096", "bogus,1,2"]
    uid: nobody
services:
  - name: s
    image: "Bad:Ref"
  - name: s
    image: alpine
files:
  - path: b
  - path: c
    contents: x
    source: y
  - path: d
    directory: true
    contents: x
  - path: e
    source: /nonexistent/file
  - path: e2
    source: /nonexistent/file
    optional: true
  - path: f
    metadata: xml
  - path: g
    mode: "999"
    symlink: x
  - path: h
    symlink: x
    metadata: yaml
  - source: /nonexistent/x
    metadata: json
volumes:
  - name: Vol
  - name: v
  - name: v
"""
    assert problems(tmp_path, text) == [
        "c.yml:6:20: onboot[0].capabilities[0]: unknown capability 'NET_ADMIN'",
        "c.yml:6:31: onboot[0].capabilities[1]: unknown capability 'all'",
        "c.yml:6:36: onboot[0].capabilities[2]: unknown capability 'CAP_BOGUS'",
        "c.yml:8:13: onboot[0].binds[0]: invalid bind '/a'",
        "c.yml:8:29: onboot[0].binds[2]: invalid bind 'a:b:c:d'",
        "c.yml:9:17: onboot[0].binds.add[0]: invalid bind 'x'",
        "c.yml:10:13: onboot[0].tmpfs[0]: invalid tmpfs '/t:a:b'",
        "c.yml:11:35: onboot[0].rlimits[1]: invalid rlimit 'bogus,1,2'",
        "c.yml:12:10: onboot[0].uid: unknown user or group 'nobody'",
        "c.yml:15:12: services[0].image: invalid image reference 'Bad:Ref'",
        "c.yml:16:11: services[1].name: duplicate service name 's'",
        "c.yml:19:5: files[0]: no contents given",
        "c.yml:22:13: files[1].source: source cannot be combined with contents",
        "c.yml:25:15: files[2].contents: a directory cannot have contents",
        "c.yml:27:13: files[3].source: source file not found: /nonexistent/file",
        "c.yml:32:15: files[5].metadata: unsupported metadata type 'xml'",
        "c.yml:34:11: files[6].mode: invalid mode '999'",
        "c.yml:38:15: files[7].metadata: metadata cannot be combined with symlink",
        "c.yml:39:5: files[8]: path is required",
        "c.yml:39:13: files[8].source: source and metadata cannot both be set",
        "c.yml:42:11: volumes[0].name: invalid volume name 'Vol'",
        "c.yml:44:11: volumes[2].name: duplicate volume name 'v'",
    ]
    assert hints(tmp_path, text)[:3] == [
        "write it as 'CAP_NET_ADMIN'",
        "'all' is only allowed as the single entry of the list",
        "did you mean 'CAP_SYSLOG'?",
    ]


def test_schema_errors_do_not_hide_semantic_ones(tmp_path: Path) -> None:
    text = "kernel:\n  cmdlin: x\nservices:\n  - name: a\n    image: alpine\n    capabilities: [bogus]\n"
    assert problems(tmp_path, text) == [
        "c.yml:2:3: kernel.cmdlin: unknown key",
        "c.yml:6:20: services[0].capabilities[0]: unknown capability 'bogus'",
    ]


def test_root_must_be_a_non_empty_mapping(tmp_path: Path) -> None:
    assert problems(tmp_path, "") == ["c.yml:1:1: the config is empty"]
    assert problems(tmp_path, "- a\n") == ["c.yml:1:1: the config must be a mapping, not a list"]


def test_trust_is_accepted_and_dropped(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml", "trust:\n  org: [linuxkit]\ninit: [linuxkit/init:v1]\n")
    cfg = load_configs([path], resolve_packages=False)
    assert cfg.moby.trust is None
    assert cfg.moby.init == ["linuxkit/init:v1"]


def test_merge_like_append_config(tmp_path: Path) -> None:
    a = write(
        tmp_path,
        "a.yml",
        "kernel:\n  image: k:1\n  cmdline: console=tty0\ninit: [i1]\nservices:\n  - name: s\n    image: alpine\n",
    )
    b = write(
        tmp_path,
        "b.yml",
        'kernel:\n  image: k:2\n  cmdline: ""\n  tar: none\ninit: [i2]\nservices:\n  - name: t\n    image: alpine\n',
    )
    cfg = load_configs([a, b], resolve_packages=False)
    m = cfg.moby
    assert m.kernel is not None
    assert (m.kernel.image, m.kernel.cmdline, m.kernel.tar) == ("k:2", "console=tty0", "none")
    assert m.init == ["i1", "i2"]
    assert [s.name for s in m.services or []] == ["s", "t"]
    assert m.onboot is None
    assert cfg.locate("services", 1, "image") == Location(b, 8, 12)
    assert cfg.locate("kernel", None, "cmdline") == Location(a, 3, 12)
    assert cfg.locate("init", 1) == Location(b, 5, 8)
    assert cfg.describe("services", 0, "name") == f"{a}:6:11: services[0].name"
    assert cfg.default_name == "b"


def test_duplicate_service_across_files_points_at_second(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yml", "services:\n  - name: s\n    image: alpine\n")
    b = write(tmp_path, "b.yml", "onboot:\n  - name: o\n    image: alpine\nservices:\n  - name: s\n    image: alpine\n")
    with pytest.raises(ConfigError) as info:
        load_configs([a, b], resolve_packages=False)
    (diag,) = info.value.diagnostics
    assert diag.headline() == f"{b}:5:11: services[1].name: duplicate service name 's'"
    assert diag.hint == f"first defined at {a}:2:11"


def test_uid_may_name_a_container_from_another_file(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yml", "files:\n  - path: x\n    contents: y\n    uid: getty\n    gid: root\n")
    b = write(tmp_path, "b.yml", "services:\n  - name: getty\n    image: alpine\n")
    assert load_configs([a, b], resolve_packages=False).moby.files is not None


def test_stdin_source(tmp_path: Path) -> None:
    cfg = load_configs(["-"], stdin=io.BytesIO(b"init: [a]\n"), resolve_packages=False)
    assert cfg.moby.init == ["a"]
    assert cfg.default_name == "moby"
    assert cfg.sources[0].name == "<stdin>"
    assert cfg.sources[0].directory is None


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot open config file"):
        load_configs([str(tmp_path / "nope.yml")])


def test_pkg_templates_resolve_relative_to_the_yaml(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sub/c.yml",
        'onboot:\n  - name: a\n    image: "@pkg:../pkgs/a"\n    command: ["@pkg:/abs", "@other"]\n',
    )
    seen: list[str] = []

    def resolver(pkg: str) -> str:
        seen.append(pkg)
        return "docker.io/linuxkit/a:abc"

    cfg = load_configs([path], pkg_resolver=resolver)
    image = (cfg.moby.onboot or [])[0]
    assert image.image == "docker.io/linuxkit/a:abc"
    assert image.command == ["docker.io/linuxkit/a:abc", "@other"]
    assert seen == [str(tmp_path / "pkgs/a"), str(tmp_path / "sub/abs")]
    # the raw per-file data keeps what was written
    assert cfg.sources[0].document.value["onboot"][0]["image"] == "@pkg:../pkgs/a"


def test_pkg_template_failure_is_located(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml", 'onboot:\n  - name: a\n    image: "@pkg:nope"\n')

    def resolver(pkg: str) -> str:
        raise UserError("no build.yml")

    with pytest.raises(ConfigError) as info:
        load_configs([path], pkg_resolver=resolver)
    assert str(info.value) == f"{path}:3:12: onboot[0].image: cannot resolve '@pkg:nope': no build.yml"


def test_pkg_template_failure_in_build_yml_is_located_in_build_yml(tmp_path: Path) -> None:
    text = 'onboot:\n  - name: a\n    image: "@pkg:p"\nservices:\n  - name: b\n    image: "@pkg:p"\n'
    a = write(tmp_path, "a.yml", text)
    b = write(tmp_path, "b.yml", text.replace("name: ", "name: x"))
    where = Location(str(tmp_path / "p" / "build.yml"), 10, 13)

    def resolver(pkg: str) -> str:
        raise ConfigError([Diagnostic("must be a string, not a list", where, "config.devices[0].mode")])

    with pytest.raises(ConfigError) as info:
        load_configs([a, b], pkg_resolver=resolver)
    lines = [d.headline() for d in info.value.diagnostics]
    # the build.yml problem once, where it is written (sorted by file); each @pkg: use points to it
    assert lines == [
        *(
            f"{path}:{line}:12: {field}.image: cannot resolve '@pkg:p': the package has errors"
            for path in (a, b)
            for line, field in ((3, "onboot[0]"), (6, "services[0]"))
        ),
        f"{where}: config.devices[0].mode: must be a string, not a list",
    ]
    assert info.value.diagnostics[0].hint == f"see {where}"


def test_pkg_tags_are_computed_once_per_directory_for_all_the_files(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yml", 'onboot:\n  - name: a\n    image: "@pkg:p"\n    command: ["@pkg:./p/", "@pkg:q"]\n')
    b = write(
        tmp_path, "sub/b.yml", 'services:\n  - name: b\n    image: "@pkg:../p"\n  - name: c\n    image: "@pkg:../bad"\n'
    )
    c = write(tmp_path, "c.yml", 'services:\n  - name: d\n    image: "@pkg:bad"\n')
    seen: list[str] = []

    def resolver(pkg: str) -> str:
        seen.append(pkg)
        if pkg.endswith("bad"):
            raise UserError("no build.yml")
        return f"docker.io/linuxkit/{Path(pkg).name}:abc"

    with pytest.raises(ConfigError) as info:
        load_configs([a, b, c], pkg_resolver=resolver)
    assert seen == [str(tmp_path / "p"), str(tmp_path / "q"), str(tmp_path / "bad")]  # a failure once too
    assert sorted(str(d) for d in info.value.diagnostics) == [
        f"{c}:3:12: services[0].image: cannot resolve '@pkg:bad': no build.yml",
        f"{b}:5:12: services[1].image: cannot resolve '@pkg:../bad': no build.yml",
    ]
    seen.clear()
    cfg = load_configs([a], pkg_resolver=resolver)
    assert (cfg.moby.onboot or [])[0].command == ["docker.io/linuxkit/p:abc", "docker.io/linuxkit/q:abc"]
    assert seen == [str(tmp_path / "p"), str(tmp_path / "q")]  # a new load asks again (the package may have changed)


def test_missing_source_is_a_warning_when_sources_need_not_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from linuxkit import log

    warnings: list[str] = []
    monkeypatch.setattr(log, "warn", warnings.append)
    path = write(tmp_path, "c.yml", "files:\n  - path: etc/x\n    source: /nonexistent/x\n")
    with pytest.raises(ConfigError, match="source file not found"):
        load_configs([path], resolve_packages=False)
    assert warnings == []
    cfg = load_configs([path], resolve_packages=False, sources_must_exist=False)
    assert cfg.moby.files is not None and cfg.moby.files[0].source == "/nonexistent/x"
    assert warnings == [f"{path}:3:13: files[0].source: source file not found: /nonexistent/x"]


def test_binds_naming_volumes_are_checked_at_their_nodes(tmp_path: Path) -> None:
    a = write(
        tmp_path,
        "a.yml",
        "services:\n  - name: s\n    image: x:1\n    binds:\n      - /etc:/etc\n      - nope:/data\n      - ro:/ro\n"
        "      - ro:/ok:ro\n      - rw:/rw\n    mounts:\n      - type: bind\n        source: ro\n"
        "        destination: /m\n        options: [rbind]\n",
    )
    b = write(tmp_path, "b.yml", "volumes:\n  - name: ro\n    readonly: true\n  - name: rw\n")
    with pytest.raises(ConfigError) as info:
        load_configs([a, b], resolve_packages=False)  # volumes of every file count
    assert [d.headline() for d in info.value.diagnostics] == [
        f"{a}:6:9: services[0].binds[1]: bind 'nope:/data' uses volume 'nope', which is not defined",
        f"{a}:7:9: services[0].binds[2]: volume ro is read-only, but bind 'ro:/ro' would mount it read-write",
        f"{a}:12:17: services[0].mounts[0].source: volume ro is read-only, but mounts[0] would mount it read-write",
    ]
