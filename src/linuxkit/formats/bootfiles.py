"""Boot-loader files found under ``FormatContext.boot_files`` (a Debian-layout tree)."""

from __future__ import annotations

from pathlib import Path

from ..errors import BuildError

#: name → (path inside the tree, Debian package that ships it)
BOOT_FILES: dict[str, tuple[str, str]] = {
    "isolinux.bin": ("usr/lib/ISOLINUX/isolinux.bin", "isolinux"),
    "isohdpfx.bin": ("usr/lib/ISOLINUX/isohdpfx.bin", "isolinux"),
    "ldlinux.c32": ("usr/lib/syslinux/modules/bios/ldlinux.c32", "syslinux-common"),
    "mbr.bin": ("usr/lib/SYSLINUX/mbr.bin", "syslinux"),
    "systemd-bootx64.efi": ("usr/lib/systemd/boot/efi/systemd-bootx64.efi", "systemd-boot-efi"),
    "linuxx64.efi.stub": ("usr/lib/systemd/boot/efi/linuxx64.efi.stub", "systemd-boot-efi"),
}


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
