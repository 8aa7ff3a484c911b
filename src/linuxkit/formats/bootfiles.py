"""Boot-loader files found under ``FormatContext.boot_files`` (a Debian-layout tree), and which of
them an EFI output of each architecture uses."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from ..arch import normalize_arch
from ..errors import BuildError

#: name → (path inside the tree, Debian package that ships it). The BIOS loaders are x86 code (used
#: by amd64 builds only); systemd-boot-efi ships the x64 files on amd64 and the aa64 ones on arm64.
BOOT_FILES: dict[str, tuple[str, str]] = {
    "isolinux.bin": ("usr/lib/ISOLINUX/isolinux.bin", "isolinux"),
    "isohdpfx.bin": ("usr/lib/ISOLINUX/isohdpfx.bin", "isolinux"),
    "ldlinux.c32": ("usr/lib/syslinux/modules/bios/ldlinux.c32", "syslinux-common"),
    "mbr.bin": ("usr/lib/syslinux/mbr/mbr.bin", "syslinux-common"),
    "systemd-bootx64.efi": ("usr/lib/systemd/boot/efi/systemd-bootx64.efi", "systemd-boot-efi"),
    "linuxx64.efi.stub": ("usr/lib/systemd/boot/efi/linuxx64.efi.stub", "systemd-boot-efi"),
    "systemd-bootaa64.efi": ("usr/lib/systemd/boot/efi/systemd-bootaa64.efi", "systemd-boot-efi"),
    "linuxaa64.efi.stub": ("usr/lib/systemd/boot/efi/linuxaa64.efi.stub", "systemd-boot-efi"),
}


class EfiNames(NamedTuple):
    """What an EFI output of one architecture is made of."""

    #: the file name UEFI firmware boots from removable media (``EFI/BOOT/NAME`` of an ESP)
    boot: str
    #: the :data:`BOOT_FILES` name of systemd's EFI stub for that architecture (the UKI's base)
    stub: str


#: architecture (Go spelling) → its EFI names, as the UEFI specification names the removable-media loaders
EFI_NAMES: dict[str, EfiNames] = {
    "amd64": EfiNames("BOOTX64.EFI", "linuxx64.efi.stub"),
    "arm64": EfiNames("BOOTAA64.EFI", "linuxaa64.efi.stub"),
}


def efi_names(arch: str) -> EfiNames:
    """The EFI names for ``arch`` (either spelling); a :class:`BuildError` for an architecture without."""
    names = EFI_NAMES.get(normalize_arch(arch))
    if names is None:
        raise BuildError(
            f"no EFI boot files for architecture {arch}",
            hint="EFI formats build for: " + ", ".join(EFI_NAMES),
        )
    return names


def efi_boot_path(arch: str) -> str:
    """``EFI/BOOT/BOOTX64.EFI`` or ``EFI/BOOT/BOOTAA64.EFI``: where an ESP holds the image's UKI."""
    return f"EFI/BOOT/{efi_names(arch).boot}"


def boot_file(root: Path | None, name: str) -> Path:
    """The path of boot file ``name`` under ``root``, or a :class:`BuildError` naming file and package."""
    rel, package = BOOT_FILES[name]
    if root is None:
        raise BuildError(
            f"this format needs the boot loader file /{rel} but no boot-files tree was given",
            hint=f"provide a boot-files tree containing the Debian package {package}",
        )
    path = root / rel
    if not path.is_file():
        raise BuildError(
            f"boot loader file {path} is missing",
            hint=f"it comes from the Debian package {package} (apt-get install {package})",
        )
    return path
