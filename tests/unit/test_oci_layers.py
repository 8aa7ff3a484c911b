"""Layer streams read ahead on a worker thread: same bytes, same digest checks, clean shutdown."""

from __future__ import annotations

import gzip
import io
import random
import threading

import pytest

from linuxkit.oci.digest import CHUNK, DigestError, VerifyingReader, of_bytes
from linuxkit.oci.layers import DRAIN_ON_CLOSE, READ_CHUNK, UncompressedLayer, open_uncompressed


def _data(n: int) -> bytes:
    rng = random.Random(n)
    return b"".join(rng.randbytes(300) + b"text " * rng.randint(1, 400) for _ in range(n))


def _blob(raw: bytes, digest: str | None = None) -> VerifyingReader:
    return VerifyingReader(io.BytesIO(raw), digest or of_bytes(raw), len(raw), "layer 0")


def _read_all(stream: io.RawIOBase | io.BufferedReader, sizes: list[int]) -> bytes:
    out = bytearray()
    i = 0
    while chunk := stream.read(sizes[i % len(sizes)]):
        out += chunk
        i += 1
    return bytes(out)


@pytest.mark.parametrize("compress", [True, False])
def test_read_ahead_gives_the_same_bytes(compress: bool) -> None:
    plain = _data(6000)  # several chunks
    assert len(plain) > 3 * READ_CHUNK
    blob = gzip.compress(plain, mtime=0) if compress else plain
    with UncompressedLayer(_blob(blob), read_ahead=True) as ahead:
        assert _read_all(ahead, [1, 512, 70_000, CHUNK, 3 * CHUNK]) == plain
    with UncompressedLayer(_blob(blob), read_ahead=False) as inline:
        assert _read_all(inline, [CHUNK]) == plain
    with open_uncompressed(_blob(blob)) as buffered:
        assert buffered.read() == plain


def _until_error(layer: UncompressedLayer) -> tuple[bytes, str]:
    got = bytearray()
    with pytest.raises(DigestError) as err:
        while chunk := layer.read(CHUNK):
            got += chunk
    return bytes(got), err.value.message


@pytest.mark.parametrize("size", [30, 3000])
def test_digest_mismatch_comes_after_the_same_bytes_as_without_read_ahead(size: int) -> None:
    blob = gzip.compress(_data(size), mtime=0)
    ahead = _until_error(UncompressedLayer(_blob(blob, of_bytes(b"other"))))
    inline = _until_error(UncompressedLayer(_blob(blob, of_bytes(b"other")), read_ahead=False))
    assert ahead == inline
    assert "content has digest" in ahead[1]


def test_corrupt_gzip_says_cannot_decompress() -> None:
    blob = bytearray(gzip.compress(_data(2000), mtime=0))
    blob[len(blob) // 2 : len(blob) // 2 + 64] = bytes(64)
    with pytest.raises(DigestError, match="cannot decompress"), open_uncompressed(_blob(bytes(blob))) as layer:
        layer.read()


def test_early_close_stops_the_worker_and_still_checks_a_nearly_read_blob() -> None:
    before = threading.active_count()
    # stopped early, far from the end: no verdict, no hang, no thread left behind
    big = gzip.compress(random.Random(1).randbytes(16 * READ_CHUNK), mtime=0)
    layer = UncompressedLayer(_blob(big, of_bytes(b"wrong")))
    assert len(layer.read(100)) == 100
    layer.close()
    assert threading.active_count() == before
    # a layer read only in part, with less than DRAIN_ON_CLOSE left: close checks the rest
    plain = random.Random(2).randbytes(READ_CHUNK + DRAIN_ON_CLOSE // 2)
    small = gzip.compress(plain, mtime=0)
    for read_ahead in (True, False):
        layer = UncompressedLayer(_blob(small, of_bytes(b"wrong")), read_ahead=read_ahead)
        assert layer.read(10) == plain[:10]
        with pytest.raises(DigestError):
            layer.close()
        layer = UncompressedLayer(_blob(small), read_ahead=read_ahead)  # a good one closes quietly
        assert layer.read(10) == plain[:10]
        layer.close()
    assert threading.active_count() == before
