"""Flatten an image's layers into one filesystem stream, in upstream's order, safely.

Upstream (go-containerregistry ``mutate.Extract``) walks the layers from the top one down and
emits the first occurrence of each path: a path seen once (or whited out with ``.wh.NAME``) is
skipped in lower layers, and a non-directory hides everything below it in lower layers. Names
are cleaned (``./a/`` → ``a``). We keep that order and those rules, and deliberately add:

* **Opaque whiteouts** (``DIR/.wh..wh..opq``): lower layers' entries below ``DIR`` are hidden
  (upstream ignores the marker and lets them through).
* **Safety.** We re-emit a tar, so "escaping" means producing an entry that a tar extractor
  would place outside the image's directory or through something that is not a directory:

  - an absolute name is made relative (``/etc/x`` → ``etc/x``); a name climbing above the
    image root (``../x``) is dropped;
  - an entry below a path that is a non-directory in the result is dropped (upstream already
    drops those from lower layers; we also drop a lower non-directory that would replace a
    directory implied by entries already emitted);
  - a directory in an upper layer over a non-directory or whiteout in a lower one hides what
    even lower layers have below it (upstream lets those through);
  - a hard link must name an entry already emitted from the same layer; otherwise (target
    whited out, replaced by an upper layer, in a lower layer, or missing) the link becomes a
    copy of the file it pointed to in its own layer (read again from that layer), or is dropped
    when there is no such file. Targets climbing above the root are dropped.

The output of :func:`flatten` carries, per header, exactly the PAX records upstream's
intermediate tar would carry, so the final bytes match upstream's.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from contextlib import closing
from typing import IO

from .. import log
from ..gocompat.path import go_base, go_dir, go_join
from ..oci.image import ImageSource
from ..safetree import clean_name
from ..tar.header import DIR, LINK, PAX, REG, Header, plan_header
from ..tar.reader import Entry, PathBudget, read_entries
from ..tar.writer import TarWriter, copy_data

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_MAX_LINK_DEPTH = 16


def safe_relative(name: str) -> str | None:
    """``name`` cleaned and made relative to the image root (``.`` for the root itself), or ``None`` when
    it climbs above it (:func:`~..safetree.clean_name`)."""
    cleaned = clean_name(name)
    return None if cleaned is None else cleaned or "."


def ancestors(name: str) -> Iterator[str]:
    """The proper ancestors of a cleaned relative name, nearest first (``a/b/c`` → ``a/b``, ``a``)."""
    while "/" in name:
        name = name[: name.rfind("/")]
        yield name


def roundtrip(hdr: Header) -> Header:
    """``hdr`` as it reads back after Go writes it in PAX format (only the PAX records change)."""
    hdr = hdr.copy(want_pax=True)
    choice, records = plan_header(hdr)
    hdr.pax = dict(records) if choice == PAX and records else None
    return hdr


def _in_whiteout_dir(seen: dict[str, bool], name: str) -> bool:
    """Whether a proper ancestor of the cleaned relative ``name`` hides what is below it."""
    return any(seen.get(parent) for parent in ancestors(name))


class _Flattener:
    def __init__(self, source: ImageSource) -> None:
        self.source = source
        self.seen: dict[str, bool] = {}  # upstream's fileMap: True hides what is below
        self.emitted: dict[str, int] = {}  # non-directories emitted → layer index
        self.implied_dirs: set[str] = set()  # ancestors of everything emitted
        self.budget = PathBudget(source.ref)
        self.opaque: set[str] = set()  # opaque directories of the layers above the current one
        # a parent directory whose ancestors were checked (no whiteout, no opaque one) since the last
        # change that could hide it: siblings skip the walk up (a deep directory of many files would
        # otherwise cost depth × length per entry)
        self.clear: str | None = None

    def _hide(self, key: str) -> None:
        """``seen[key] = True``: ``key`` now hides what is below it."""
        self.seen[key] = True
        if self.clear is not None and (self.clear == key or self.clear.startswith(key + "/")):
            self.clear = None

    def run(self) -> Generator[Entry, None, None]:
        for layer in range(self.source.layer_count() - 1, -1, -1):
            self.clear = None  # the opaque directories change between layers
            new_opaque: set[str] = set()
            with closing(self.source.open_layer(layer)) as stream:
                for entry in read_entries(stream):
                    yield from self._entry(layer, entry, new_opaque)
            self.opaque |= new_opaque

    def _entry(self, layer: int, entry: Entry, new_opaque: set[str]) -> Iterator[Entry]:
        hdr = entry.header
        name = safe_relative(hdr.name)
        if name is None:
            log.warn(f"{self.source.ref}: dropping {hdr.name!r}: it climbs out of the image root")
            return
        base, parent = go_base(name), go_dir(name)
        if base == OPAQUE:
            new_opaque.add(parent)
            return
        tombstone = base.startswith(WHITEOUT)
        if tombstone:
            base = base[len(WHITEOUT) :]
        is_dir = hdr.typeflag == DIR
        key = name if is_dir else go_join(parent, base)
        if key in self.seen:
            if tombstone or not is_dir:
                # A directory above replaced this whiteout or non-directory: nothing below it shows.
                self._hide(key)
            return
        if parent != self.clear:
            if _in_whiteout_dir(self.seen, key) or any(a in self.opaque for a in ancestors(key)):
                return
            self.clear = parent
        if not is_dir and not tombstone and key in self.implied_dirs:
            # An upper layer made this a directory; this non-directory still hides what is below it.
            log.debug(f"{self.source.ref}: dropping {key!r}: a directory of that name is already in the image")
            self._hide(key)
            return
        self.budget.charge(key)
        if tombstone or not is_dir:
            self._hide(key)
        else:
            self.seen[key] = False
        if tombstone:
            return
        hdr = hdr.copy(name=name)
        if hdr.typeflag == LINK:
            yield from self._hardlink(layer, hdr, entry)
            return
        self._mark(key, layer, is_dir)
        yield Entry(roundtrip(hdr), entry.data)

    def _mark(self, key: str, layer: int, is_dir: bool) -> None:
        if not is_dir:
            self.emitted[key] = layer
        for parent in ancestors(key):
            if parent in self.implied_dirs:
                break  # added with all of its own ancestors
            self.budget.charge(parent)
            self.implied_dirs.add(parent)

    def _hardlink(self, layer: int, hdr: Header, entry: Entry) -> Iterator[Entry]:
        target = safe_relative(hdr.linkname)
        if target is None or target == ".":
            log.warn(f"{self.source.ref}: dropping hard link {hdr.name!r} to {hdr.linkname!r}: outside the image")
            return
        # A relative link that stays inside is kept byte for byte (``./bin/sh`` too), as upstream does.
        link = target if hdr.linkname.startswith("/") else hdr.linkname
        if self.emitted.get(target) == layer:
            self._mark(hdr.name, layer, False)
            yield Entry(roundtrip(hdr.copy(linkname=link)), entry.data)
            return
        found = False
        for copy in _materialise(self.source, layer, target, hdr):
            found = True
            self._mark(hdr.name, layer, False)
            yield copy
        if not found:
            log.warn(f"{self.source.ref}: dropping hard link {hdr.name!r}: its target {target!r} is not in the image")


def _materialise(source: ImageSource, layer: int, target: str, link: Header, depth: int = 0) -> Iterator[Entry]:
    """Yield ``link`` turned into a copy of ``target`` as seen from ``layer`` (nothing if absent)."""
    if depth > _MAX_LINK_DEPTH:
        return
    covers = {target, *ancestors(target)}
    for index in range(layer, -1, -1):
        hidden = False
        with closing(source.open_layer(index)) as stream:
            for entry in read_entries(stream):
                name = safe_relative(entry.header.name)
                if name is None:
                    continue
                base, parent = go_base(name), go_dir(name)
                if (base == OPAQUE and parent in covers and parent != target) or (
                    base.startswith(WHITEOUT) and go_join(parent, base[len(WHITEOUT) :]) in covers
                ):
                    hidden = True
                    continue
                if name != target:
                    continue
                hdr = entry.header
                if hdr.typeflag == LINK:
                    next_target = safe_relative(hdr.linkname)
                    if next_target is not None:
                        yield from _materialise(source, index, next_target, link, depth + 1)
                    return
                if hdr.typeflag == DIR:
                    return
                out = link.copy(
                    typeflag=hdr.typeflag,
                    linkname=hdr.linkname if hdr.typeflag != REG else "",
                    size=hdr.size,
                    devmajor=hdr.devmajor,
                    devminor=hdr.devminor,
                )
                yield Entry(roundtrip(out), entry.data)
                return
        if hidden:
            return


def flatten(source: ImageSource) -> Generator[Entry, None, None]:
    """The image's filesystem as one stream of entries (top layer first, as upstream).

    A consumer that may stop early (on an error too) must ``close()`` it (``with closing(...)``):
    that closes the open layer, and with it the layer's read-ahead thread, right away instead of
    whenever the generator is collected (see :mod:`linuxkit.workers`)."""
    return _Flattener(source).run()


def write_flattened(source: ImageSource, out: IO[bytes]) -> None:
    """Write the flattened filesystem of ``source`` as a tar (``cache export --format filesystem``)."""
    writer = TarWriter(out)
    with closing(flatten(source)) as entries:
        for entry in entries:
            writer.write_header(entry.header)
            if entry.header.has_data:
                copy_data(writer, entry.data, entry.header.size)
    writer.close()
