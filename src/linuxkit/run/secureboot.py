"""``run qemu --uefi --secure-boot``: UEFI firmware that enforces Secure Boot, and the VM's variable store.

x86_64 boots Debian's ``OVMF_CODE_4M.secboot.fd`` (built with SMM: qemu's q35 gets ``smm=on`` and its
flash is secure, so the guest cannot write the variables behind the firmware's back); aarch64 boots
``AAVMF_CODE.fd`` (Debian builds it with Secure Boot; ``AAVMF_CODE.ms.fd`` is the same file). The
variable store is the VM's own, in the state directory:

- with ``--secure-boot-cert CERT``: CERT enrolled as PK, KEK and db and Secure Boot on, made by
  ``virt-fw-vars`` (PyPI's ``virt-firmware``, the ``secureboot`` extra; run as its own program: it is
  GPL-2.0) from the empty store ``OVMF_VARS_4M.fd`` on x86_64, and on aarch64 from Microsoft's
  ``AAVMF_VARS.ms.fd`` with its PK, KEK and db deleted first (Debian's ``AAVMF_VARS.fd`` is all zeros,
  which the firmware formats on first boot but virt-fw-vars cannot read). Named after the
  certificate's digest, so another certificate gets another store and the firmware's boot entries
  survive reboots;
- without: Debian's store with Microsoft's keys enrolled (``OVMF_VARS_4M.ms.fd``/``AAVMF_VARS.ms.fd``),
  what most PCs ship: images signed by a Microsoft-signed shim boot, ours do not.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import NamedTuple

from ..errors import UserError
from ..runner import run

#: the owner GUID of the keys we enroll (any fixed GUID: edk2 records it, nothing checks it)
OWNER_GUID = str(uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/linuxkit/linuxkit#secure-boot"))
#: the program making variable stores: virt-firmware's ``virt-fw-vars``, run by this Python
VARS_MODULE = "virt.firmware.vars"
EXTRA_HINT = "install it with: pip install 'linuxkit[secureboot]' (PyPI's virt-firmware)"


class SecureFirmware(NamedTuple):
    """One architecture's Secure Boot firmware: the code, the empty variable store, the Microsoft one."""

    code: str
    empty_vars: str
    ms_vars: str
    package: str
    #: the store a certificate is enrolled into when it is not ``empty_vars`` (``AAVMF_VARS.fd`` is zeros)
    enroll_base: str = ""

    @property
    def enroll_template(self) -> str:
        return self.enroll_base or self.empty_vars


FIRMWARE: dict[str, SecureFirmware] = {
    "x86_64": SecureFirmware(
        "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.ms.fd",
        "ovmf",
    ),
    "aarch64": SecureFirmware(
        "/usr/share/AAVMF/AAVMF_CODE.fd",
        "/usr/share/AAVMF/AAVMF_VARS.fd",
        "/usr/share/AAVMF/AAVMF_VARS.ms.fd",
        "qemu-efi-aarch64",
        enroll_base="/usr/share/AAVMF/AAVMF_VARS.ms.fd",
    ),
}

#: boots whose first code the firmware verifies: a UKI (``-kernel X.efi``), an EFI disk, an EFI ISO
VERIFIED_KINDS = ("uki", "disk", "iso")


def check_boot(kind: str, uefi: bool) -> None:
    """``--secure-boot`` boots an EFI output; the direct kernel boots are not verified by the firmware."""
    if kind not in VERIFIED_KINDS or not uefi:
        raise UserError(
            f"--secure-boot boots EFI outputs, not a {kind} boot",
            hint="boot a UKI (X.efi), an EFI disk (X-efi.img, X-efi.qcow2) or an EFI ISO (X-efi.iso) with --uefi",
        )


def firmware_for(arch: str, fw: str) -> SecureFirmware:
    """The Secure Boot firmware of ``arch`` (``--fw`` replaces its code); its files checked."""
    known = FIRMWARE.get(arch)
    if known is None:
        raise UserError(f"--secure-boot is not available on {arch}", hint="use x86_64 or aarch64")
    chosen = known._replace(code=fw) if fw else known
    for path in (chosen.code, chosen.empty_vars, chosen.ms_vars):
        if not os.path.isfile(path):
            raise UserError(
                f"Secure Boot firmware {path} does not exist", hint=f"install it with: apt-get install {chosen.package}"
            )
    return chosen


def _cert_digest(cert: str) -> str:
    try:
        data = Path(cert).read_bytes()
    except OSError as exc:
        raise UserError(f"--secure-boot-cert {cert}: {exc.strerror or exc}") from exc
    return hashlib.sha256(data).hexdigest()[:16]


def enroll_argv(template: str, cert: str, output: str, python: str = sys.executable) -> list[str]:
    """``virt-fw-vars``: ``template`` with ``cert`` as PK, KEK and db (those it had deleted, e.g. Microsoft's)
    and Secure Boot on, into ``output``."""
    argv = [python, "-m", VARS_MODULE, "--input", template, "--output", output]
    argv += ["--delete", "PK", "--delete", "KEK", "--delete", "db"]
    argv += ["--set-pk", OWNER_GUID, cert, "--add-kek", OWNER_GUID, cert, "--add-db", OWNER_GUID, cert]
    return [*argv, "--secure-boot"]


def vars_store(firmware: SecureFirmware, cert: str, state: Path) -> str:
    """The VM's variable store in ``state``: with ``cert`` enrolled (made once per certificate), or a copy
    of the Microsoft store; kept across runs like the VM's other firmware state."""
    if not cert:
        copy = state / ("fw-" + os.path.basename(firmware.ms_vars))
        if not copy.exists():
            shutil.copyfile(firmware.ms_vars, copy)
        return str(copy)
    store = state / f"fw-secureboot-{_cert_digest(cert)}-{os.path.basename(firmware.empty_vars)}"
    if store.exists():
        return str(store)
    if importlib.util.find_spec("virt") is None or importlib.util.find_spec(VARS_MODULE) is None:
        raise UserError("--secure-boot-cert enrolls the certificate with virt-firmware, which is not installed",
                        hint=EXTRA_HINT)  # fmt: skip
    partial = state / f".{store.name}.partial"
    done = run(enroll_argv(firmware.enroll_template, cert, str(partial)), check=False, capture=True)
    if done.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        errors = [ln for ln in done.stderr.decode(errors="replace").splitlines() if ln.strip()]
        raise UserError(
            f"cannot enroll --secure-boot-cert {cert}: {errors[-1] if errors else 'virt-fw-vars failed'}",
            hint="give the X.509 certificate (PEM or DER) the image is signed with (build --sign-cert)",
        )
    os.replace(partial, store)
    return str(store)
