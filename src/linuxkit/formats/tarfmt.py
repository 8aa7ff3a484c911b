"""The streamable formats: ``tar`` (the rootfs tar itself) and ``docker`` (plus a ``Dockerfile``).

Both write straight to ``out`` (a file or stdout); nothing is staged on disk.
"""

from __future__ import annotations

from dataclasses import replace
from typing import IO

from .. import log
from ..config import schema
from ..rootfs.assemble import ImageLookup, RootfsSettings, assemble_with
from ..tar.header import DEFAULT_MTIME, REG, Header
from ..tar.writer import TarSink

#: The Dockerfile upstream appends for ``--format docker`` (byte for byte).
DOCKERFILE = b'\nFROM scratch\n\nCOPY . ./\n\nENTRYPOINT ["/bin/rc.init"]\n'


def add_dockerfile(sink: TarSink) -> None:
    """Append the ``Dockerfile`` entry (no PAX records, so Go writes it as plain USTAR)."""
    log.info("  Adding Dockerfile")
    sink.write_header(Header(name="Dockerfile", typeflag=REG, mode=0o644, size=len(DOCKERFILE), mtime=DEFAULT_MTIME))
    sink.write(DOCKERFILE)


def write_tar(moby: schema.Moby, images: ImageLookup, out: IO[bytes], settings: RootfsSettings) -> None:
    """``--format tar``: the rootfs tar."""
    assemble_with(moby, images, out, settings)


def write_docker(moby: schema.Moby, images: ImageLookup, out: IO[bytes], settings: RootfsSettings) -> None:
    """``--format docker``: the rootfs tar with a ``Dockerfile`` after the ``files`` (before any SBOM)."""
    assemble_with(moby, images, out, replace(settings, additions=(add_dockerfile, *settings.additions)))
