"""The kernel file of a Debian kernel image: an uncompressed arm64/riscv64 ``Image`` shipped as a
reproducible gzip (upstream's ``Image.gz``), anything else (x86's ``bzImage``) as it is."""

from __future__ import annotations

import gzip
import io
import subprocess
from pathlib import Path

import pytest

from linuxkit.packages import kernel_image


def _image(magic: bytes, size: int = 3 << 20) -> bytes:
    """An ``Image`` header (the magic at 0x38) followed by data that compresses like code: not uniform."""
    header = bytearray(64)
    header[0:2] = b"MZ"  # Debian's arm64 Image is an EFI PE too
    header[0x38:0x3C] = magic
    body = bytes((i * 7 + (i >> 9)) & 0xFF for i in range(size - 64))
    return bytes(header) + body


@pytest.mark.parametrize(("magic", "arch"), [(b"ARM\x64", "arm64"), (b"RSC\x05", "riscv64")])
def test_an_uncompressed_image_is_recognised(magic: bytes, arch: str) -> None:
    assert kernel_image.image_arch(_image(magic, 4096)) == arch


def test_a_bzimage_or_a_gzip_is_not_an_uncompressed_image() -> None:
    bzimage = bytearray(4096)
    bzimage[0x1FE:0x200] = b"\x55\xaa"
    bzimage[0x202:0x206] = b"HdrS"
    assert kernel_image.image_arch(bytes(bzimage)) is None
    assert kernel_image.image_arch(gzip.compress(_image(b"ARM\x64", 4096))) is None
    assert kernel_image.image_arch(b"short") is None


def test_gzip_is_reproducible_and_gunzips_to_the_image(tmp_path: Path) -> None:
    data = _image(b"ARM\x64")
    first, second = io.BytesIO(), io.BytesIO()
    written = kernel_image.gzip_reproducibly(io.BytesIO(data), first)
    kernel_image.gzip_reproducibly(io.BytesIO(data), second)
    out = first.getvalue()
    assert written == len(out) and out == second.getvalue()
    # no name, mtime 0, maximum compression, OS unknown; what gzip(1) itself reads back
    assert out[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    assert gzip.decompress(out) == data
    path = tmp_path / "Image.gz"
    path.write_bytes(out)
    test = subprocess.run(["gzip", "-t", str(path)], capture_output=True)
    assert test.returncode == 0, test.stderr
    assert subprocess.run(["gzip", "-dc", str(path)], capture_output=True, check=True).stdout == data
    assert len(out) < len(data) // 2


def test_kernel_file_gzips_an_image_and_leaves_a_bzimage(tmp_path: Path) -> None:
    image = tmp_path / "vmlinuz-arm64"
    image.write_bytes(_image(b"ARM\x64"))
    shipped = kernel_image.kernel_file(image, tmp_path / "kernel.gz")
    assert shipped == tmp_path / "kernel.gz"
    assert gzip.decompress(shipped.read_bytes()) == image.read_bytes()
    bzimage = tmp_path / "vmlinuz-amd64"
    bzimage.write_bytes(b"\x00" * 0x202 + b"HdrS" + bytes(8192))
    assert kernel_image.kernel_file(bzimage, tmp_path / "other.gz") == bzimage
    assert not (tmp_path / "other.gz").exists()
