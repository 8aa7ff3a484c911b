"""Small helpers shared by the cache tests."""

from __future__ import annotations

import io
import tarfile

from linuxkit.oci.image import Platform

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")


def make_tar(files: dict[str, bytes]) -> bytes:
    """An uncompressed layer tar holding ``files`` (name -> content), sorted by name."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
