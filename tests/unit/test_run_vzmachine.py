"""``run virtualization``'s last step, the plan's data tree turned into Virtualization framework objects: PyObjC
cannot run here, so a recording stand-in for the ``Virtualization`` and ``Foundation`` modules checks the
executor's wiring only (which Apple selector gets which value from the tree, in which order; how the run loop ends:
the guest stopping, a start error, Ctrl-C asking the guest to stop). The tree itself is tested against upstream in
test_run_virtualization_plan.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from linuxkit.errors import BuildError
from linuxkit.run import vzmachine
from linuxkit.run.plan import Call
from linuxkit.run.virtualization import VirtualizationOptions, VzHost, build_plan

Log = list[tuple[str, str, tuple[Any, ...]]]
STOPPED, RUNNING, ERROR, STARTING = 0, 1, 3, 4  # VZVirtualMachineState values (PyObjC's metadata)


class _Obj:
    """An Objective-C object: every selector is recorded; ``init...`` returns the object, ``...error_`` returns
    ``(object, None)`` as PyObjC does for a trailing ``NSError **``."""

    def __init__(self, log: Log, name: str) -> None:
        self.log, self.name = log, name

    def __getattr__(self, selector: str) -> Any:
        def call(*args: Any) -> Any:
            self.log.append((self.name, selector, args))
            if selector == "validateWithError_":
                return (True, None)
            if selector.endswith("error_"):
                return (self, None)
            return self if selector.startswith("init") else None

        return call

    def __repr__(self) -> str:
        return self.name


class _VM(_Obj):
    def __init__(self, log: Log, states: Iterator[int], start_error: str | None) -> None:
        super().__init__(log, "VZVirtualMachine")
        self.states, self.start_error = states, start_error

    def startWithCompletionHandler_(self, handler: Any) -> None:
        self.log.append((self.name, "startWithCompletionHandler_", ()))
        handler(None if self.start_error is None else _Error(self.start_error))

    def state(self) -> int:
        return next(self.states)

    def canRequestStop(self) -> bool:
        return True


class _Error:
    def __init__(self, text: str) -> None:
        self.text = text

    def localizedDescription(self) -> str:
        return self.text


class _Class:
    def __init__(self, log: Log, name: str, vm: _VM | None = None) -> None:
        self.log, self.name, self.vm = log, name, vm

    def alloc(self) -> _Obj:
        return self.vm if self.vm is not None else _Obj(self.log, self.name)


class _Virtualization:
    def __init__(self, log: Log, vm: _VM) -> None:
        self.log, self.vm = log, vm
        self.VZVirtualMachineStateStopped, self.VZVirtualMachineStateError = STOPPED, ERROR

    def __getattr__(self, name: str) -> _Class:
        return _Class(self.log, name, self.vm if name == "VZVirtualMachine" else None)


class _Foundation:
    def __init__(self, loop: list[object]) -> None:
        self.loop = loop
        foundation = self

        class NSURL:
            @staticmethod
            def fileURLWithPath_(path: str) -> str:
                return "file://" + path

        class NSFileHandle:
            @staticmethod
            def fileHandleWithStandardInput() -> str:
                return "stdin"

            @staticmethod
            def fileHandleWithStandardOutput() -> str:
                return "stdout"

        class NSDate:
            @staticmethod
            def dateWithTimeIntervalSinceNow_(seconds: float) -> float:
                return seconds

        class _Loop:
            def runUntilDate_(self, date: float) -> None:
                step = foundation.loop.pop(0) if foundation.loop else None
                if isinstance(step, BaseException):
                    raise step

        class NSRunLoop:
            @staticmethod
            def currentRunLoop() -> _Loop:
                return _Loop()

        self.NSURL, self.NSFileHandle, self.NSDate, self.NSRunLoop = NSURL, NSFileHandle, NSDate, NSRunLoop


@pytest.fixture
def image(tmp_path: Path) -> Path:
    (tmp_path / "vm-kernel").write_bytes(b"kernel")
    (tmp_path / "vm-initrd.img").write_bytes(b"initrd")
    (tmp_path / "vm-cmdline").write_text("console=ttyS0")
    (tmp_path / "vm-efi.iso").write_bytes(b"iso")
    (tmp_path / "share").mkdir()
    return tmp_path


def _tree(opts: VirtualizationOptions) -> dict[str, Any]:
    step = build_plan(opts, VzHost(mac=lambda: "02:00:00:00:00:07")).steps[-1]
    assert isinstance(step, Call) and isinstance(step.data, dict)
    return dict(step.data)


def _calls(log: Log, *names: str) -> list[tuple[str, str, tuple[Any, ...]]]:
    return [c for c in log if c[0] in names]


def test_linux_boot_tree_becomes_upstreams_objects(image: Path) -> None:
    log: Log = []
    tree = _tree(
        VirtualizationOptions(path=str(image / "vm"), cpus=2, mem=512, data="x", virtiofs=(str(image / "share"),))
    )
    vzmachine.configuration(_Virtualization(log, _VM(log, iter(()), None)), _Foundation([]), tree)
    assert _calls(log, "VZLinuxBootLoader") == [
        ("VZLinuxBootLoader", "initWithKernelURL_", (f"file://{image}/vm-kernel",)),
        ("VZLinuxBootLoader", "setInitialRamdiskURL_", (f"file://{image}/vm-initrd.img",)),
        ("VZLinuxBootLoader", "setCommandLine_", ("console=ttyS0 console=hvc0",)),
    ]
    config = [(sel, args) for name, sel, args in log if name == "VZVirtualMachineConfiguration"]
    assert [sel for sel, _ in config] == [
        "init", "setBootLoader_", "setCPUCount_", "setMemorySize_", "setSerialPorts_", "setNetworkDevices_",
        "setEntropyDevices_", "setStorageDevices_", "setMemoryBalloonDevices_", "setSocketDevices_",
        "setDirectorySharingDevices_", "validateWithError_",
    ]  # fmt: skip
    assert dict(config)["setCPUCount_"] == (2,) and dict(config)["setMemorySize_"] == (512 * 1024 * 1024,)
    assert ("VZFileHandleSerialPortAttachment", "initWithFileHandleForReading_fileHandleForWriting_",
            ("stdin", "stdout")) in log  # fmt: skip
    assert ("VZMACAddress", "initWithString_", ("02:00:00:00:00:07",)) in log
    assert ("VZDiskImageStorageDeviceAttachment", "initWithURL_readOnly_error_",
            (f"file://{image}/vm-state/data.iso", True, None)) in log  # fmt: skip
    assert ("VZVirtioFileSystemDeviceConfiguration", "initWithTag_", ("virtiofs0",)) in log
    assert ("VZSharedDirectory", "initWithURL_readOnly_", (f"file://{image}/share", False)) in log
    assert not _calls(log, "VZEFIBootLoader", "VZGenericPlatformConfiguration", "VZUSBMassStorageDeviceConfiguration")


def test_efi_tree_creates_the_variable_store_and_boots_the_iso_from_usb(image: Path) -> None:
    log: Log = []
    tree = _tree(VirtualizationOptions(path=str(image / "vm-efi.iso"), uefi=True, networking="none"))
    vzmachine.configuration(_Virtualization(log, _VM(log, iter(()), None)), _Foundation([]), tree)
    store = f"file://{image}/vm-efi-state/efi-variable-store"
    assert ("VZEFIVariableStore", "initCreatingVariableStoreAtURL_options_error_", (store, 0, None)) in log
    assert [c[1] for c in _calls(log, "VZEFIBootLoader")] == ["init", "setVariableStore_"]
    assert ("VZGenericPlatformConfiguration", "init", ()) in log
    assert ("VZDiskImageStorageDeviceAttachment", "initWithURL_readOnly_error_",
            (f"file://{image}/vm-efi.iso", True, None)) in log  # fmt: skip
    assert [c[1] for c in _calls(log, "VZUSBMassStorageDeviceConfiguration")] == ["initWithAttachment_"]
    assert not _calls(log, "VZVirtioNetworkDeviceConfiguration", "VZVirtioBlockDeviceConfiguration")
    # a second boot opens the kept store instead
    (image / "vm-efi-state").mkdir()
    (image / "vm-efi-state" / "efi-variable-store").write_bytes(b"vars")
    log.clear()
    tree = _tree(VirtualizationOptions(path=str(image / "vm-efi.iso"), uefi=True))
    vzmachine.configuration(_Virtualization(log, _VM(log, iter(()), None)), _Foundation([]), tree)
    assert ("VZEFIVariableStore", "initWithURL_", (store,)) in log


def _start(
    image: Path, monkeypatch: pytest.MonkeyPatch, states: list[int], loop: list[object], start_error: str | None = None
) -> Log:
    log: Log = []
    vz, foundation = _Virtualization(log, _VM(log, iter(states), start_error)), _Foundation(loop)
    modules = {"Virtualization": vz, "Foundation": foundation}
    monkeypatch.setattr(vzmachine, "check_host", lambda minimum: log.append(("host", "check", (minimum,))))
    monkeypatch.setattr(vzmachine, "require", lambda extra, module, *, verb: modules[module])
    monkeypatch.setattr(vzmachine, "_raw_stdin", lambda: None)
    vzmachine.start_vm(_tree(VirtualizationOptions(path=str(image / "vm"))))  # type: ignore[arg-type]
    return log


def test_start_runs_until_the_guest_stops(image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = _start(image, monkeypatch, [STARTING, RUNNING, RUNNING, STOPPED], [])
    assert log[0] == ("host", "check", (11,))
    assert [c[1] for c in _calls(log, "VZVirtualMachine")] == ["initWithConfiguration_", "startWithCompletionHandler_"]


def test_ctrl_c_asks_the_guest_to_stop(image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = _start(image, monkeypatch, [RUNNING, STOPPED], [None, KeyboardInterrupt()])
    assert ("VZVirtualMachine", "requestStopWithError_", (None,)) in log


def test_a_start_error_or_a_guest_error_fails_the_run(image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BuildError, match="did not start: no entitlement"):
        _start(image, monkeypatch, [STOPPED], [], start_error="no entitlement")
    with pytest.raises(BuildError, match="stopped with an error"):
        _start(image, monkeypatch, [RUNNING, ERROR], [])
