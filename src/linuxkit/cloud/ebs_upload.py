"""A raw disk image into a new EBS snapshot with the EBS direct APIs: ``StartSnapshot``, one
``PutSnapshotBlock`` per non-zero 512 KiB block (a bounded pool of threads), ``CompleteSnapshot`` with the
LINEAR checksum, then wait until EC2 reports the snapshot ``completed``.

No S3 bucket and no ``vmimport`` role are needed. The file is streamed: at most ``2 × workers`` blocks are in
memory. Throttling (``ThrottlingException``, ``RequestThrottledException``), 5xx answers and dropped
connections are retried by the clients' retry policy (see :func:`linuxkit.cloud.aws.clients`). When anything
fails (or Ctrl-C), the snapshot started here is deleted; if that fails too the error says which snapshot is
left and that AWS cancels an unfinished one after ``SNAPSHOT_TIMEOUT_MINUTES``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from .. import log
from ..errors import LinuxKitError
from .ebs_blocks import Block, aggregate_checksum, iter_blocks, volume_size_gib
from .polling import poll_delays

#: ``StartSnapshot``'s ``Timeout``: AWS cancels the snapshot if it is not completed within this many minutes
SNAPSHOT_TIMEOUT_MINUTES = 60
#: parallel ``PutSnapshotBlock`` requests
DEFAULT_WORKERS = 8

Progress = Callable[[int], None]


class Deadline:
    """The time left for the whole push (``--timeout``)."""

    def __init__(self, seconds: float, what: str = "the upload") -> None:
        self.seconds = seconds
        self.what = what
        self.end = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise LinuxKitError(
                f"{self.what} did not finish within {self.seconds:g} s",
                hint="give more time with --timeout SECONDS (or LINUXKIT_UPLOAD_TIMEOUT)",
            )

    def sleep(self, seconds: float) -> None:
        self.check()
        time.sleep(max(0.0, min(seconds, self.end - time.monotonic())))


def client_error_text(exc: BaseException) -> str:
    """A botocore ``ClientError`` as ``Code: message``; other exceptions as their text."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        code, message = err.get("Code", ""), err.get("Message", "")
        if code or message:
            return f"{code}: {message}" if code and message else str(code or message)
    return str(exc) or type(exc).__name__


class _Blocks:
    """The blocks sent so far (from the worker threads): digests by index, bytes covered, the first error."""

    def __init__(self, progress: Progress | None) -> None:
        self.lock = threading.Lock()
        self.digests: dict[int, bytes] = {}
        self.progress = progress

    def done(self, block: Block) -> None:
        with self.lock:
            self.digests[block.block_index] = block.digest
        if self.progress is not None:
            self.progress(len(block.data))


def _put(ebs: Any, snapshot_id: str, block: Block, sent: _Blocks) -> None:
    ebs.put_snapshot_block(
        SnapshotId=snapshot_id,
        BlockIndex=block.block_index,
        BlockData=block.data,
        DataLength=len(block.data),
        Checksum=block.checksum,
        ChecksumAlgorithm="SHA256",
    )
    sent.done(block)


def _reap(pending: set[Future[None]]) -> None:
    """Forget the finished requests; the first failed one raises its error here."""
    for future in [f for f in pending if f.done()]:
        pending.discard(future)
        future.result()


def _put_all(
    ebs: Any, snapshot_id: str, path: Path, size: int, workers: int, deadline: Deadline, sent: _Blocks
) -> None:
    """Every non-zero block of ``path`` into the snapshot, ``workers`` requests at a time and at most
    ``2 × workers`` blocks read ahead; the first failure stops the rest."""
    slots = threading.BoundedSemaphore(2 * workers)
    pending: set[Future[None]] = set()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ebs-put")
    try:
        with open(path, "rb") as fh:
            for covered, block in iter_blocks(fh, size):
                if block is None:
                    if sent.progress is not None:
                        sent.progress(covered)
                    continue
                while not slots.acquire(timeout=0.5):
                    _reap(pending)
                    deadline.check()
                future = pool.submit(_put, ebs, snapshot_id, block, sent)
                future.add_done_callback(lambda _: slots.release())
                pending.add(future)
                _reap(pending)
                deadline.check()
        while pending:
            wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
            _reap(pending)
            deadline.check()
    finally:
        # after a failure: drop the queued blocks, let the requests in flight end (each is one HTTP request)
        pool.shutdown(wait=True, cancel_futures=True)


def upload_snapshot(
    ebs: Any,
    ec2: Any,
    path: Path,
    *,
    description: str,
    tags: dict[str, str],
    deadline: Deadline,
    workers: int = DEFAULT_WORKERS,
    progress: Progress | None = None,
) -> str:
    """Write ``path`` (a raw disk image) into a new, completed EBS snapshot and return its id. On any failure
    the snapshot is deleted (or the error says it is left)."""
    size = path.stat().st_size
    if size == 0:
        raise LinuxKitError(f"{path} is empty: nothing to upload")
    started = ebs.start_snapshot(
        VolumeSize=volume_size_gib(size),
        ClientToken=str(uuid.uuid4()),
        Description=description,
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        Timeout=SNAPSHOT_TIMEOUT_MINUTES,
    )
    snapshot_id: str = started["SnapshotId"]
    log.debug(f"started snapshot {snapshot_id} ({volume_size_gib(size)} GiB)")
    try:
        sent = _Blocks(progress)
        try:
            _put_all(ebs, snapshot_id, path, size, workers, deadline, sent)
        except (LinuxKitError, OSError):
            raise
        except Exception as exc:  # botocore's errors: the SDK is not imported here
            raise LinuxKitError(
                f"uploading a block of {path} to snapshot {snapshot_id}: {client_error_text(exc)}"
            ) from exc
        ebs.complete_snapshot(
            SnapshotId=snapshot_id,
            ChangedBlocksCount=len(sent.digests),
            Checksum=aggregate_checksum(sent.digests.items()),
            ChecksumAlgorithm="SHA256",
            ChecksumAggregationMethod="LINEAR",
        )
        log.debug(f"snapshot {snapshot_id}: {len(sent.digests)} blocks written")
        wait_snapshot_completed(ec2, snapshot_id, deadline)
    except BaseException as exc:
        delete_snapshot(ec2, snapshot_id, exc)
        raise
    return snapshot_id


def wait_snapshot_completed(ec2: Any, snapshot_id: str, deadline: Deadline) -> None:
    """Poll ``DescribeSnapshots`` until the snapshot is ``completed`` (``error`` fails)."""
    for delay in poll_delays():
        found = ec2.describe_snapshots(SnapshotIds=[snapshot_id]).get("Snapshots", [])
        state = found[0].get("State", "") if found else ""
        if state == "completed":
            return
        if state == "error":
            message = found[0].get("StateMessage", "")
            raise LinuxKitError(f"snapshot {snapshot_id} failed{': ' + message if message else ''}")
        log.debug(
            f"snapshot {snapshot_id}: {state or 'not listed yet'} {found[0].get('Progress', '') if found else ''}"
        )
        deadline.sleep(delay)


def delete_snapshot(ec2: Any, snapshot_id: str, cause: BaseException | None = None) -> None:
    """Delete the snapshot this push started; when that fails, say what is left (never hides ``cause``)."""
    try:
        ec2.delete_snapshot(SnapshotId=snapshot_id)
    except Exception as exc:
        log.warn(
            f"snapshot {snapshot_id} is left behind: deleting it failed ({client_error_text(exc)}); AWS cancels "
            f"an uncompleted snapshot {SNAPSHOT_TIMEOUT_MINUTES} minutes after it started, a completed one must be "
            f"deleted by hand: aws ec2 delete-snapshot --snapshot-id {snapshot_id}"
        )
    else:
        why = (
            f" after: {client_error_text(cause)}"
            if cause is not None and not isinstance(cause, KeyboardInterrupt)
            else ""
        )
        log.info(f"deleted snapshot {snapshot_id}{why}")
