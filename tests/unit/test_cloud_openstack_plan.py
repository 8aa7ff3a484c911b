"""``push openstack``/``run openstack``: the disk format Glance is told (the extension, as upstream, checked
against the file's magic numbers: qcow2 ``QFI\\xfb``, VMDK ``KDMV``, VHDX ``vhdxfile``, VHD footer ``conectix``,
ISO 9660 ``CD001`` at 0x8001), the image name, the Nova server attributes, and the CLI's start (openstacksdk is
not imported until the verb runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from linuxkit.cloud import openstack
from linuxkit.errors import UserError


def test_sniff_reads_the_formats_magic_numbers() -> None:
    assert openstack.sniff(b"QFI\xfb\0\0\0\3", b"") == "qcow2"
    assert openstack.sniff(b"KDMV\1\0\0\0", b"") == "vmdk"
    assert openstack.sniff(b"vhdxfile", b"") == "vhdx"
    assert openstack.sniff(bytes(1024), b"conectix" + bytes(504)) == "vhd"
    assert openstack.sniff(bytes(0x8001) + b"CD001" + bytes(100), b"") == "iso"
    assert openstack.sniff(bytes(65536), bytes(512)) == ""


def test_disk_format_from_the_extension_checked_against_the_content(tmp_path: Path) -> None:
    raw = tmp_path / "a-bios.img"
    raw.write_bytes(bytes(4096))
    assert openstack.disk_format(raw) == "raw"
    (tmp_path / "a.raw").write_bytes(bytes(4096))
    assert openstack.disk_format(tmp_path / "a.raw") == "raw"
    qcow = tmp_path / "a.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow), "1M"], check=True)
    assert openstack.disk_format(qcow) == "qcow2"
    misnamed = tmp_path / "b.img"
    misnamed.write_bytes(qcow.read_bytes())
    with pytest.raises(UserError, match="holds a qcow2 disk, not raw"):
        openstack.disk_format(misnamed)
    with pytest.raises(UserError, match=r"extension \[gz\]"):
        openstack.disk_format(tmp_path / "x.img.tar.gz")


def test_image_name_is_the_file_name_without_its_extension() -> None:
    assert openstack.image_name(Path("/out/linuxkit.qcow2"), "") == "linuxkit"
    assert openstack.image_name(Path("/out/linuxkit.qcow2"), "given") == "given"


def test_server_attributes_as_upstream() -> None:
    opts = openstack.RunOptions(image="img")
    assert openstack.server_attrs(opts, "IMG-ID", "FL-ID") == {
        "name": "img",
        "image_id": "IMG-ID",
        "flavor_id": "FL-ID",
        "security_groups": [{"name": "default"}],
    }
    opts = openstack.RunOptions(image="img", name="vm", network="n", security_groups=("a", ""), key_name="k")
    attrs = openstack.server_attrs(opts, "I", "F")
    assert attrs["name"] == "vm" and attrs["networks"] == [{"uuid": "n"}] and attrs["key_name"] == "k"
    assert attrs["security_groups"] == [{"name": "a"}]


def test_cli_module_imports_no_sdk_and_help_works() -> None:
    code = (
        "import sys\n"
        "from linuxkit.cli.main import build_parser\n"
        "args = build_parser().parse_args(['push', 'openstack', '--img-name', 'n', 'x.qcow2'])\n"
        "assert args.run == 'cloud_openstack_cmd:push' and args.img_name == 'n'\n"
        "args = build_parser().parse_args(['run', 'openstack', '--sec-groups', 'a,b', 'img'])\n"
        "assert args.run == 'cloud_openstack_cmd:run' and args.flavor == 'm1.tiny'\n"
        "print(sorted(m for m in sys.modules if m.startswith(('openstack', 'keystoneauth1', 'linuxkit.cloud.open'))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
    for verb, flag in (("push", "--img-name"), ("run", "--instancename")):
        out = subprocess.run(
            [sys.executable, "-m", "linuxkit.cli.main", verb, "openstack", "--help"], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert flag in out.stdout


def test_a_missing_sdk_names_the_extra(tmp_path: Path) -> None:
    disk = tmp_path / "d.raw"
    disk.write_bytes(bytes(1024))
    code = (
        "import sys\n"
        "sys.modules['openstack'] = None\n"
        "from linuxkit.cli.main import main\n"
        f"sys.exit(main(['push', 'openstack', {str(disk)!r}]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'linuxkit[openstack]'" in proc.stderr
