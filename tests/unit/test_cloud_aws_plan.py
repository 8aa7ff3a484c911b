"""``push aws`` / ``run aws`` pure logic: the blocks of an image (zero blocks skipped, the last one padded, holes
skipped), the LINEAR checksum, the boot mode read from a partition table, the RegisterImage and RunInstances
requests (checked against botocore's EC2 service model, the published API description), the flags and
environment variables, the missing-credentials error, and that the CLI module does not import boto3."""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from linuxkit.cli.cloud_aws_cmd import push_flags, push_options, run_flags, run_options, user_data
from linuxkit.cloud import aws_image
from linuxkit.cloud.aws_run import RunOptions, run_instances_params
from linuxkit.cloud.ebs_blocks import (
    BLOCK_SIZE,
    aggregate_checksum,
    block_count,
    iter_blocks,
    make_block,
    volume_size_gib,
)
from linuxkit.errors import UserError
from linuxkit.formats.partition import ESP_TYPE, Partition, write_gpt, write_mbr

MIB = 1024 * 1024


def _blocks(path: Path) -> tuple[list[tuple[int, bytes]], int]:
    with open(path, "rb") as fh:
        walked = list(iter_blocks(fh, path.stat().st_size))
    return [(b.block_index, b.data) for _, b in walked if b is not None], sum(n for n, _ in walked)


def test_zero_blocks_are_skipped_and_the_last_partial_block_is_padded(tmp_path: Path) -> None:
    image = tmp_path / "disk.raw"
    size = 5 * MIB + 1000  # 11 blocks, the last one partial
    with open(image, "wb") as fh:
        fh.truncate(size)
        fh.seek(10)
        fh.write(b"boot")
        fh.seek(3 * BLOCK_SIZE - 2)  # straddles blocks 2 and 3
        fh.write(b"abcd")
        fh.seek(size - 3)
        fh.write(b"end")
    blocks, covered = _blocks(image)
    assert covered == size
    assert [i for i, _ in blocks] == [0, 2, 3, 10]
    assert all(len(data) == BLOCK_SIZE for _, data in blocks)
    content = image.read_bytes()
    for index, data in blocks[:-1]:
        assert data == content[index * BLOCK_SIZE : (index + 1) * BLOCK_SIZE]
    last = content[10 * BLOCK_SIZE :]
    assert blocks[-1][1] == last + bytes(BLOCK_SIZE - len(last))
    assert block_count(size) == 11


def test_written_zeroes_are_skipped_like_holes(tmp_path: Path) -> None:
    image = tmp_path / "dense.raw"
    image.write_bytes(bytes(3 * BLOCK_SIZE) + b"x" + bytes(BLOCK_SIZE - 1))
    blocks, covered = _blocks(image)
    assert [i for i, _ in blocks] == [3]
    assert covered == 4 * BLOCK_SIZE


def test_an_all_zero_image_has_no_block(tmp_path: Path) -> None:
    image = tmp_path / "empty.raw"
    with open(image, "wb") as fh:
        fh.truncate(64 * MIB)
    assert _blocks(image) == ([], 64 * MIB)


def test_block_checksums_and_linear_aggregate() -> None:
    one, two = make_block(7, b"\x01" * 10), make_block(2, b"\x02" * BLOCK_SIZE)
    assert one.checksum == base64.b64encode(hashlib.sha256(b"\x01" * 10 + bytes(BLOCK_SIZE - 10)).digest()).decode()
    # ascending block index, raw digests concatenated (not the base64 strings), whatever the completion order
    expected = base64.b64encode(hashlib.sha256(two.digest + one.digest).digest()).decode()
    assert aggregate_checksum([(7, one.digest), (2, two.digest)]) == expected
    assert aggregate_checksum([]) == base64.b64encode(hashlib.sha256(b"").digest()).decode()
    with pytest.raises(ValueError):
        make_block(0, bytes(BLOCK_SIZE + 1))


@pytest.mark.parametrize(("size", "gib"), [(1, 1), (1024**3, 1), (1024**3 + 1, 2), (10 * 1024**3 - 5, 10)])
def test_volume_size_rounds_up_to_whole_gib(size: int, gib: int) -> None:
    assert volume_size_gib(size) == gib


def _sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


def test_boot_mode_from_the_partition_table(tmp_path: Path) -> None:
    bios = _sparse(tmp_path / "bios.raw", 8 * MIB)
    with open(bios, "r+b") as fh:
        write_mbr(fh, [Partition(2048, 8192, bootable=True)], seed="s", boot_code=b"\xeb\x63" + b"\x90" * 438)
    efi = _sparse(tmp_path / "efi.raw", 8 * MIB)
    with open(efi, "r+b") as fh:
        write_gpt(fh, [Partition(2048, 8192, gpt_type=ESP_TYPE, name="EFI System")], seed="s")
    blank = _sparse(tmp_path / "blank.raw", 8 * MIB)

    assert aws_image.read_disk_boot(bios) == aws_image.DiskBoot(bios=True, uefi=False)
    assert aws_image.read_disk_boot(efi) == aws_image.DiskBoot(bios=False, uefi=True)
    assert aws_image.boot_mode(aws_image.read_disk_boot(bios), uefi=False, path=bios) == "legacy-bios"
    assert aws_image.boot_mode(aws_image.read_disk_boot(efi), uefi=False, path=efi) == "uefi"
    assert aws_image.boot_mode(aws_image.DiskBoot(True, True), uefi=False, path=efi) == "uefi-preferred"
    assert aws_image.boot_mode(aws_image.read_disk_boot(bios), uefi=True, path=bios) == "uefi"
    with pytest.raises(UserError, match="not a bootable raw disk image"):
        aws_image.boot_mode(aws_image.read_disk_boot(blank), uefi=False, path=blank)


def _ec2_model_errors(operation: str, params: dict[str, object]) -> str:
    """Validate a request against botocore's EC2 service model (the published API description)."""
    botocore_session = pytest.importorskip("botocore.session")
    validate = pytest.importorskip("botocore.validate")
    model = botocore_session.get_session().get_service_model("ec2").operation_model(operation)
    report = validate.ParamValidator().validate(params, model.input_shape)
    return str(report.generate_report())


def test_register_image_request() -> None:
    params = aws_image.register_image_params(
        name="linuxkit-test", snapshot_id="snap-0123", mode="uefi", arch="arm64", ena=True, sriov="simple", tpm=True
    )
    assert params["RootDeviceName"] == "/dev/xvda"
    assert params["BlockDeviceMappings"] == [
        {
            "DeviceName": "/dev/xvda",
            "Ebs": {"SnapshotId": "snap-0123", "DeleteOnTermination": True, "VolumeType": "gp3"},
        }
    ]
    assert (params["BootMode"], params["TpmSupport"], params["SriovNetSupport"], params["EnaSupport"]) == (
        "uefi",
        "v2.0",
        "simple",
        True,
    )
    assert params["Architecture"] == "arm64"
    assert _ec2_model_errors("RegisterImage", params) == ""

    plain = aws_image.register_image_params(
        name="abc", snapshot_id="snap-1", mode="legacy-bios", arch="x86_64", ena=False, sriov="", tpm=False
    )
    assert "TpmSupport" not in plain and "SriovNetSupport" not in plain and plain["EnaSupport"] is False
    with pytest.raises(UserError, match="--tpm needs UEFI"):
        aws_image.register_image_params(
            name="abc", snapshot_id="s", mode="legacy-bios", arch="x86_64", ena=False, sriov="", tpm=True
        )


def test_image_names_and_architectures() -> None:
    assert aws_image.check_image_name("linuxkit (1.0) [test]/a_b@c'd") == "linuxkit (1.0) [test]/a_b@c'd"
    for bad in ("ab", "x" * 129, "name:with:colons"):
        with pytest.raises(UserError, match="AMI name"):
            aws_image.check_image_name(bad)
    assert aws_image.architecture("aarch64") == "arm64"
    assert aws_image.architecture("amd64") == "x86_64"
    with pytest.raises(UserError, match="unknown architecture"):
        aws_image.architecture("mips")


def _parse(fill: object, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    fill(parser)  # type: ignore[operator]
    return parser.parse_args(argv)


def test_push_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LINUXKIT_UPLOAD_TIMEOUT", "AWS_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    args = _parse(push_flags, ["/images/linuxkit.raw", "--ena", "--uefi", "--sriov", "simple"])
    assert args.run == "cloud_aws_cmd:push"
    opts = push_options(args)
    assert (opts.name, opts.bucket, opts.timeout, opts.ena, opts.uefi, opts.tpm, opts.sriov) == (
        "linuxkit",
        "",
        600,
        True,
        True,
        False,
        "simple",
    )
    # the environment, unless a flag says otherwise (upstream's getStringValue/getIntValue)
    monkeypatch.setenv("LINUXKIT_UPLOAD_TIMEOUT", "1200")
    monkeypatch.setenv("AWS_BUCKET", "from-env")
    opts = push_options(_parse(push_flags, ["disk.raw", "--img-name", "named"]))
    assert (opts.name, opts.bucket, opts.timeout) == ("named", "from-env", 1200)
    opts = push_options(_parse(push_flags, ["disk.raw", "--bucket", "flag", "--timeout", "30"]))
    assert (opts.name, opts.bucket, opts.timeout) == ("disk", "flag", 30)
    monkeypatch.setenv("LINUXKIT_UPLOAD_TIMEOUT", "soon")
    with pytest.raises(UserError, match="LINUXKIT_UPLOAD_TIMEOUT"):
        push_options(_parse(push_flags, ["disk.raw"]))


def test_run_flags_environment_and_request(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_MACHINE", "AWS_DISK_SIZE", "AWS_DISK_TYPE", "AWS_ZONE"):
        monkeypatch.delenv(name, raising=False)
    args = _parse(run_flags, ["linuxkit", "--security-group", "sg-1", "--data", "hello"])
    assert args.run == "cloud_aws_cmd:run"
    opts = run_options(args)
    assert opts == RunOptions("linuxkit", "t2.micro", 0, "gp2", "a", "sg-1", "hello", "")
    monkeypatch.setenv("AWS_MACHINE", "m5.large")
    monkeypatch.setenv("AWS_ZONE", "c")
    monkeypatch.setenv("AWS_DISK_SIZE", "8")
    opts = run_options(_parse(run_flags, ["linuxkit", "--zone", "b", "--keyname", "me"]))
    assert (opts.machine, opts.zone, opts.disk_size, opts.keyname) == ("m5.large", "b", 8, "me")

    params = run_instances_params(opts, "ami-1", "eu-west-1b")
    assert params["Placement"] == {"AvailabilityZone": "eu-west-1b"}
    assert params["KeyName"] == "me" and "SecurityGroupIds" not in params
    assert _ec2_model_errors("RunInstances", params) == ""

    data = tmp_path / "data.json"
    data.write_text('{"a": 1}')
    assert user_data("", str(data)) == '{"a": 1}'
    with pytest.raises(UserError, match="both"):
        user_data("x", str(data))
    with pytest.raises(UserError, match="unable to read"):
        user_data("", str(tmp_path / "missing"))


def _cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "linuxkit.cli.main", *argv], capture_output=True, text=True, env=env, timeout=60
    )


def test_missing_credentials_name_where_boto3_looked(tmp_path: Path) -> None:
    pytest.importorskip("boto3")
    image = _sparse(tmp_path / "bios.raw", 4 * MIB)
    with open(image, "r+b") as fh:
        write_mbr(fh, [Partition(2048, 4096, bootable=True)], seed="s", boot_code=b"\xeb" * 440)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        HOME=str(tmp_path),
        AWS_REGION="us-east-1",
        AWS_CONFIG_FILE=str(tmp_path / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    done = _cli("push", "aws", str(image), env=env)
    assert done.returncode == 2, done.stderr
    assert "no AWS credentials found" in done.stderr
    for source in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "~/.aws/credentials", "AWS_SHARED_CREDENTIALS_FILE"):
        assert source in done.stderr
    assert "Traceback" not in done.stderr

    env.pop("AWS_REGION")
    done = _cli("run", "aws", "linuxkit", env=env)
    assert done.returncode == 2 and "no AWS region is set" in done.stderr and "AWS_REGION" in done.stderr


def test_help_works_and_the_cli_module_does_not_import_boto3() -> None:
    for verb in ("push", "run"):
        done = _cli(verb, "aws", "--help")
        assert done.returncode == 0, done.stderr
        assert "--img-name" in done.stdout if verb == "push" else "--security-group" in done.stdout
    probe = (
        "import sys, linuxkit.cli.cloud_aws_cmd\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 's3transfer')]\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "linuxkit.cli.main", "version"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert "cloud_aws" not in done.stderr and "linuxkit.cloud" not in done.stderr
