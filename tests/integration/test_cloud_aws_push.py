"""``linuxkit push aws`` and ``linuxkit run aws`` against moto's server (the real boto3, on loopback).

moto implements the EBS direct APIs (StartSnapshot, PutSnapshotBlock, CompleteSnapshot, ListSnapshotBlocks,
GetSnapshotBlock), S3, and EC2 DescribeSnapshots / DeleteSnapshot / RegisterImage / DescribeImages /
RunInstances / GetConsoleOutput / volumes / TerminateInstances: the snapshot's blocks are read back and compared
with the image, the AMI is found by name with its boot mode, the instance with its type, zone and user data.
moto does not check CompleteSnapshot's checksum nor keep RegisterImage's block device mapping, ENA, TPM or
architecture: those requests are checked against botocore's EC2 service model in
tests/unit/test_cloud_aws_plan.py. moto lacks ImportSnapshot: ``--bucket`` uploads to moto's real S3 and the
ImportSnapshot / DescribeImportSnapshotTasks / RegisterImage calls go to botocore's Stubber, which validates
them against the service model.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ROOT
from tests.motoserver import moto_url

from linuxkit.errors import LinuxKitError
from linuxkit.formats.partition import Partition, write_mbr

pytestmark = [pytest.mark.integration]

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto.server")

MIB = 1024 * 1024
BLOCK = 512 * 1024
REGION = "eu-west-1"


@pytest.fixture(scope="module")
def moto() -> Iterator[dict[str, str]]:
    """moto's server on a free loopback port; the environment that points boto3 (and the CLI) at it."""
    with moto_url() as url:
        yield {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }


@pytest.fixture
def aws_env(moto: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in moto.items():
        monkeypatch.setenv(key, value)
    return {**os.environ}


def client(service: str) -> Any:
    return boto3.session.Session(region_name=REGION).client(service)


def lk(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "linuxkit.cli.main", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def bios_image(path: Path, size: int) -> Path:
    """A sparse BIOS-bootable raw disk: MBR with boot code, data in a few blocks, a partial last block."""
    with open(path, "wb") as fh:
        fh.truncate(size)
    with open(path, "r+b") as fh:
        write_mbr(fh, [Partition(2048, 4096, bootable=True)], seed="t", boot_code=b"\xeb\x63" + b"\x90" * 438)
        fh.seek(3 * MIB + 100)
        fh.write(os.urandom(BLOCK + 7))  # crosses into a third block
        fh.seek(size - 11)
        fh.write(b"last bytes!")
    return path


def expected_blocks(path: Path) -> dict[int, bytes]:
    """The image's non-zero 512 KiB blocks, the last padded (computed independently of the code under test)."""
    data = path.read_bytes()
    blocks = {}
    for index in range(0, -(-len(data) // BLOCK)):
        chunk = data[index * BLOCK : (index + 1) * BLOCK]
        if chunk.strip(b"\0"):
            blocks[index] = chunk.ljust(BLOCK, b"\0")
    return blocks


def read_snapshot(snapshot_id: str) -> dict[int, bytes]:
    ebs = client("ebs")
    listed = ebs.list_snapshot_blocks(SnapshotId=snapshot_id)
    blocks = {}
    for entry in listed["Blocks"]:
        got = ebs.get_snapshot_block(
            SnapshotId=snapshot_id, BlockIndex=entry["BlockIndex"], BlockToken=entry["BlockToken"]
        )
        data = got["BlockData"].read()
        assert hashlib.sha256(data).digest() == __import__("base64").b64decode(got["Checksum"])
        blocks[entry["BlockIndex"]] = data
    return blocks


def image_by_name(name: str) -> dict[str, Any]:
    images = client("ec2").describe_images(Filters=[{"Name": "name", "Values": [name]}])["Images"]
    assert len(images) == 1, images
    return dict(images[0])


def snapshots() -> dict[str, dict[str, Any]]:
    return {s["SnapshotId"]: s for s in client("ec2").describe_snapshots(OwnerIds=["self"])["Snapshots"]}


def pushed_snapshot(stderr: str) -> str:
    for word in stderr.split():
        if word.startswith("snap-"):
            return word
    raise AssertionError(stderr)


def test_push_writes_only_the_nonzero_blocks_and_registers_the_ami(aws_env: dict[str, str], tmp_path: Path) -> None:
    image = bios_image(tmp_path / "small.raw", 9 * MIB + 4096)
    done = lk("push", "aws", str(image), "--img-name", "linuxkit-small", "--ena", "-v", "2", env=aws_env)
    assert done.returncode == 0, done.stderr
    assert "Created AMI: ami-" in done.stderr
    snapshot_id = pushed_snapshot(done.stderr)

    wanted = expected_blocks(image)
    assert sorted(wanted) == [0, 6, 7, 18]
    assert read_snapshot(snapshot_id) == wanted
    snap = snapshots()[snapshot_id]
    assert snap["State"] == "completed"
    assert snap["VolumeSize"] == 1
    assert {"Key": "Name", "Value": "linuxkit-small"} in snap["Tags"]
    # moto keeps only RegisterImage's Name and Description (the rest: tests/unit/test_cloud_aws_plan.py)
    assert image_by_name("linuxkit-small")["Description"] == "LinuxKit: linuxkit-small image"


def test_push_a_real_minimal_aws_image(aws_env: dict[str, str], tmp_path: Path) -> None:
    """examples/minimal.yml built with ``-f aws`` (a 1 GiB sparse disk with a few MB of data)."""
    out = tmp_path / "out"
    debs = Path(os.environ.get("LINUXKIT_TEST_CACHE", Path.home() / ".cache" / "linuxkit-tests")) / "debian"
    env = {**aws_env, "LINUXKIT_CACHE": str(tmp_path / "cache"), "LINUXKIT_DEBIAN_CACHE": str(debs)}
    built = lk("build", "-f", "aws", "--dir", str(out), str(ROOT / "examples" / "minimal.yml"), env=env, timeout=900)
    assert built.returncode == 0, built.stderr[-3000:]
    image = out / "minimal.raw"
    start = time.monotonic()
    done = lk("push", "aws", str(image), "-v", "2", env=env)
    took = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    wanted = expected_blocks(image)
    assert read_snapshot(pushed_snapshot(done.stderr)) == wanted
    sent = len(wanted) * BLOCK
    print(
        f"minimal.raw: {image.stat().st_size / MIB:.0f} MiB, {len(wanted)} non-zero blocks "
        f"({sent / MIB:.1f} MiB) pushed in {took:.2f} s"
    )
    assert image_by_name("minimal")["Description"] == "LinuxKit: minimal image"


def hooked_ebs(fail: Any) -> Any:
    """An EBS client whose PutSnapshotBlock requests go through ``fail(request)``: it returns an HTTP response
    to answer instead of moto (an injected failure), or None to let the request through."""
    ebs = client("ebs")
    ebs.meta.events.register("before-send.ebs.PutSnapshotBlock", fail)
    return ebs


def error_response(status: int, code: str, *, xml: bool = False) -> Any:
    """An error answer as the service would send it: JSON with ``x-amzn-ErrorType`` (EBS), or EC2's XML."""
    from botocore.awsrequest import AWSResponse

    body = (
        f"<Response><Errors><Error><Code>{code}</Code><Message>refused by the test</Message></Error></Errors>"
        "<RequestID>test</RequestID></Response>".encode()
        if xml
        else b""
    )

    class Raw:
        def stream(self, **_: Any) -> Iterator[bytes]:
            yield body

    headers = {"Content-Type": "text/xml"} if xml else {"x-amzn-ErrorType": code, "Content-Type": "application/json"}
    return AWSResponse("", status, headers, Raw())


def test_a_block_failing_for_good_deletes_the_snapshot(aws_env: dict[str, str], tmp_path: Path) -> None:
    from linuxkit.cloud.ebs_upload import Deadline, upload_snapshot

    image = bios_image(tmp_path / "fail.raw", 12 * MIB)
    started: list[str] = []

    def fail(request: Any, **_: Any) -> Any:
        started.append(request.url.split("/snapshots/")[1].split("/")[0])
        return error_response(400, "ValidationException") if request.url.endswith("/blocks/7") else None

    before = set(snapshots())
    with pytest.raises(LinuxKitError, match="ValidationException"):
        upload_snapshot(
            hooked_ebs(fail),
            client("ec2"),
            image,
            description="failing",
            tags={"Name": "failing"},
            deadline=Deadline(60),
        )
    assert started and started[0] not in snapshots()
    assert set(snapshots()) == before


def test_throttled_blocks_are_retried(aws_env: dict[str, str], tmp_path: Path) -> None:
    from linuxkit.cloud.aws import Aws
    from linuxkit.cloud.ebs_upload import Deadline, upload_snapshot

    image = bios_image(tmp_path / "throttled.raw", 8 * MIB)
    answered: list[str] = []

    def throttle(request: Any, **_: Any) -> Any:
        answered.append(request.url)
        if len(answered) <= 2:
            return error_response(400, "ThrottlingException")
        return None

    ebs = Aws("push aws").client("ebs")  # the CLI's retry policy
    ebs.meta.events.register("before-send.ebs.PutSnapshotBlock", throttle)
    snapshot_id = upload_snapshot(
        ebs, client("ec2"), image, description="throttled", tags={}, deadline=Deadline(60), workers=1
    )
    assert len(answered) == len(expected_blocks(image)) + 2
    assert read_snapshot(snapshot_id) == expected_blocks(image)


def test_bucket_path_uploads_to_s3_and_imports(aws_env: dict[str, str], tmp_path: Path) -> None:
    from botocore.stub import Stubber

    from linuxkit.cloud import aws
    from linuxkit.cloud.ebs_upload import Deadline

    image = bios_image(tmp_path / "bucket.raw", 4 * MIB)
    s3 = client("s3")
    s3.create_bucket(Bucket="lk-images", CreateBucketConfiguration={"LocationConstraint": REGION})
    opts = aws.PushOptions(
        path=image,
        name="from-s3",
        bucket="lk-images",
        timeout=60,
        ena=True,
        sriov="",
        uefi=False,
        tpm=False,
        arch="x86_64",
    )
    ec2 = client("ec2")
    disk = {
        "Description": "LinuxKit: from-s3 disk",
        "Format": "raw",
        "UserBucket": {"S3Bucket": "lk-images", "S3Key": "from-s3.raw"},
    }
    with Stubber(ec2) as stub:
        stub.add_response(
            "import_snapshot",
            {"ImportTaskId": "import-snap-1"},
            {"Description": "LinuxKit: from-s3", "DiskContainer": disk},
        )
        stub.add_response(
            "describe_import_snapshot_tasks",
            {
                "ImportSnapshotTasks": [
                    {"ImportTaskId": "import-snap-1", "SnapshotTaskDetail": {"Status": "active", "Progress": "50"}}
                ]
            },
            {"ImportTaskIds": ["import-snap-1"]},
        )
        stub.add_response(
            "describe_import_snapshot_tasks",
            {
                "ImportSnapshotTasks": [
                    {
                        "ImportTaskId": "import-snap-1",
                        "SnapshotTaskDetail": {"Status": "completed", "SnapshotId": "snap-imported"},
                    }
                ]
            },
            {"ImportTaskIds": ["import-snap-1"]},
        )
        snapshot_id = aws._import_via_s3(s3, ec2, opts, Deadline(60), lambda n: None)
        assert snapshot_id == "snap-imported"
        stub.add_response(
            "register_image",
            {"ImageId": "ami-imported"},
            aws.aws_image.register_image_params(
                name="from-s3",
                snapshot_id="snap-imported",
                mode="legacy-bios",
                arch="x86_64",
                ena=True,
                sriov="",
                tpm=False,
            ),
        )
        assert aws.register(ec2, opts, snapshot_id, mode="legacy-bios", arch="x86_64") == "ami-imported"
        stub.assert_no_pending_responses()
    assert s3.get_object(Bucket="lk-images", Key="from-s3.raw")["Body"].read() == image.read_bytes()

    # a failed import deletes the uploaded object
    with Stubber(ec2) as stub:
        stub.add_client_error("import_snapshot", "InvalidParameter", "vmimport role missing")
        with pytest.raises(LinuxKitError, match="vmimport role missing"):
            aws._import_via_s3(s3, ec2, opts, Deadline(60), lambda n: None)
    assert "Contents" not in s3.list_objects_v2(Bucket="lk-images")


def test_run_starts_the_instance_prints_the_console_and_cleans_up(aws_env: dict[str, str], tmp_path: Path) -> None:
    image = bios_image(tmp_path / "runme.raw", 8 * MIB)
    pushed = lk("push", "aws", str(image), "--img-name", "linuxkit-run", env=aws_env)
    assert pushed.returncode == 0, pushed.stderr
    ami = image_by_name("linuxkit-run")["ImageId"]
    ec2 = client("ec2")
    group = ec2.create_security_group(GroupName="lk", Description="lk")["GroupId"]
    known = {i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "linuxkit.cli.main",
            "run",
            "aws",
            "linuxkit-run",
            "--machine",
            "t3.small",
            "--zone",
            "b",
            "--security-group",
            group,
            "--data",
            "user-data-marker",
            "--disk-size",
            "2",
            "-v",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=aws_env,
    )
    try:
        instance = None
        for _ in range(100):
            found = [
                i
                for r in ec2.describe_instances()["Reservations"]
                for i in r["Instances"]
                if i["InstanceId"] not in known
            ]
            attached = found and found[0].get("BlockDeviceMappings", [])
            if (
                found
                and found[0]["State"]["Name"] == "running"
                and any(m["DeviceName"] == "/dev/sda2" for m in attached or [])
            ):
                instance = found[0]
                break
            time.sleep(0.2)
        assert instance is not None, proc.stderr.read() if proc.poll() is not None else "no instance"
        assert instance["ImageId"] == ami
        assert instance["InstanceType"] == "t3.small"
        assert instance["Placement"]["AvailabilityZone"] == f"{REGION}b"
        assert [g["GroupId"] for g in instance["SecurityGroups"]] == [group]
        data = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")
        assert __import__("base64").b64decode(data["UserData"]["Value"]) == b"user-data-marker"
        volume = next(m for m in instance["BlockDeviceMappings"] if m["DeviceName"] == "/dev/sda2")["Ebs"]["VolumeId"]
        ec2.stop_instances(InstanceIds=[instance["InstanceId"]])
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    console = ec2.get_console_output(InstanceId=instance["InstanceId"])["Output"]
    assert console and console.strip() in out
    state = ec2.describe_instances(InstanceIds=[instance["InstanceId"]])["Reservations"][0]["Instances"][0]["State"]
    assert state["Name"] == "terminated"
    assert volume not in {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]}
    assert f"Terminating instance {instance['InstanceId']}" in err


def test_run_names_a_missing_image(aws_env: dict[str, str]) -> None:
    done = lk("run", "aws", "no-such-image", env=aws_env)
    assert done.returncode == 2
    assert "unable to find image with name no-such-image" in done.stderr


def test_a_refused_registration_deletes_the_snapshot(aws_env: dict[str, str], tmp_path: Path) -> None:
    from linuxkit.cloud import aws
    from linuxkit.cloud.ebs_upload import Deadline, upload_snapshot

    image = bios_image(tmp_path / "refused.raw", 8 * MIB)
    ec2 = client("ec2")
    snapshot_id = upload_snapshot(client("ebs"), ec2, image, description="r", tags={}, deadline=Deadline(60))
    assert snapshot_id in snapshots()
    ec2.meta.events.register(
        "before-send.ec2.RegisterImage", lambda request, **_: error_response(400, "InvalidParameterValue", xml=True)
    )
    opts = aws.PushOptions(
        path=image, name="refused", bucket="", timeout=60, ena=False, sriov="", uefi=False, tpm=False, arch="x86_64"
    )
    with pytest.raises(
        LinuxKitError, match="registering the image refused: InvalidParameterValue: refused by the test"
    ):
        aws.register(ec2, opts, snapshot_id, mode="legacy-bios", arch="x86_64")
    assert snapshot_id not in snapshots()


def test_sigterm_during_the_upload_deletes_the_snapshot(aws_env: dict[str, str], tmp_path: Path) -> None:
    image = bios_image(tmp_path / "dense.raw", 320 * MIB)
    with open(image, "r+b") as fh:  # mostly data: the upload takes a few seconds
        fh.seek(4 * MIB)
        for _ in range(300):
            fh.write(os.urandom(MIB))
    before = set(snapshots())
    proc = subprocess.Popen(
        [sys.executable, "-m", "linuxkit.cli.main", "push", "aws", str(image), "-v", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=aws_env,
    )
    try:
        started: set[str] = set()
        for _ in range(400):
            started = set(snapshots()) - before
            if started or proc.poll() is not None:
                break
            time.sleep(0.02)
        assert len(started) == 1 and proc.poll() is None, "the push ended before it could be interrupted"
        time.sleep(0.3)  # some blocks are on their way
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    (snapshot_id,) = started
    assert f"deleted snapshot {snapshot_id}" in err
    assert set(snapshots()) == before
