"""build --verity's pure parts: the command line arguments (written, read back, replaced), the dm table,
the salt and UUID derived from the image, the root hash of a tree's top block, the format checks, and
what the root loader gets for it (the dm-verity modules, dmsetup's tree in the cpio, the init steps)."""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import subprocess
from pathlib import Path

import pytest

from linuxkit.errors import UserError
from linuxkit.formats import rootloader
from linuxkit.formats.rootloader import KernelModule, LoaderParts, chosen_modules, init_script, write_loader
from linuxkit.formats.verity import (
    VerityRoot,
    check_formats,
    cmdline_args,
    derived_salt_and_uuid,
    dm_table,
    parse_cmdline,
    root_image_first,
    tree_root_hash,
    with_verity,
)

ROOT_HASH = "5dacd9c78f3427ebf71aa6fbdf3c3ca1b7de2e61a6f333badede0ed5b9390b74"
SALT = "5428acf437cc1bda750ba1c1512a8f3976872b5c0b8369f4c1ed775fb24a8161"


def test_cmdline_args_read_back() -> None:
    root = VerityRoot(1245, SALT, ROOT_HASH)
    assert cmdline_args(root) == [
        f"linuxkit.verity={ROOT_HASH}",
        "linuxkit.verity_blocks=1245",
        f"linuxkit.verity_salt={SALT}",
    ]
    assert parse_cmdline("console=ttyS0 " + " ".join(cmdline_args(root))) == root
    assert parse_cmdline("console=ttyS0 root=/dev/vda") is None


def test_with_verity_keeps_the_image_cmdline_and_replaces_old_verity_args() -> None:
    old = VerityRoot(7, "00", "0" * 64)
    new = VerityRoot(9, SALT, ROOT_HASH)
    line = with_verity("console=ttyS0 " + " ".join(cmdline_args(old)) + " quiet\n", new)
    assert line == "console=ttyS0 quiet " + " ".join(cmdline_args(new))
    assert with_verity("", new) == " ".join(cmdline_args(new))


@pytest.mark.parametrize(
    "bad",
    [
        f"linuxkit.verity={ROOT_HASH[:-1]} linuxkit.verity_blocks=3 linuxkit.verity_salt={SALT}",
        f"linuxkit.verity={ROOT_HASH.upper()} linuxkit.verity_blocks=3 linuxkit.verity_salt={SALT}",
        f"linuxkit.verity={ROOT_HASH} linuxkit.verity_blocks=-3 linuxkit.verity_salt={SALT}",
        f"linuxkit.verity={ROOT_HASH} linuxkit.verity_salt={SALT}",
        f"linuxkit.verity={ROOT_HASH} linuxkit.verity_blocks=3 linuxkit.verity_salt=xyz",
    ],
)
def test_malformed_cmdline_is_an_error(bad: str) -> None:
    with pytest.raises(UserError, match="malformed dm-verity"):
        parse_cmdline(bad)


def test_dm_table_puts_the_tree_after_the_data_and_its_superblock() -> None:
    table = dm_table(VerityRoot(1245, SALT, ROOT_HASH), "/dev/vda")
    assert table == f"0 9960 verity 1 /dev/vda /dev/vda 4096 4096 1245 1246 sha256 {ROOT_HASH} {SALT}"


def test_salt_and_uuid_follow_the_image_bytes() -> None:
    one = derived_salt_and_uuid(hashlib.sha256(b"image one").digest())
    assert one == derived_salt_and_uuid(hashlib.sha256(b"image one").digest())
    two = derived_salt_and_uuid(hashlib.sha256(b"image two").digest())
    assert one[0] != two[0] and one[1] != two[1]
    assert len(bytes.fromhex(one[0])) == 32
    assert one[1].count("-") == 4


def test_root_hash_is_the_salted_hash_of_the_top_block() -> None:
    block = bytes(range(256)) * 16
    assert tree_root_hash(block, "0011") == hashlib.sha256(b"\x00\x11" + block).hexdigest()


def test_verity_takes_one_root_image_format() -> None:
    check_formats(["kernel+squashfs"])
    check_formats(["kernel+erofs"])
    with pytest.raises(UserError, match=r"root-image formats only, not kernel\+iso"):
        check_formats(["kernel+iso"])
    with pytest.raises(UserError, match="root-image formats only, not raw-bios"):
        check_formats(["kernel+squashfs", "raw-bios"])
    with pytest.raises(UserError, match="one root-image format at a time"):
        check_formats(["kernel+squashfs", "kernel+erofs"])
    # uki comes along as the root image's boot chain, never alone
    check_formats(["uki", "kernel+erofs"])
    with pytest.raises(UserError, match="one root-image format at a time") as alone:
        check_formats(["uki"])
    assert "add -f kernel+squashfs" in (alone.value.hint or "")
    with pytest.raises(UserError, match="not raw-efi"):
        check_formats(["raw-efi", "kernel+squashfs"])


def test_the_root_image_is_written_before_the_uki_that_reads_it() -> None:
    from linuxkit.formats.registry import all_formats

    table = all_formats()
    ordered = root_image_first([table["uki"], table["kernel+squashfs"]])
    assert [f.name for f in ordered] == ["kernel+squashfs", "uki"]


def _parts() -> LoaderParts:
    def mod(name: str, *deps: str) -> KernelModule:
        return KernelModule(name, f"lib/modules/6.1/{name}.ko", deps)

    modules = [mod(m) for m in rootloader.REQUIRED_MODULES]
    modules += [mod("dm_mod"), mod("dm_bufio"), mod("dm_verity", "dm_mod", "dm_bufio")]
    return LoaderParts(b"busybox", {m.name: m for m in modules}, frozenset())


def test_verity_loader_loads_dm_verity_after_its_dependencies() -> None:
    plain = chosen_modules(_parts())
    assert "dm_verity" not in plain
    order = chosen_modules(_parts(), verity=True)
    assert order.index("dm_mod") < order.index("dm_verity") and order.index("dm_bufio") < order.index("dm_verity")


def test_verity_loader_cpio_holds_the_tools_tree(tmp_path: Path) -> None:
    if shutil.which("cpio") is None:
        pytest.skip("cpio is not installed")
    tools = tmp_path / "tools"
    (tools / "sbin").mkdir(parents=True)
    (tools / "lib").mkdir()
    (tools / "sbin" / "dmsetup").write_bytes(b"\x7fELF dmsetup")
    (tools / "sbin" / "dmsetup").chmod(0o755)
    (tools / "lib" / "libdevmapper.so.1.02.1").write_bytes(b"lib")
    (tools / "lib64").symlink_to("lib")
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "secret").write_bytes(b"host file")
    (tools / "hostlib").symlink_to(outside)  # a link to a directory is kept as a link, never followed
    parts = _parts()
    order = chosen_modules(parts, verity=True)
    data = {parts.modules[m].path: m.encode() for m in order}
    out = io.BytesIO()
    write_loader(parts, order, data, out, tools)
    listing = subprocess.run(
        ["cpio", "-itv"], input=gzip.decompress(out.getvalue()), capture_output=True, check=True
    ).stdout.decode()
    lines = {line.split()[-1] if "->" not in line else line.split()[-3]: line for line in listing.splitlines()}
    assert lines["sbin/dmsetup"].startswith("-rwxr-xr-x")
    assert lines["lib/libdevmapper.so.1.02.1"].startswith("-rw-r--r--")
    assert lines["lib64"].startswith("l") and lines["lib64"].endswith("-> lib")
    assert list(lines).index("lib") < list(lines).index("lib/libdevmapper.so.1.02.1")
    assert lines["hostlib"].startswith("l") and lines["hostlib"].endswith(f"-> {outside}")
    assert not any(name.startswith("hostlib/") for name in lines)
    again = io.BytesIO()
    write_loader(parts, order, data, again, tools)
    assert again.getvalue() == out.getvalue()


def test_init_refuses_rather_than_mounting_the_disk_when_a_root_hash_is_named() -> None:
    script = init_script(["dm_verity"])
    verity, _, plain = script.partition('if [ -n "$vhash$vblocks$vsalt" ]; then')[2].partition("else\n")
    # the verity branch mounts the dm device only, and every failure there powers off
    assert "try_root /dev/mapper/lkroot" in verity
    assert "find_disk verity_disk" in verity and "find_disk try_root" not in verity
    assert "fail " not in verity.replace("refuse", "")
    assert "find_disk try_root" in plain
    assert "poweroff -f" in script
    table = dm_table(VerityRoot(0, "$vsalt", "$vhash"), "$found")
    shell_table = table.replace("0 0 verity", "0 $((vblocks * 8)) verity").replace(
        " 0 1 sha256", " $vblocks $((vblocks + 1)) sha256"
    )
    assert f'table="{shell_table}"' in verity
