"""Upstream's clean-up of an image's filesystem as it goes into the rootfs (``ImageTar``).

Applied to every image put in the rootfs: the kernel image, init images (at ``/``, with
``etc/resolv.conf`` turned into a symlink), volume images (below their ``lower/``, also with the
symlink) and container bundles (below ``rootfs/`` or ``lower/``, with resolv.conf contents).

* dropped: ``.dockerenv``, ``Dockerfile``, ``dev/console``, ``dev/pts``, ``dev/shm``, ``etc/hostname``;
* replaced: ``etc/hosts`` and ``etc/resolv.conf`` (contents, or the resolv.conf symlink);
* guaranteed, appended at the end in name order: ``dev dev/pts dev/shm etc etc/hosts
  etc/mtab etc/resolv.conf proc sys``. Upstream's bookkeeping never recognises the directories
  (it compares cleaned names with ``dev/``), nor ``etc/hosts``/``etc/resolv.conf`` (replaced
  entries are not recorded), so those are always appended, even when already present; only an
  image's own ``etc/mtab`` suppresses the appended one. We reproduce that byte for byte;
* every entry gets the PAX records ``LINUXKIT.source`` and ``LINUXKIT.location``; names get the
  prefix, and so do hard link targets.

Deliberate difference: a replaced ``etc/hosts``/``etc/resolv.conf`` that is not a regular file
in the image becomes a regular file (upstream fails with "write too long").
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

from ..errors import BuildError
from ..tar.header import DEFAULT_MTIME, DIR, LINK, PAX_LOCATION, PAX_SOURCE, REG, SYMLINK, Header
from ..tar.reader import Entry

RESOLVCONF_SYMLINK = "/run/resolvconf/resolv.conf"

EXCLUDE = frozenset({".dockerenv", "Dockerfile", "dev/console", "dev/pts", "dev/shm", "etc/hostname"})

HOSTS = (
    "127.0.0.1       localhost\n"
    "::1     localhost ip6-localhost ip6-loopback\n"
    "fe00::0 ip6-localnet\n"
    "ff00::0 ip6-mcastprefix\n"
    "ff02::1 ip6-allnodes\n"
    "ff02::2 ip6-allrouters\n"
)
RESOLV_CONF = "\n# no resolv.conf configured\n"
REPLACE = {"etc/hosts": HOSTS.encode(), "etc/resolv.conf": RESOLV_CONF.encode()}

# (upstream's lookup key, name, type, mode, link target), in the key order upstream sorts them.
_TOUCH = (
    ("dev/", "dev", DIR, 0o755, ""),
    ("dev/pts/", "dev/pts", DIR, 0o755, ""),
    ("dev/shm/", "dev/shm", DIR, 0o755, ""),
    ("etc/", "etc", DIR, 0o755, ""),
    ("etc/hosts", "etc/hosts", REG, 0o644, ""),
    ("etc/mtab", "etc/mtab", SYMLINK, 0o755, "/proc/mounts"),
    ("etc/resolv.conf", "etc/resolv.conf", REG, 0o644, ""),
    ("proc/", "proc", DIR, 0o755, ""),
    ("sys/", "sys", DIR, 0o755, ""),
)
_TOUCH_KEYS = frozenset(key for key, *_ in _TOUCH)


def records(source: str, location: str) -> dict[str, str]:
    return {PAX_SOURCE: source, PAX_LOCATION: location}


def prefix_dirs(prefix: str, location: str, source: str) -> Iterator[Header]:
    """Upstream's ``tarPrefix``: a directory entry for each component of ``prefix`` (``a/b/``)."""
    if not prefix:
        return
    if not prefix.endswith("/"):
        raise BuildError(f"path does not end with /: {prefix}")
    path = prefix[:-1]
    if path.startswith("/"):
        raise BuildError(f"path should be relative: {path}")
    parts = path.split("/")
    for i in range(len(parts)):
        yield Header(
            name="/".join(parts[: i + 1]),
            typeflag=DIR,
            mode=0o755,
            mtime=DEFAULT_MTIME,
            pax=records(source, location),
        )


def image_entries(
    entries: Iterable[Entry], *, prefix: str, location: str, source: str, resolv: str = ""
) -> Iterator[Entry]:
    """The sanitised entries of one flattened image, placed below ``prefix`` (``""`` or ``a/b/``)."""
    touched: set[str] = set()
    for entry in entries:
        hdr = entry.header.copy(want_pax=True)
        hdr.pax = {**(hdr.pax or {}), **records(source, location)}
        name = hdr.name
        if name in EXCLUDE:
            continue
        if name in REPLACE:
            if name != "etc/resolv.conf" or not resolv:
                contents = REPLACE[name]
                hdr.name, hdr.size, hdr.mtime = prefix + name, len(contents), DEFAULT_MTIME
                if hdr.typeflag != REG:
                    hdr.typeflag, hdr.linkname = REG, ""
                yield Entry(hdr, io.BytesIO(contents))
            else:
                hdr.name, hdr.size, hdr.typeflag, hdr.linkname = prefix + name, 0, SYMLINK, resolv
                hdr.mtime = DEFAULT_MTIME
                yield Entry(hdr, io.BytesIO())
            continue
        if name in _TOUCH_KEYS:
            hdr.mtime = DEFAULT_MTIME
            touched.add(name)
        hdr.name = prefix + name
        if hdr.typeflag == LINK:
            hdr.linkname = prefix + hdr.linkname
        yield Entry(hdr, entry.data)
    yield from touch_entries(touched, prefix=prefix, location=location, source=source, resolv=resolv)


def touch_entries(touched: set[str], *, prefix: str, location: str, source: str, resolv: str) -> Iterator[Entry]:
    """The guaranteed entries that were not seen (see the module docstring for which those are)."""
    for key, name, typeflag, mode, link in _TOUCH:
        if key in touched:
            continue
        hdr = Header(
            name=prefix + name,
            typeflag=typeflag,
            mode=mode,
            linkname=link,
            mtime=DEFAULT_MTIME,
            pax=records(source, location),
        )
        contents = REPLACE.get(name, b"")
        if name == "etc/resolv.conf" and resolv:
            hdr.typeflag, hdr.linkname, contents = SYMLINK, resolv, b""
        hdr.size = len(contents)
        yield Entry(hdr, io.BytesIO(contents))
