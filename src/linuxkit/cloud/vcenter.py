"""``linuxkit push vcenter`` and ``linuxkit run vcenter``, as upstream: push uploads an ISO to a datastore
folder over vSphere's HTTP file access; run creates a VM booting that ISO (optional persistent disk and network
card) and powers it on.

pyVmomi (the ``vcenter`` extra) is imported by these functions only, through :func:`.extras.require`. Like
upstream, the server's TLS certificate is not verified (vCenter and ESXi ship self-signed ones).
"""

from __future__ import annotations

import http.client
import random
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from .. import log
from ..errors import LinuxKitError, UserError
from . import vcenter_spec as spec
from .extras import require

VERB_PUSH = "push vcenter"
VERB_RUN = "run vcenter"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Target:
    """Where the files and the VM go (upstream's ``--datacenter``, ``--datastore``, ``--hostname``, and
    ``--network`` for run); an empty name means "the only one there is"."""

    url: str
    datacenter: str = ""
    datastore: str = ""
    hostname: str = ""
    network: str = ""


@dataclass
class Session:
    """A logged-in connection and what was looked up."""

    vim: Any
    si: Any
    content: Any
    endpoint: spec.Endpoint
    datacenter: Any
    datacenter_path: str
    datastore: Any
    host: Any = None
    network: Any = None

    def close(self) -> None:
        try:
            require("vcenter", "pyVim.connect", verb=VERB_PUSH).Disconnect(self.si)
        except Exception as exc:  # logging out is best effort: the session expires on its own
            log.debug(f"vCenter logout: {exc}")


@contextmanager
def sdk_errors(verb: str) -> Iterator[None]:
    """vSphere faults and connection errors as ours."""
    vmodl = require("vcenter", "pyVmomi", verb=verb).vmodl
    try:
        yield
    except vmodl.MethodFault as exc:
        raise LinuxKitError(f"{verb}: vCenter: {exc.msg or type(exc).__name__}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise LinuxKitError(f"{verb}: cannot reach vCenter: {exc}") from exc


def connect(target: Target, verb: str, *, need_host: bool) -> Session:
    """Log in and find the datacenter, datastore, network and (for run) host, as upstream's
    ``vCenterConnect``."""
    endpoint = spec.parse_url(target.url)
    pyvmomi = require("vcenter", "pyVmomi", verb=verb)
    connect_mod = require("vcenter", "pyVim.connect", verb=verb)
    vim = pyvmomi.vim
    with sdk_errors(verb):
        try:
            si = connect_mod.SmartConnect(
                protocol=endpoint.scheme,
                host=endpoint.host,
                port=endpoint.port,
                path=endpoint.path,
                user=endpoint.user,
                pwd=endpoint.password,
                disableSslCertValidation=True,
            )
        except vim.fault.InvalidLogin as exc:
            raise UserError(
                f"vCenter refused the login of {endpoint.user!r}: {exc.msg}",
                hint=f"check the user name and password in --url or ${spec.URL_ENV} ({spec.URL_FORMAT})",
            ) from exc
        try:
            return _lookup(vim, si, endpoint, target, need_host=need_host)
        except BaseException:
            connect_mod.Disconnect(si)
            raise


def _only(kind: str, items: list[Any], name: str, flag: str) -> Any:
    """The item called ``name``, or the only one when ``name`` is empty (govmomi's ``...OrDefault``)."""
    if name:
        for item in items:
            if item.name == name:
                return item
        known = ", ".join(sorted(i.name for i in items)) or "none"
        raise UserError(f"{kind} [{name}] could not be found", hint=f"{flag}: one of {known}")
    if len(items) == 1:
        return items[0]
    if not items:
        raise UserError(f"no {kind} could be found in vCenter")
    known = ", ".join(sorted(i.name for i in items))
    raise UserError(f"vCenter has {len(items)} {kind}s: say which", hint=f"pass {flag} (one of {known})")


def _objects(content: Any, root: Any, kind: Any) -> list[Any]:
    view = content.viewManager.CreateContainerView(root, [kind], True)
    try:
        return list(view.view)
    finally:
        view.Destroy()


def inventory_path(root: Any, obj: Any) -> str:
    """``/folder/.../name`` of a managed object below the root folder (govmomi's ``InventoryPath``)."""
    names: list[str] = []
    while obj is not None and obj != root:
        names.append(obj.name)
        obj = obj.parent
    return "/" + "/".join(reversed(names))


def _lookup(vim: Any, si: Any, endpoint: spec.Endpoint, target: Target, *, need_host: bool) -> Session:
    content = si.RetrieveContent()
    root = content.rootFolder
    dc = _only("datacenter", _objects(content, root, vim.Datacenter), target.datacenter, "--datacenter/$VCDATACENTER")
    ds = _only("datastore", list(dc.datastore), target.datastore, "--datastore/$VCDATASTORE")
    session = Session(vim, si, content, endpoint, dc, inventory_path(root, dc), ds)
    if target.network:
        session.network = _only("network", list(dc.network), target.network, "--network/$VCNETWORK")
    if need_host:
        hosts = _objects(content, dc.hostFolder, vim.HostSystem)
        if target.hostname:
            session.host = _only("vSphere host", hosts, target.hostname, "--hostname/$VCHOST")
        elif hosts:
            session.host = random.choice(hosts)  # as upstream: any host will do
        else:
            raise UserError("no vSphere hosts could be found on the vCenter server")
    return session


def cookie(session: Session) -> str:
    """The session cookie, for the datastore file access."""
    return str(session.si._stub.cookie)


def read_task(task: Any) -> tuple[str, Any, Any]:
    """A task's ``info.state``, ``info.error`` and ``info.result``, read with the property collector (the whole
    ``info`` is not read: some servers put an entity there that is not a ``ManagedEntity``)."""
    vmodl = require("vcenter", "pyVmomi", verb="vcenter").vmodl
    collector = vmodl.query.PropertyCollector("propertyCollector", task._stub)
    paths = ["info.state", "info.error", "info.result"]
    spec = vmodl.query.PropertyCollector.FilterSpec(
        objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=task, skip=False)],
        propSet=[vmodl.query.PropertyCollector.PropertySpec(type=type(task), pathSet=paths)],
    )
    props: dict[str, Any] = {}
    for found in collector.RetrieveContents([spec]):
        props.update({p.name: p.val for p in found.propSet})
    return str(props.get("info.state", "")), props.get("info.error"), props.get("info.result")


def wait(task: Any, what: str, *, poll: float = 0.2, read: Callable[[Any], tuple[str, Any, Any]] = read_task) -> Any:
    """A vSphere task's result, or a :class:`LinuxKitError` with its fault."""
    while True:
        state, error, result = read(task)
        if state == "success":
            return result
        if state == "error":
            raise LinuxKitError(f"{what} failed: {fault_text(error)}")
        time.sleep(poll)
        poll = min(poll * 2, 2.0)


def fault_text(fault: Any) -> str:
    """A vSphere fault for a message: its text, else its type, and the file it is about."""
    text = str(getattr(fault, "msg", "") or type(fault).__name__.rsplit(".", 1)[-1])
    file = getattr(fault, "file", "")
    return f"{text} ({file})" if file and file not in text else text


def find_file(session: Session, relative: str) -> bool:
    """Whether ``[datastore] relative`` exists (the datastore browser's search)."""
    vim = session.vim
    folder, _, name = relative.rpartition("/")
    search = vim.host.DatastoreBrowser.SearchSpec(matchPattern=[name])
    task = session.datastore.browser.SearchDatastore_Task(
        datastorePath=spec.datastore_path(session.datastore.name, folder), searchSpec=search
    )
    try:
        result = wait(task, f"looking for {relative}")
    except LinuxKitError:
        if isinstance(read_task(task)[1], vim.fault.FileNotFound):
            return False
        raise
    return any(f.path == name for f in result.file or [])


# --- push ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushOptions:
    path: Path
    target: Target
    folder: str = ""


def upload(
    session: Session,
    relative: str,
    source: BinaryIO,
    size: int,
    on_progress: Callable[[int], None],
    *,
    timeout: float = 300.0,
) -> None:
    """PUT ``source`` to ``[datastore] relative`` (streamed, ``size`` bytes) with the session cookie."""
    url = urlsplit(spec.upload_url(session.endpoint, session.datacenter_path, session.datastore.name, relative))
    conn: http.client.HTTPConnection
    if url.scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False  # as upstream: vCenter's certificates are self-signed
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(session.endpoint.netloc, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(session.endpoint.netloc, timeout=timeout)
    try:
        conn.putrequest("PUT", f"{url.path}?{url.query}")
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(size))
        conn.putheader("Cookie", cookie(session))
        conn.endheaders()
        done = 0
        while done < size:
            data = source.read(min(CHUNK, size - done))
            if not data:
                raise LinuxKitError(f"{VERB_PUSH}: the file shrank while it was read ({done} of {size} bytes)")
            conn.send(data)
            done += len(data)
            on_progress(done)
        resp = conn.getresponse()
        body = resp.read(4096)
        if resp.status not in (200, 201, 204):
            detail = body.decode("utf-8", "replace").strip()
            raise LinuxKitError(f"{VERB_PUSH}: the datastore refused the upload: HTTP {resp.status} {detail}")
    finally:
        conn.close()


def delete_file(session: Session, relative: str) -> None:
    """Delete ``[datastore] relative`` (a partial upload)."""
    manager = session.content.fileManager
    name = spec.datastore_path(session.datastore.name, relative)
    wait(manager.DeleteDatastoreFile_Task(name=name, datacenter=session.datacenter), f"deleting {name}")


def push(opts: PushOptions) -> str:
    """Upload the ISO to ``[datastore] FOLDER/NAME.iso``; returns that datastore path. A failed or interrupted
    upload deletes the partial file."""
    name = spec.iso_name(str(opts.path))
    try:
        size = opts.path.stat().st_size
        source = opts.path.open("rb")
    except OSError as exc:
        raise UserError(f"cannot read {opts.path}: {exc.strerror or exc}") from exc
    folder = opts.folder or spec.default_folder(str(opts.path))
    relative = f"{folder}/{name}"
    with source:
        session = connect(opts.target, VERB_PUSH, need_host=False)
        try:
            where = spec.datastore_path(session.datastore.name, relative)
            log.info(f"Uploading {opts.path} to {where}")
            started = time.monotonic()
            with log.progress() as bars:
                task = bars.add_task(name, total=size)
                try:
                    upload(session, relative, source, size, lambda done: bars.update(task, completed=done))
                except BaseException as exc:
                    _remove_partial(session, relative, exc)
                    raise
            seconds = max(time.monotonic() - started, 1e-6)
            log.info(f"Uploaded {where}: {size} bytes in {seconds:.1f} s")
            return where
        finally:
            session.close()


def _remove_partial(session: Session, relative: str, cause: BaseException) -> None:
    where = spec.datastore_path(session.datastore.name, relative)
    try:
        with sdk_errors(VERB_PUSH):
            delete_file(session, relative)
        log.info(f"Deleted the partial upload {where}")
    except Exception as exc:
        if isinstance(exc, LinuxKitError) and "not found" in exc.args[0].lower():
            return  # nothing was written
        log.warn(f"the partial upload {where} is left on the datastore ({exc}): delete it in vCenter")


# --- run -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    path: str
    target: Target
    name: str = ""
    cpus: int = 1
    mem_mb: int = 1024
    persistent_mb: int = 0
    power_on: bool = False
    wait_for_ip: bool = False
    ip_timeout: float = 600.0


def run(opts: RunOptions) -> int:
    """Create the VM booting ``[datastore] NAME/FILE.iso`` (pushed before), as upstream; a failure before it is
    powered on destroys it."""
    if opts.wait_for_ip and not opts.power_on:
        raise UserError("--waitForIP cannot be used without --powerOn")
    iso = spec.iso_name(opts.path)
    name = opts.name or spec.default_folder(opts.path)
    session = connect(opts.target, VERB_RUN, need_host=True)
    try:
        with sdk_errors(VERB_RUN):
            vm = _create(session, opts, name, iso)
            if opts.wait_for_ip:
                log.info("Waiting for VMware Tools to report the guest's IP address")
                address = wait_for_ip(vm, opts.ip_timeout)
                log.info(f"Guest IP Address: {address}")
        return 0
    finally:
        session.close()


def _create(session: Session, opts: RunOptions, name: str, iso: str) -> Any:
    vim = session.vim
    ds_name = session.datastore.name
    if not find_file(session, f"{name}/{iso}"):
        raise UserError(
            f"{spec.datastore_path(ds_name, f'{name}/{iso}')} is not on the datastore",
            hint="push it first: linuxkit push vcenter (with the same --folder as run's --vmfolder)",
        )
    config = spec.create_spec(vim, name=name, datastore=ds_name, cpus=opts.cpus, mem_mb=opts.mem_mb)
    pool = session.host.parent.resourcePool
    log.info(f"Creating the VM {name} on {session.host.name}")
    vm = wait(session.datacenter.vmFolder.CreateVM_Task(config=config, pool=pool, host=session.host), "creating the VM")
    try:
        changes = spec.device_changes(
            vim,
            list(vm.config.hardware.device),
            iso=spec.datastore_path(ds_name, f"{name}/{iso}"),
            disk=spec.datastore_path(ds_name, f"{name}/{spec.PERSISTENT_DISK}") if opts.persistent_mb else "",
            disk_mb=opts.persistent_mb,
            datastore=session.datastore,
            network=spec.nic_backing(vim, session.network) if session.network is not None else None,
        )
        log.info(
            "Adding the ISO"
            + (", a persistent disk" if opts.persistent_mb else "")
            + (", a network card" if session.network is not None else "")
        )
        wait(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=changes)), "adding the VM's devices")
        if opts.power_on:
            log.info(f"Powering on {name}")
            wait(vm.PowerOnVM_Task(), "powering on the VM")
    except BaseException as exc:
        _destroy(vm, name, exc)
        raise
    return vm


def _destroy(vm: Any, name: str, cause: BaseException) -> None:
    try:
        with sdk_errors(VERB_RUN):
            if vm.runtime.powerState == "poweredOn":
                wait(vm.PowerOffVM_Task(), "powering off the VM")
            wait(vm.Destroy_Task(), "deleting the VM")
        log.info(f"Deleted the half-created VM {name}")
    except Exception as exc:
        log.warn(f"the half-created VM {name} is left in vCenter ({exc}): delete it there")


def wait_for_ip(vm: Any, timeout: float, *, poll: float = 2.0) -> str:
    """The guest's IP address as VMware Tools reports it."""
    deadline = time.monotonic() + timeout
    while True:
        address = vm.guest.ipAddress if vm.guest is not None else None
        if address:
            return str(address)
        if time.monotonic() > deadline:
            raise LinuxKitError(f"{VERB_RUN}: no guest IP address after {timeout:.0f} s (is open-vm-tools running?)")
        time.sleep(poll)
