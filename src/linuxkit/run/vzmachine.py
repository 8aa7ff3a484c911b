"""The last step of ``run virtualization``: the plan's data tree (:mod:`linuxkit.run.virtualization`) turned into
Virtualization framework objects through PyObjC (the optional ``virtualization`` extra), validated, started,
and run until the guest stops. Imported only when that step runs; kept thin: every decision is in the tree.

Apple's API names, in the order upstream's ``runVirtualizationFramework`` uses them: ``VZLinuxBootLoader``
(kernel URL, initial ramdisk URL, command line) or ``VZEFIBootLoader`` + ``VZEFIVariableStore``,
``VZVirtualMachineConfiguration`` (CPU count, memory size), ``VZFileHandleSerialPortAttachment`` on a
``VZVirtioConsoleDeviceSerialPortConfiguration``, ``VZNATNetworkDeviceAttachment`` on a
``VZVirtioNetworkDeviceConfiguration`` with a ``VZMACAddress``, ``VZVirtioEntropyDeviceConfiguration``,
``VZDiskImageStorageDeviceAttachment`` on ``VZVirtioBlockDeviceConfiguration`` (or
``VZUSBMassStorageDeviceConfiguration``), ``VZVirtioTraditionalMemoryBalloonDeviceConfiguration``,
``VZVirtioSocketDeviceConfiguration``, ``VZVirtioFileSystemDeviceConfiguration`` with a
``VZSingleDirectoryShare`` of a ``VZSharedDirectory``; then ``VZVirtualMachine``."""

from __future__ import annotations

import os
import platform
import sys
import termios
import time
from typing import Any

from .. import log
from ..cloud.extras import require
from ..errors import BuildError, UserError
from .plan import Data

VERB = "run virtualization"
#: seconds the guest gets to power off after a stop request (Ctrl-C, SIGTERM) before we give up on it
STOP_GRACE = 10.0


def macos_version() -> tuple[int, ...]:
    text = platform.mac_ver()[0]
    return tuple(int(p) for p in text.split(".") if p.isdigit()) if text else ()


def check_host(minimum: int) -> None:
    """macOS ``minimum`` or later (11: the framework; 12: virtiofs; 13: EFI, USB mass storage)."""
    if sys.platform != "darwin":
        raise UserError(
            f"run virtualization needs macOS 11+ (Apple's Virtualization framework); this is {sys.platform}",
            hint="on Linux use `linuxkit run qemu`",
        )
    version = macos_version()
    if version and version[0] < minimum:
        raise UserError(
            f"this run needs macOS {minimum} or later (found {'.'.join(map(str, version))})",
            hint="virtiofs shares need macOS 12, --uefi needs macOS 13",
        )


def _ok(result: Any, what: str) -> Any:
    """PyObjC returns ``(object, error)`` for the ``...error:`` initialisers."""
    obj, error = result
    if obj is None or error is not None:
        raise BuildError(f"{what}: {error.localizedDescription() if error is not None else 'failed'}")
    return obj


def _url(foundation: Any, path: Data) -> Any:
    assert isinstance(path, str)
    return foundation.NSURL.fileURLWithPath_(path)


def _boot_loader(vz: Any, fd: Any, loader: dict[str, Any]) -> Any:
    if loader["type"] == "linux":
        boot = vz.VZLinuxBootLoader.alloc().initWithKernelURL_(_url(fd, loader["kernel"]))
        boot.setInitialRamdiskURL_(_url(fd, loader["initrd"]))
        boot.setCommandLine_(loader["command_line"])
        return boot
    url = _url(fd, loader["variable_store"])
    if loader["create_variable_store"]:
        store = _ok(
            vz.VZEFIVariableStore.alloc().initCreatingVariableStoreAtURL_options_error_(url, 0, None), "EFI store"
        )
    else:
        store = vz.VZEFIVariableStore.alloc().initWithURL_(url)
    boot = vz.VZEFIBootLoader.alloc().init()
    boot.setVariableStore_(store)
    return boot


def _storage(vz: Any, fd: Any, device: dict[str, Any]) -> Any:
    attachment = _ok(
        vz.VZDiskImageStorageDeviceAttachment.alloc().initWithURL_readOnly_error_(
            _url(fd, device["path"]), bool(device["read_only"]), None
        ),
        f"disk image {device['path']}",
    )
    kind = (
        vz.VZUSBMassStorageDeviceConfiguration
        if device["type"] == "usb-mass-storage"
        else vz.VZVirtioBlockDeviceConfiguration
    )
    return kind.alloc().initWithAttachment_(attachment)


def configuration(vz: Any, fd: Any, tree: dict[str, Any]) -> Any:
    """The ``VZVirtualMachineConfiguration`` of the plan's tree."""
    config = vz.VZVirtualMachineConfiguration.alloc().init()
    config.setBootLoader_(_boot_loader(vz, fd, tree["boot_loader"]))
    if tree["platform"] == "generic":
        config.setPlatform_(vz.VZGenericPlatformConfiguration.alloc().init())
    config.setCPUCount_(tree["cpu_count"])
    config.setMemorySize_(tree["memory_size"])
    serial = []
    for _port in tree["serial_ports"]:  # the console: our stdin and stdout
        attachment = vz.VZFileHandleSerialPortAttachment.alloc().initWithFileHandleForReading_fileHandleForWriting_(
            fd.NSFileHandle.fileHandleWithStandardInput(), fd.NSFileHandle.fileHandleWithStandardOutput()
        )
        port = vz.VZVirtioConsoleDeviceSerialPortConfiguration.alloc().init()
        port.setAttachment_(attachment)
        serial.append(port)
    config.setSerialPorts_(serial)
    network = []
    for nic in tree["network_devices"]:
        device = vz.VZVirtioNetworkDeviceConfiguration.alloc().init()
        device.setAttachment_(vz.VZNATNetworkDeviceAttachment.alloc().init())
        device.setMACAddress_(vz.VZMACAddress.alloc().initWithString_(nic["mac_address"]))
        network.append(device)
    config.setNetworkDevices_(network)
    config.setEntropyDevices_([vz.VZVirtioEntropyDeviceConfiguration.alloc().init() for _ in tree["entropy_devices"]])
    config.setStorageDevices_([_storage(vz, fd, d) for d in tree["storage_devices"]])
    config.setMemoryBalloonDevices_(
        [vz.VZVirtioTraditionalMemoryBalloonDeviceConfiguration.alloc().init() for _ in tree["memory_balloon_devices"]]
    )
    config.setSocketDevices_([vz.VZVirtioSocketDeviceConfiguration.alloc().init() for _ in tree["socket_devices"]])
    shares = []
    for share in tree["directory_sharing_devices"]:
        device = vz.VZVirtioFileSystemDeviceConfiguration.alloc().initWithTag_(share["tag"])
        directory = vz.VZSharedDirectory.alloc().initWithURL_readOnly_(
            _url(fd, share["path"]), bool(share["read_only"])
        )
        device.setShare_(vz.VZSingleDirectoryShare.alloc().initWithDirectory_(directory))
        shares.append(device)
    if shares:
        config.setDirectorySharingDevices_(shares)
    _ok(config.validateWithError_(None), "the virtual machine configuration is not valid")
    return config


def _raw_stdin() -> list[Any] | None:
    """Our terminal in the mode Apple's guide gives for a console on stdin (no echo, no line editing, no CR→NL);
    the old settings, to restore."""
    if not os.isatty(0):
        return None
    old = termios.tcgetattr(0)
    new = termios.tcgetattr(0)
    new[0] &= ~termios.ICRNL
    new[3] &= ~(termios.ICANON | termios.ECHO)
    new[6][termios.VMIN] = 1
    new[6][termios.VTIME] = 0
    termios.tcsetattr(0, termios.TCSANOW, new)
    return old


def start_vm(data: Data) -> None:
    """Plan step: build, start and run the VM until the guest stops (Ctrl-C or SIGTERM asks it to stop)."""
    assert isinstance(data, dict)
    tree: dict[str, Any] = dict(data)
    check_host(int(tree["minimum_macos"]))
    vz = require("virtualization", "Virtualization", verb=VERB)
    fd = require("virtualization", "Foundation", verb=VERB)
    config = configuration(vz, fd, tree)
    vm = vz.VZVirtualMachine.alloc().initWithConfiguration_(config)
    failure: list[str] = []

    def started(error: Any) -> None:
        if error is not None:
            failure.append(str(error.localizedDescription()))

    saved = _raw_stdin()
    try:
        vm.startWithCompletionHandler_(started)
        stop_by: float | None = None
        while True:
            try:
                fd.NSRunLoop.currentRunLoop().runUntilDate_(fd.NSDate.dateWithTimeIntervalSinceNow_(0.2))
                if failure:
                    raise BuildError(f"the virtual machine did not start: {failure[0]}")
                state = vm.state()
                if state == vz.VZVirtualMachineStateStopped:
                    log.info("the virtual machine stopped")
                    return
                if state == vz.VZVirtualMachineStateError:
                    raise BuildError("the virtual machine stopped with an error")
                if stop_by is not None and time.monotonic() > stop_by:
                    raise KeyboardInterrupt
            except KeyboardInterrupt:
                if stop_by is not None or not vm.canRequestStop():
                    raise
                log.info("asking the guest to stop")
                vm.requestStopWithError_(None)
                stop_by = time.monotonic() + STOP_GRACE
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSANOW, saved)
