"""The pure parts of building images from Debian packages: globs, file choice with ELF closure,
kernel module indexes, lock files, the build.yml ``debian:`` section and the image label."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from linuxkit.config import schema
from linuxkit.config.dump import image_config_label
from linuxkit.debian.model import DebRef
from linuxkit.errors import BuildError, ConfigError, UserError
from linuxkit.packages import kmod
from linuxkit.packages.buildyml import PkgInfo, context_path, parse_build_yml
from linuxkit.packages.debian_image import concatenated
from linuxkit.packages.fstree import DIR, REG, SYM, Matcher, Tree, clean_path, copy_tree, select, write_layer
from linuxkit.packages.lockfile import Lock, inputs_digest, read_lock, render_lock, write_lock


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("usr/share/doc/**", "usr/share/doc/x/copyright", True),
        ("usr/share/doc", "usr/share/doc/x/copyright", True),
        ("usr/share/doc", "usr/share/docs", False),
        ("usr/*/runc", "usr/sbin/runc", True),
        ("usr/*/runc", "usr/local/sbin/runc", False),
        ("**/*.so.*", "usr/lib/x86_64-linux-gnu/libseccomp.so.2", True),
        ("/bin/busybox", "bin/busybox", True),
        ("bin/busybo?", "bin/busybox", True),
        ("lib/modules/*/kernel/fs/*.ko", "lib/modules/6.1/kernel/fs/sub/x.ko", False),
    ],
)
def test_globs(pattern: str, path: str, expected: bool) -> None:
    assert Matcher([pattern])(path) is expected


def test_clean_path_refuses_escapes() -> None:
    assert clean_path("./usr/bin/x") == "usr/bin/x"
    assert clean_path("../etc/passwd") is None
    assert clean_path("a/../../b") is None
    assert clean_path("./") is None


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = mode
    return info


def _host_elf_tree(tmp_path: Path) -> Tree:
    """A tree holding the host's /bin/ls-like program with its real libraries, plus noise."""
    tree = Tree(tmp_path / "stage")
    tree.root.mkdir()
    program = Path(shutil.which("ls") or "/bin/ls").resolve()
    tree.add_file("usr/bin/prog", program, 0o755, origin="prog")
    # every library of the host under the same Debian paths, so the closure can find them
    for lib_dir in ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"):
        host = Path("/") / lib_dir
        if not host.is_dir():
            continue
        for lib in sorted([*host.glob("lib*.so*"), *host.glob("ld-linux*")]):
            if lib.is_symlink():
                tree.add_symlink(f"{lib_dir}/{lib.name}", str(lib.readlink()), origin="libs")
            elif lib.is_file() and lib.stat().st_size < 8 << 20:
                tree.add_file(f"{lib_dir}/{lib.name}", lib, 0o644, origin="libs")
    tree.add_symlink("lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", origin="libc")
    tree.add_bytes("usr/share/doc/prog/copyright", b"text", origin="prog")
    return tree


@pytest.mark.skipif(not Path("/lib/x86_64-linux-gnu/libc.so.6").exists(), reason="needs an amd64 Debian host")
def test_select_follows_elf_needs_and_links(tmp_path: Path) -> None:
    tree = _host_elf_tree(tmp_path)
    chosen = select(tree, arch="amd64", include=["usr/bin/prog"], exclude=["usr/share/doc"])
    assert "usr/bin/prog" in chosen
    assert "lib64/ld-linux-x86-64.so.2" in chosen  # the interpreter link...
    assert tree.resolve("lib64/ld-linux-x86-64.so.2") in chosen  # ...and what it points to
    assert any(p.endswith("/libc.so.6") for p in chosen)
    assert not any(p.startswith("usr/share/doc") for p in chosen)
    # no unrelated library came along
    libs = {p for p in chosen if "/lib" in p and tree.nodes[p].kind != DIR}
    assert len(libs) < 20
    assert "usr" in chosen and "usr/bin" in chosen  # parents


@pytest.mark.skipif(not Path("/lib/x86_64-linux-gnu/libc.so.6").exists(), reason="needs an amd64 Debian host")
def test_select_gives_a_merged_usr_interpreter_its_absolute_path(tmp_path: Path) -> None:
    tree = _host_elf_tree(tmp_path)
    # Debian 13's libc6: the interpreter exists only as usr/lib64/…, base-files would add /lib64 → usr/lib64
    del tree.nodes["lib64/ld-linux-x86-64.so.2"], tree.nodes["lib64"]
    tree.add_symlink("usr/lib64/ld-linux-x86-64.so.2", "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", origin="libc")
    chosen = select(tree, arch="amd64", include=["usr/bin/prog"], exclude=[])
    assert tree.nodes["lib64/ld-linux-x86-64.so.2"].target == "../usr/lib64/ld-linux-x86-64.so.2"
    assert tree.nodes["lib64"].kind == DIR  # a real directory: another image may ship one too
    assert {"lib64/ld-linux-x86-64.so.2", "usr/lib64/ld-linux-x86-64.so.2"} <= chosen
    assert tree.resolve("lib64/ld-linux-x86-64.so.2") in chosen


def test_select_reports_a_missing_library(tmp_path: Path) -> None:
    tree = Tree(tmp_path / "stage")
    tree.root.mkdir()
    program = Path(shutil.which("ls") or "/bin/ls").resolve()
    tree.add_file("usr/bin/prog", program, 0o755, origin="prog")
    with pytest.raises(BuildError, match=r"needs lib.*which no package"):
        select(tree, arch="amd64", include=["usr/bin/prog"], exclude=[])


def test_tree_members_links_and_hardlinks(tmp_path: Path) -> None:
    tree = Tree(tmp_path / "stage")
    tree.root.mkdir()
    tree.add_deb_member(_member("./bin/", tarfile.DIRTYPE, mode=0o755), None, "p")
    tree.add_deb_member(_member("./bin/tool", mode=0o755), io.BytesIO(b"tool"), "p")
    tree.add_deb_member(_member("./bin/alias", tarfile.LNKTYPE, link="./bin/tool"), None, "p")
    tree.add_deb_member(_member("./usr/bin/t", tarfile.SYMTYPE, link="/bin/tool"), None, "p")
    tree.add_deb_member(_member("../evil"), io.BytesIO(b"x"), "p")
    assert tree.staged("bin/alias").read_bytes() == b"tool"
    assert tree.resolve("usr/bin/t") == "bin/tool"
    assert "../evil" not in tree.nodes and not (tmp_path / "evil").exists()
    assert tree.nodes["usr"].kind == DIR  # implied parent
    assert tree.nodes["usr/bin/t"].kind == SYM


def test_copy_tree_modes_follow_the_executable_bit(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "files" / "etc").mkdir(parents=True)
    (pkg / "files" / "init").write_text("#!/bin/sh\n")
    (pkg / "files" / "init").chmod(0o775)
    (pkg / "files" / "etc" / "issue").write_text("hi\n")
    (pkg / "files" / "etc" / "issue").chmod(0o600)
    (pkg / "files" / "link").symlink_to("init")
    tree = Tree(tmp_path / "stage")
    tree.root.mkdir()
    copy_tree(tree, pkg / "files", "/", None)
    assert tree.nodes["init"].mode == 0o755
    assert tree.nodes["etc/issue"].mode == 0o644
    assert tree.nodes["link"].kind == SYM and tree.nodes["link"].target == "init"
    with pytest.raises(BuildError, match="no such file"):
        copy_tree(tree, pkg / "missing", "/x", None)


def test_copy_sources_come_from_extra_sources_destinations(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg" / "crun"
    pkg.mkdir(parents=True)
    shared = tmp_path / "pkg" / "runc" / "files"
    info = PkgInfo(image="crun", extra_sources=("../runc/files:runner", "/abs/elsewhere:/vendor/x"))
    assert context_path(pkg, info, "runner") == pkg / "../runc/files"
    assert context_path(pkg, info, "runner/usr/bin/service") == pkg / "../runc/files/usr/bin/service"
    assert context_path(pkg, info, "./vendor/x/a") == Path("/abs/elsewhere/a")
    assert context_path(pkg, info, "runners") == pkg / "runners"  # a prefix of a name is not the directory
    assert context_path(pkg, info, "files/a") == pkg / "files" / "a"
    (shared / "etc").mkdir(parents=True)
    (shared / "etc" / "rc").write_text("x\n")
    tree = Tree(tmp_path / "stage")
    tree.root.mkdir()
    copy_tree(tree, context_path(pkg, info, "runner"), "/", None)
    assert tree.nodes["etc/rc"].kind == REG


def test_layer_is_reproducible_and_sorted(tmp_path: Path) -> None:
    def make(where: Path) -> bytes:
        tree = Tree(where)
        where.mkdir()
        tree.add_bytes("usr/bin/b", b"b", 0o755)
        tree.add_bytes("etc/a", b"a")
        tree.add_symlink("bin/sh", "busybox")
        out = io.BytesIO()
        write_layer(tree, set(tree.nodes), out, mtime=1234)
        return out.getvalue()

    first, second = make(tmp_path / "one"), make(tmp_path / "two")
    assert first == second
    with tarfile.open(fileobj=io.BytesIO(first)) as tf:
        names = tf.getnames()
        assert names == sorted(names)
        assert {m.mtime for m in tf.getmembers()} == {1234}
        assert {(m.uid, m.gid) for m in tf.getmembers()} == {(0, 0)}


def _module(name: str, path: str, deps: tuple[str, ...] = (), aliases: tuple[str, ...] = ()) -> kmod.Module:
    return kmod.Module(name, path, deps, aliases)


def test_module_closure_and_modules_dep() -> None:
    mods = {
        "virtio_net": _module("virtio_net", "kernel/drivers/net/virtio_net.ko", ("net_failover", "virtio")),
        "net_failover": _module("net_failover", "kernel/drivers/net/net_failover.ko", ("failover",)),
        "failover": _module("failover", "kernel/net/core/failover.ko"),
        "virtio": _module("virtio", "kernel/drivers/virtio/virtio.ko", (), ("virtio:d*v*",)),
        "unused": _module("unused", "kernel/x/unused.ko"),
    }
    order = kmod.closure(mods, ["virtio-net"], builtin={"crc32c"})
    assert order.index("failover") < order.index("net_failover") < order.index("virtio_net")
    assert "unused" not in order
    dep = kmod.modules_dep(mods, order)
    line = next(x for x in dep.splitlines() if x.startswith("kernel/drivers/net/virtio_net.ko:"))
    listed = line.split(":", 1)[1].split()
    # modprobe loads from the end of the list: failover before net_failover
    assert listed.index("kernel/net/core/failover.ko") > listed.index("kernel/drivers/net/net_failover.ko")
    assert "alias virtio:d*v* virtio" in kmod.modules_alias(mods, order)
    with pytest.raises(UserError, match="unknown module virtio_nett") as err:
        kmod.closure(mods, ["virtio_nett"], builtin=set())
    assert err.value.hint and "virtio_net" in err.value.hint


def test_lock_round_trip_and_staleness(tmp_path: Path) -> None:
    ref = DebRef("busybox-static", "1:1.35.0-4+b3", "amd64", "bookworm", "pool/main/b/x.deb", 123, "ab" * 32)
    inputs = inputs_digest(["busybox-static"], [], ["bookworm"])
    lock = Lock(inputs, {"amd64": [ref]})
    path = tmp_path / "debian.lock"
    write_lock(path, lock)
    again = read_lock(path)
    assert again is not None and again.for_arch("amd64", inputs) == [ref]
    assert again.for_arch("arm64", inputs) is None
    assert again.for_arch("amd64", inputs_digest(["busybox"], [], ["bookworm"])) is None
    assert render_lock(again) == path.read_text()
    path.write_text("version: 1\narches: {amd64: [{name: x}]}\n")
    with pytest.raises(UserError, match="expected the keys") as err:
        read_lock(path)
    assert err.value.hint and "pkg lock" in err.value.hint
    assert read_lock(tmp_path / "none.lock") is None


def test_build_yml_debian_section_errors_are_located() -> None:
    text = b"""image: x
debian:
  packages: [busybox-static]
  copy:
    - {src: ../outside, dst: relative, mode: "999"}
  symlinks: {bin/sh: busybox}
  workdir: rel
"""
    with pytest.raises(ConfigError) as unknown:
        parse_build_yml(b"image: x\ndebian:\n  packages: [a]\n  pakages: [b]\n", "build.yml")
    assert "build.yml:4:3: debian.pakages: unknown key" in str(unknown.value)
    with pytest.raises(ConfigError) as err:
        parse_build_yml(text, "build.yml")
    text_out = str(err.value)
    assert "build.yml:5:" in text_out  # located at the copy entry
    for needle in ("debian.copy[0].src", "debian.copy[0].dst", "debian.copy[0].mode", "debian.workdir"):
        assert needle in text_out, text_out


def test_build_yml_paths_in_the_image_may_not_climb_out() -> None:
    text = b"""image: x
debian:
  packages: [busybox-static]
  copy:
    - {src: files, dst: /../victim}
  symlinks: {/usr/../../x: busybox}
  directories: [/var/../../y]
"""
    with pytest.raises(ConfigError) as err:
        parse_build_yml(text, "build.yml")
    out = str(err.value)
    for needle in ("debian.copy[0].dst: '/../victim'", "debian.symlinks", "debian.directories[0]: '/var/../../y'"):
        assert needle in out, out


def test_tree_refuses_names_climbing_out_before_touching_the_disk(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("keep")
    (tmp_path / "stage").mkdir()
    tree = Tree(tmp_path / "stage")
    src = tmp_path / "f"
    src.write_text("x")
    for add in (
        lambda: tree.add_file("../victim", src, 0o644),
        lambda: tree.add_bytes("../victim", b"x"),
        lambda: tree.add_dir("../victim"),
        lambda: tree.add_symlink("a/../../victim", "x"),
    ):
        with pytest.raises(BuildError, match="not a path inside the image"):
            add()
    assert (victim / "keep").read_text() == "keep"
    assert tree.nodes == {}


def test_build_yml_debian_section_parses() -> None:
    info = parse_build_yml(
        b"image: k\ndebian:\n  packages: [linux-image-cloud-amd64]\n  kernel: {modules: [virtio_blk]}\n", "b.yml"
    )
    assert info.debian is not None and info.debian.kernel is not None
    assert info.debian.kernel.modules == ["virtio_blk"]


def test_label_is_go_json_of_the_image_config() -> None:
    cfg = schema.parse(
        schema.ImageConfig, {"pid": "host", "capabilities": ["CAP_SYS_BOOT"], "binds": ["/run:/run"], "readonly": False}
    )
    assert image_config_label(cfg) == (
        '{"capabilities":["CAP_SYS_BOOT"],"binds":["/run:/run"],"pid":"host","readonly":false}'
    )


def test_concat_joins_package_files_in_path_order_each_ending_with_a_newline(tmp_path: Path) -> None:
    tree = Tree(tmp_path / "stage")
    tree.root.mkdir()
    tree.add_bytes("usr/share/ca/b.crt", b"B\n")
    tree.add_bytes("usr/share/ca/a.crt", b"A")  # no final newline: one is added, as update-ca-certificates does
    tree.add_bytes("usr/share/ca/sub/c.crt", b"C\n")  # `*` does not cross `/`
    tree.add_symlink("usr/share/ca/link.crt", "b.crt")  # only regular files
    assert concatenated(tree, ["usr/share/ca/*.crt"], "/etc/bundle") == b"A\nB\n"
    with pytest.raises(BuildError, match="no file of the packages matches x/\\*"):
        concatenated(tree, ["x/*"], "/etc/bundle")
    with pytest.raises(ConfigError) as err:
        parse_build_yml(b"image: x\ndebian:\n  packages: [a]\n  concat: {etc/rel: [x], /etc/none: []}\n", "b.yml")
    assert "debian.concat" in str(err.value) and "lists no file" in str(err.value)
