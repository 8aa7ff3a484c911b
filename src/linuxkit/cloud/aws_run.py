"""``linuxkit run aws NAME``: an EC2 instance from a pushed AMI, as upstream: find the AMI by name,
``RunInstances`` (type, zone, security group, user data), wait until running, attach an extra EBS volume with
``--disk-size``, wait until the instance stops (AWS shows the serial console only then), print its console
output, terminate it. Unlike upstream, the extra volume is deleted after the instance, and the instance (and
volume) are also cleaned up when the wait is interrupted (Ctrl-C, SIGTERM) or fails.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .. import log
from ..errors import LinuxKitError, UserError
from .aws import Aws, sdk_errors
from .ebs_upload import client_error_text
from .polling import poll_delays

#: the device upstream attaches ``--disk-size``'s volume as
DATA_DEVICE = "/dev/sda2"


@dataclass(frozen=True)
class RunOptions:
    name: str
    machine: str
    disk_size: int
    disk_type: str
    zone: str
    security_group: str
    data: str
    keyname: str = ""


def find_image(ec2: Any, name: str) -> str:
    """The id of the AMI called ``name`` (an ``ami-`` id is taken as it is)."""
    if name.startswith("ami-"):
        return name
    images = ec2.describe_images(Filters=[{"Name": "name", "Values": [name]}]).get("Images", [])
    if not images:
        raise UserError(f"unable to find image with name {name}", hint="push it first: linuxkit push aws IMAGE.raw")
    if len(images) > 1:
        log.warn("found multiple images with the same name, using the first one")
    return str(images[0]["ImageId"])


def run_instances_params(opts: RunOptions, image_id: str, zone: str) -> dict[str, Any]:
    """The ``RunInstances`` request (boto3 base64-encodes ``UserData`` itself)."""
    params: dict[str, Any] = {
        "ImageId": image_id,
        "InstanceType": opts.machine,
        "MinCount": 1,
        "MaxCount": 1,
        "Placement": {"AvailabilityZone": zone},
        "UserData": opts.data,
    }
    if opts.security_group:
        params["SecurityGroupIds"] = [opts.security_group]
    if opts.keyname:
        params["KeyName"] = opts.keyname
    return params


def wait_state(describe: Any, what: str, wanted: str, failed: tuple[str, ...] = ()) -> None:
    """Poll ``describe()`` (returns the state name) until it is ``wanted``."""
    for delay in poll_delays(1.0, 15.0):
        state = describe()
        if state == wanted:
            return
        if state in failed:
            raise LinuxKitError(f"{what} is {state}, not {wanted}")
        log.debug(f"{what}: {state}")
        time.sleep(delay)


def _instance_state(ec2: Any, instance_id: str) -> str:
    reservations = ec2.describe_instances(InstanceIds=[instance_id]).get("Reservations", [])
    for reservation in reservations:
        for instance in reservation.get("Instances", []):
            return str(instance["State"]["Name"])
    return ""


def _volume_state(ec2: Any, volume_id: str) -> str:
    volumes = ec2.describe_volumes(VolumeIds=[volume_id]).get("Volumes", [])
    return str(volumes[0]["State"]) if volumes else ""


def run(opts: RunOptions, *, out: Any) -> int:
    """Run the instance until it stops; its console output goes to ``out``."""
    with sdk_errors("run aws"):
        return _run(opts, out)


def _run(opts: RunOptions, out: Any) -> int:
    aws = Aws("run aws")
    ec2 = aws.client("ec2")
    zone = aws.region + opts.zone
    image_id = find_image(ec2, opts.name)
    try:
        instance_id: str = ec2.run_instances(**run_instances_params(opts, image_id, zone))["Instances"][0]["InstanceId"]
    except Exception as exc:  # botocore's errors (the SDK is not imported here)
        raise LinuxKitError(f"unable to run instance: {client_error_text(exc)}") from exc
    log.info(f"Created instance {instance_id}")
    volume_id = ""
    try:
        wait_state(lambda: _instance_state(ec2, instance_id), f"instance {instance_id}", "running", ("terminated",))
        log.info(f"Instance {instance_id} is running")
        if opts.disk_size > 0:
            volume_id = ec2.create_volume(AvailabilityZone=zone, Size=opts.disk_size, VolumeType=opts.disk_type)[
                "VolumeId"
            ]
            log.info(f"Waiting for volume {volume_id} to be available")
            wait_state(lambda: _volume_state(ec2, volume_id), f"volume {volume_id}", "available", ("error",))
            log.info(f"Attaching volume {volume_id} to instance {instance_id}")
            ec2.attach_volume(Device=DATA_DEVICE, InstanceId=instance_id, VolumeId=volume_id)
        log.warn(
            "AWS doesn't stream serial console output: the console output is shown when the instance has "
            "stopped (power off in the guest, or stop it in the AWS console)"
        )
        log.info("Waiting for instance to stop...")
        wait_state(lambda: _instance_state(ec2, instance_id), f"instance {instance_id}", "stopped", ("terminated",))
        output = ec2.get_console_output(InstanceId=instance_id).get("Output")
        if output:
            out.write(output if output.endswith("\n") else output + "\n")
            out.flush()
        else:
            log.warn("No Console Output found")
    except Exception as exc:
        _clean_up(ec2, instance_id, volume_id)
        if isinstance(exc, LinuxKitError):
            raise
        raise LinuxKitError(f"instance {instance_id}: {client_error_text(exc)}") from exc
    except BaseException:
        _clean_up(ec2, instance_id, volume_id)
        raise
    _clean_up(ec2, instance_id, volume_id)
    return 0


def _clean_up(ec2: Any, instance_id: str, volume_id: str) -> None:
    """Terminate the instance and wait for it; delete the extra volume (say what is left if that fails)."""
    log.info(f"Terminating instance {instance_id}")
    try:
        ec2.terminate_instances(InstanceIds=[instance_id])
        wait_state(lambda: _instance_state(ec2, instance_id), f"instance {instance_id}", "terminated")
    except Exception as exc:
        log.warn(f"instance {instance_id} may still run: terminating it failed ({client_error_text(exc)})")
        return
    if volume_id:
        try:
            wait_state(lambda: _volume_state(ec2, volume_id), f"volume {volume_id}", "available", ("error",))
            ec2.delete_volume(VolumeId=volume_id)
            log.info(f"Deleted volume {volume_id}")
        except Exception as exc:
            log.warn(f"volume {volume_id} is left behind: deleting it failed ({client_error_text(exc)})")
