"""What an AMI is registered with (pure logic, no SDK): the boot mode a raw disk image implies (read from its
partition table) and the ``RegisterImage`` request.

``aws`` and ``raw-bios`` images are an MBR with boot code and an active partition (``legacy-bios``);
``raw-efi`` images are a GPT with an EFI system partition (``uefi``); a disk with both boots either way
(``uefi-preferred``).
"""

from __future__ import annotations

import struct
import uuid
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import UserError

SECTOR = 512
ESP_TYPE = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
#: the root device of the AMIs pushed by the EBS path (Nitro and Xen instances both accept it)
ROOT_DEVICE = "/dev/xvda"
#: ``--arch`` spellings → RegisterImage's ``Architecture``
ARCHITECTURES = {"x86_64": "x86_64", "amd64": "x86_64", "arm64": "arm64", "aarch64": "arm64"}


class DiskBoot(NamedTuple):
    """How a raw disk image can boot."""

    bios: bool
    uefi: bool


def read_disk_boot(path: Path) -> DiskBoot:
    """Look at ``path``'s MBR and GPT: BIOS boot code with an active partition, an EFI system partition."""
    with open(path, "rb") as fh:
        head = fh.read(2 * SECTOR)
        if len(head) < 2 * SECTOR or head[510:512] != b"\x55\xaa":
            return DiskBoot(bios=False, uefi=False)
        entries = [head[446 + 16 * i : 446 + 16 * (i + 1)] for i in range(4)]
        protective = any(e[4] == 0xEE for e in entries)
        bios = any(head[:440]) and any(e[0] == 0x80 and e[4] not in (0, 0xEE) for e in entries)
        uefi = False
        gpt = head[SECTOR : 2 * SECTOR]
        if protective and gpt[:8] == b"EFI PART":
            entries_lba, count, entry_size = struct.unpack_from("<QII", gpt, 72)
            if 128 <= entry_size <= 4096 and count <= 1024:
                fh.seek(entries_lba * SECTOR)
                table = fh.read(count * entry_size)
                for i in range(len(table) // entry_size):
                    type_guid = table[i * entry_size : i * entry_size + 16]
                    if uuid.UUID(bytes_le=type_guid) == ESP_TYPE:
                        uefi = True
                        break
    return DiskBoot(bios=bios, uefi=uefi)


def boot_mode(disk: DiskBoot, *, uefi: bool, path: Path) -> str:
    """RegisterImage's ``BootMode``: ``uefi`` with ``--uefi``, else what the disk can boot."""
    if uefi:
        return "uefi"
    if disk.uefi and disk.bios:
        return "uefi-preferred"
    if disk.uefi:
        return "uefi"
    if disk.bios:
        return "legacy-bios"
    raise UserError(
        f"{path} is not a bootable raw disk image: no MBR boot code with an active partition, no GPT with an EFI "
        "system partition",
        hint="push the raw disk of 'linuxkit build -f aws' (NAME.raw), -f raw-bios or -f raw-efi "
        "(qcow2, vhd and vmdk are not raw), or give --uefi if the image boots with UEFI",
    )


def architecture(arch: str) -> str:
    """RegisterImage's ``Architecture`` for ``--arch``."""
    try:
        return ARCHITECTURES[arch]
    except KeyError:
        raise UserError(f"--arch {arch}: unknown architecture", hint="use x86_64 or arm64") from None


def register_image_params(
    *,
    name: str,
    snapshot_id: str,
    mode: str,
    arch: str,
    ena: bool,
    sriov: str,
    tpm: bool,
) -> dict[str, Any]:
    """The ``RegisterImage`` request for an AMI whose root disk is ``snapshot_id``."""
    if tpm and mode != "uefi":
        raise UserError(
            f"--tpm needs UEFI boot, and this image boots with {mode}", hint="add --uefi, or push a raw-efi image"
        )
    params: dict[str, Any] = {
        "Name": name,
        "Description": f"LinuxKit: {name} image",
        "Architecture": arch,
        "RootDeviceName": ROOT_DEVICE,
        "BlockDeviceMappings": [
            {
                "DeviceName": ROOT_DEVICE,
                "Ebs": {"SnapshotId": snapshot_id, "DeleteOnTermination": True, "VolumeType": "gp3"},
            }
        ],
        "VirtualizationType": "hvm",
        "EnaSupport": ena,
        "BootMode": mode,
    }
    if sriov:
        params["SriovNetSupport"] = sriov
    if tpm:
        params["TpmSupport"] = "v2.0"
    return params


def check_image_name(name: str) -> str:
    """AMI names: 3 to 128 characters of letters, digits, ``()[] ./-'@_``."""
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789()[] ./-'@_")
    bad = sorted(set(name) - allowed)
    if not 3 <= len(name) <= 128 or bad:
        why = f"characters {''.join(bad)!r} are not allowed" if bad else "it must be 3 to 128 characters long"
        raise UserError(f"AMI name {name!r}: {why}", hint="choose another with --img-name")
    return name
