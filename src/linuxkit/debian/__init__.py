"""Debian repository client: find, verify, resolve, download and unpack Debian packages (no dpkg, no apt).

Typical use::

    sources = debian_sources()                      # mirrors from flags, env or /etc/apt
    archive = Archive(sources, "amd64", cache_dir)
    archive.load()                                   # signed InRelease -> verified Packages indexes
    packages = resolve(archive, ["busybox-static"])  # Depends/Pre-Depends closure
    debs = fetch_debs([p.ref() for p in packages], sources, cache_dir)
    for info, data in iter_deb_data(debs[ref]): ...
"""

from __future__ import annotations

from .deb import deb_control, iter_deb_data
from .download import fetch_debs
from .index import Archive
from .model import DebRef, Package, Relation, parse_relation, parse_relations
from .resolver import resolve
from .sources import DEFAULT_SUITES, Source, debian_sources, uri_for
from .version import compare_versions, satisfies

__all__ = [
    "DEFAULT_SUITES",
    "Archive",
    "DebRef",
    "Package",
    "Relation",
    "Source",
    "compare_versions",
    "deb_control",
    "debian_sources",
    "fetch_debs",
    "iter_deb_data",
    "parse_relation",
    "parse_relations",
    "resolve",
    "satisfies",
    "uri_for",
]
