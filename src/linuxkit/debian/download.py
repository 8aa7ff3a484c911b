"""Download .deb files into a content-addressed cache, in parallel, verified inline."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .. import log
from ..errors import BuildError, UserError
from . import transport
from .model import DebRef
from .sources import Source, uri_for

# Files already checked by sha256 in this process (path, sha256): later uses check only the size.
_verified: set[tuple[Path, str]] = set()
_verified_lock = threading.Lock()


def deb_path(cache_dir: Path, ref: DebRef) -> Path:
    return Path(cache_dir) / "debs" / f"{ref.sha256}.deb"


def _cached(path: Path, ref: DebRef) -> bool:
    """Whether ``path`` holds ``ref``: size always, sha256 once per process; a bad file is removed."""
    try:
        if path.stat().st_size != ref.size:
            log.warn(f"cached {path.name} has the wrong size; downloading {ref.name} again")
            path.unlink()
            return False
    except FileNotFoundError:
        return False
    key = (path, ref.sha256)
    with _verified_lock:
        if key in _verified:
            return True
    if transport.sha256_file(path) != ref.sha256:
        log.warn(f"cached {path.name} is corrupt; downloading {ref.name} again")
        path.unlink(missing_ok=True)
        return False
    with _verified_lock:
        _verified.add(key)
    return True


def fetch_debs(
    refs: Sequence[DebRef], sources: Sequence[Source], cache_dir: Path, *, jobs: int = 4
) -> dict[DebRef, Path]:
    """Make every ``ref`` available as ``cache_dir/debs/<sha256>.deb`` and return where each is.

    Missing files are downloaded in ``jobs`` threads, streamed and checked (size, sha256) before being renamed
    into place. A file the mirror no longer has is a :class:`UserError` (pin a snapshot mirror); a checksum
    mismatch is a :class:`BuildError` and nothing is kept.
    """
    result: dict[DebRef, Path] = {}
    missing: list[DebRef] = []
    for ref in dict.fromkeys(refs):
        path = deb_path(cache_dir, ref)
        if _cached(path, ref):
            result[ref] = path
        else:
            missing.append(ref)
    if not missing:
        return result
    urls = {ref: f"{uri_for(sources, ref.suite)}/{ref.filename}" for ref in missing}
    total = sum(ref.size for ref in missing)
    log.info(f"downloading {len(missing)} Debian package(s), {total / 1e6:.1f} MB")
    with log.progress() as progress:
        task = progress.add_task("Debian packages", total=total)
        lock = threading.Lock()

        def advance(n: int) -> None:
            with lock:
                progress.advance(task, n)

        def one(ref: DebRef) -> Path:
            path = deb_path(cache_dir, ref)
            try:
                transport.download(urls[ref], path, size=ref.size, sha256=ref.sha256, on_chunk=advance)
            except transport.NotFound as exc:
                raise UserError(
                    f"Debian package {ref.name} {ref.version} ({ref.suite}) is no longer on the mirror: {exc.url}",
                    hint="the archive dropped this version; refresh the lock file to take the current version, or "
                    "set --debian-mirror (and --debian-security-mirror) to a snapshot mirror of the Debian archive "
                    "taken when the lock file was written",
                ) from exc
            except transport.DigestMismatch as exc:
                raise BuildError(
                    f"Debian package {ref.name} {ref.version} does not match the signed index: {exc}",
                    hint="nothing was kept; retry, and check the mirror if it happens again",
                ) from exc
            with _verified_lock:
                _verified.add((path, ref.sha256))
            return path

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {ref: pool.submit(one, ref) for ref in missing}
            errors: list[BaseException] = []
            for ref, future in futures.items():
                exc = future.exception()
                if exc is None:
                    result[ref] = future.result()
                else:
                    errors.append(exc)
    if errors:
        # Report the first in request order; the others are usually the same cause.
        raise errors[0]
    return {ref: result[ref] for ref in dict.fromkeys(refs)}
