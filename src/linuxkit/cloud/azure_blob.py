"""Upload a fixed VHD into an Azure page blob: create the blob at the file's size, put only the non-empty
ranges (at most 4 MiB each, ``Content-MD5`` on each, a bounded pool of threads, retried), then set the blob's
``Content-MD5`` to the whole file's. If anything fails (or the upload is interrupted) the blob is deleted.

Imports azure-storage-blob: only ``linuxkit push/run azure`` import this module (through
:func:`linuxkit.cloud.extras.require`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.blob import BlobClient, BlobServiceClient, ContentSettings

from .. import log
from ..errors import LinuxKitError
from .azure_vhd import PagePlan, file_md5

#: threads putting pages at once (each holds one range of at most 4 MiB)
DEFAULT_WORKERS = 8
#: attempts for each range before the upload fails
DEFAULT_ATTEMPTS = 4


@dataclass(frozen=True)
class BlobTarget:
    """Where the VHD goes: a container and a blob name in one storage account."""

    service: BlobServiceClient
    container: str
    blob: str


def ensure_container(service: BlobServiceClient, container: str) -> None:
    """Create the (private) container unless it exists."""
    try:
        service.create_container(container)
        log.info(f"created container {container}")
    except ResourceExistsError:
        pass


def _put_range(
    blob: BlobClient, fd: int, offset: int, length: int, attempts: int, pause: Callable[[float], None]
) -> int:
    data = os.pread(fd, length, offset)
    for attempt in range(1, attempts + 1):
        try:
            blob.upload_page(data, offset=offset, length=length, validate_content="md5")
            return length
        except AzureError as exc:
            if attempt == attempts:
                raise LinuxKitError(f"putting pages {offset}+{length} failed {attempts} times: {exc}") from exc
            log.debug(f"pages {offset}+{length}: attempt {attempt} failed ({exc}); retrying")
            pause(0.5 * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def upload_vhd(
    blob: BlobClient,
    path: Path,
    plan: PagePlan,
    *,
    workers: int = DEFAULT_WORKERS,
    attempts: int = DEFAULT_ATTEMPTS,
    pause: Callable[[float], None] = time.sleep,
) -> None:
    """Create ``blob`` as a page blob of ``plan.size`` bytes and fill it from ``path``; delete it on failure.
    Without ``plan.md5``, the file's MD5 is computed by one more thread while the pages are put."""
    blob.create_page_blob(size=plan.size)
    try:
        with (
            path.open("rb") as fh,
            log.progress() as bar,
            ThreadPoolExecutor(max_workers=workers) as pool,
            ThreadPoolExecutor(max_workers=1) as hasher,
        ):
            md5 = hasher.submit(lambda: plan.md5 or file_md5(path))
            task = bar.add_task(f"uploading {path.name}", total=plan.upload_bytes)
            futures: set[Future[int]] = {
                pool.submit(_put_range, blob, fh.fileno(), offset, length, attempts, pause)
                for offset, length in plan.ranges
            }
            try:
                while futures:
                    done, futures = wait(futures, timeout=0.5, return_when=FIRST_EXCEPTION)
                    for future in done:
                        bar.advance(task, future.result())
            finally:
                for future in futures:
                    future.cancel()
            digest = md5.result()
        blob.set_http_headers(ContentSettings(content_type="application/octet-stream", content_md5=bytearray(digest)))
    except BaseException:
        _delete_partial(blob)
        raise


def _delete_partial(blob: BlobClient) -> None:
    try:
        blob.delete_blob()
        log.warn(f"upload failed: deleted the partial blob {blob.url}")
    except AzureError as exc:
        log.error(f"upload failed, and the partial blob {blob.url} could not be deleted ({exc}): delete it by hand")
