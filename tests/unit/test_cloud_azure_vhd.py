"""``push azure``'s pure parts: the fixed-VHD checks (footer layout from the VHD specification: "conectix" at 0,
current size at 48, disk type at 60 (2 fixed, 3 dynamic), checksum at 64), the plan of non-empty 4 MiB ranges and
the file's MD5, the flags; and that the CLI module does not import the Azure SDK."""

from __future__ import annotations

import argparse
import hashlib
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from linuxkit.cli.cloud_azure_cmd import push_flags, run_flags, user_data
from linuxkit.cloud.azure_vhd import CHUNK, MIB, PAGE, check_fixed_vhd, footer_checksum, parse_footer, plan_pages
from linuxkit.errors import UserError


def footer(size: int, disk_type: int = 2, checksum: int | None = None) -> bytes:
    out = bytearray(PAGE)
    out[:8] = b"conectix"
    struct.pack_into(">QQ", out, 40, size, size)
    struct.pack_into(">I", out, 60, disk_type)
    struct.pack_into(">I", out, 64, footer_checksum(bytes(out)) if checksum is None else checksum)
    return bytes(out)


def vhd(path: Path, size: int, foot: bytes | None = None, sparse: bool = True, data: bytes = b"") -> Path:
    with path.open("wb") as fh:
        if sparse:
            fh.truncate(size)
        else:
            for _ in range(size // CHUNK):
                fh.write(bytes(CHUNK))
            fh.write(bytes(size % CHUNK))
        fh.seek(0)
        fh.write(data)
        fh.seek(size)
        fh.write(footer(size) if foot is None else foot)
    return path


def test_a_fixed_vhd_passes(tmp_path: Path) -> None:
    got = check_fixed_vhd(vhd(tmp_path / "a.vhd", 4 * MIB))
    assert (got.disk_type, got.current_size) == ("fixed", 4 * MIB)


def test_the_checksum_is_the_ones_complement_of_the_byte_sum() -> None:
    foot = footer(MIB)
    assert footer_checksum(foot) == (~(sum(foot) - sum(foot[64:68]))) & 0xFFFFFFFF
    with pytest.raises(UserError, match="checksum"):
        parse_footer(footer(MIB, checksum=1))


@pytest.mark.parametrize(
    ("make", "message", "hint"),
    [
        (lambda p: vhd(p, 4 * MIB, footer(4 * MIB, disk_type=3)), "is a dynamic VHD", "subformat=fixed"),
        (lambda p: vhd(p, 4 * MIB, footer(4 * MIB, disk_type=4)), "is a differencing VHD", "-format vhd"),
        (lambda p: vhd(p, 4 * MIB, bytes(PAGE)), "not a VHD: no 'conectix'", "-format vhd"),
        (lambda p: vhd(p, 4 * MIB, footer(8 * MIB)), "footer says 8388608 bytes", "-format vhd"),
        (lambda p: vhd(p, 3 * MIB + PAGE), "whole MiB", "-size"),
        (lambda p: p.write_bytes(b"x" * 1000), "not a whole number of 512-byte pages", "-format vhd"),
    ],
)
def test_what_is_not_a_fixed_vhd_is_refused_with_a_way_out(
    tmp_path: Path, make: object, message: str, hint: str
) -> None:
    path = tmp_path / "bad.vhd"
    make(path)  # type: ignore[operator]
    with pytest.raises(UserError, match=message) as info:
        check_fixed_vhd(path)
    assert hint in (info.value.hint or "")


def test_the_plan_skips_empty_ranges_sparse_or_written(tmp_path: Path) -> None:
    data = os.urandom(700)
    sparse = vhd(tmp_path / "sparse.vhd", 40 * MIB, data=data)
    with sparse.open("r+b") as fh:
        fh.seek(17 * MIB + 3)
        fh.write(b"\x01")
    written = vhd(tmp_path / "written.vhd", 40 * MIB, sparse=False, data=data)
    with written.open("r+b") as fh:
        fh.seek(17 * MIB + 3)
        fh.write(b"\x01")
    for path in (sparse, written):
        plan = plan_pages(path)
        assert plan.size == 40 * MIB + PAGE
        # the first chunk, the one holding 17 MiB, and the footer's page alone at the end
        assert plan.ranges == ((0, CHUNK), (4 * CHUNK, CHUNK), (40 * MIB, PAGE))
        assert plan.upload_bytes == 2 * CHUNK + PAGE
        assert plan.md5 == hashlib.md5(path.read_bytes()).digest()


def test_the_plan_takes_smaller_chunks(tmp_path: Path) -> None:
    path = vhd(tmp_path / "a.vhd", 2 * MIB, data=b"\x01")
    assert plan_pages(path, chunk=64 * 1024).ranges == ((0, 64 * 1024), (2 * MIB, PAGE))
    with pytest.raises(ValueError):
        plan_pages(path, chunk=1000)


def _parse(fill: object, argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    fill(p)  # type: ignore[operator]
    return p.parse_args(argv)


def test_flags_keep_upstreams_names() -> None:
    push = _parse(push_flags, ["--resource-group", "g", "--storage-account", "acct", "a.vhd"])
    assert (push.resource_group, push.storage_account, push.container, push.run) == (
        "g",
        "acct",
        "linuxkitcontainer",
        "cloud_azure_cmd:push",
    )
    run = _parse(run_flags, ["--resourceGroupName", "g", "--accountName", "acct", "a.vhd"])
    assert (run.resource_group, run.storage_account, run.location, run.run) == (
        "g",
        "acct",
        "westus",
        "cloud_azure_cmd:run",
    )
    assert _parse(run_flags, ["x"]).storage_account == "linuxkit"


def test_user_data(tmp_path: Path) -> None:
    (tmp_path / "u").write_bytes(b"\x00bin")
    assert user_data("text", None) == b"text"
    assert user_data(None, str(tmp_path / "u")) == b"\x00bin"
    assert user_data(None, None) is None
    with pytest.raises(UserError, match="not both"):
        user_data("a", str(tmp_path / "u"))
    with pytest.raises(UserError, match="--data-file"):
        user_data(None, str(tmp_path / "missing"))


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_the_cli_module_and_help_do_not_import_the_sdk() -> None:
    code = (
        "import sys, contextlib, io\n"
        "import linuxkit.cli.cloud_azure_cmd\n"
        "from linuxkit.cli.main import main\n"
        "for argv in (['push', 'azure', '--help'], ['run', 'azure', '--help']):\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
        "        main(argv)\n"
        "    assert 'AZURE_CLIENT_SECRET' in out.getvalue(), out.getvalue()\n"
        "print(sorted(m for m in sys.modules if m == 'azure' or m.startswith('azure.')))\n"
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_missing_sdk_names_the_extra(tmp_path: Path) -> None:
    path = vhd(tmp_path / "a.vhd", MIB)
    code = (
        "import sys\n"
        "sys.modules['azure.storage.blob'] = None\n"
        "from linuxkit.cli.main import main\n"
        f"sys.exit(main(['push', 'azure', '--no-image', {str(path)!r}]))\n"
    )
    done = _python(code)
    assert done.returncode == 2, done.stderr
    assert "linuxkit[azure]" in done.stderr and "Traceback" not in done.stderr
