"""Layer streams read ahead on a worker thread: same bytes, same digest checks, clean shutdown."""

from __future__ import annotations

import gzip
import io
import random
import threading

import pytest

from linuxkit.oci.digest import CHUNK, DigestError, VerifyingReader, of_bytes
from linuxkit.oci.layers import READ_AHEAD, READ_CHUNK, UncompressedLayer, open_uncompressed


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


def _until_error(blob: bytes, *, read_ahead: bool) -> tuple[bytes, str]:
    got = bytearray()
    with pytest.raises(DigestError) as err:
        layer = UncompressedLayer(_blob(blob, of_bytes(b"other")), read_ahead=read_ahead)
        while chunk := layer.read(CHUNK):
            got += chunk
    return bytes(got), err.value.message


@pytest.mark.parametrize("size", [30, 3000])
def test_digest_mismatch_comes_after_the_same_bytes_as_without_read_ahead(size: int) -> None:
    blob = gzip.compress(_data(size), mtime=0)
    ahead = _until_error(blob, read_ahead=True)
    inline = _until_error(blob, read_ahead=False)
    assert ahead == inline
    assert "content has digest" in ahead[1]


def test_verdict_comes_with_the_last_byte() -> None:
    """A consumer that reads exactly the blob's size (and no further) still gets the verdict."""
    data = random.Random(5).randbytes(3 * CHUNK + 17)
    blob = VerifyingReader(io.BytesIO(data), of_bytes(b"other"), len(data), "blob")
    with pytest.raises(DigestError, match="content has digest"):
        while blob.size < len(data):
            blob.read(CHUNK)
    longer = VerifyingReader(io.BytesIO(data + b"x"), of_bytes(data), len(data), "blob")
    with pytest.raises(DigestError, match=f"more than {len(data)} bytes"):
        while longer.size < len(data):
            longer.read(CHUNK)
    good = VerifyingReader(io.BytesIO(data), of_bytes(data), len(data), "blob")
    assert good.read(len(data)) == data and good.finished


def test_corrupt_gzip_says_cannot_decompress() -> None:
    blob = bytearray(gzip.compress(_data(2000), mtime=0))
    blob[len(blob) // 2 : len(blob) // 2 + 64] = bytes(64)
    with pytest.raises(DigestError, match="cannot decompress"), open_uncompressed(_blob(bytes(blob))) as layer:
        layer.read()


def test_early_close_stops_the_worker_and_still_checks_the_whole_blob() -> None:
    before = threading.active_count()
    # stopped early, far from the end (more than the read-ahead and any drain limit away): close
    # reads and hashes the rest of the compressed blob and gives the verdict all the same
    plain = random.Random(1).randbytes((READ_AHEAD + 12) * READ_CHUNK)
    for compress in (True, False):
        big = gzip.compress(plain, mtime=0) if compress else plain
        for read_ahead in (True, False):
            layer = UncompressedLayer(_blob(big, of_bytes(b"wrong")), read_ahead=read_ahead)
            assert layer.read(100) == plain[:100]
            with pytest.raises(DigestError, match="content has digest"):
                layer.close()
            assert layer.closed
            layer = UncompressedLayer(_blob(big), read_ahead=read_ahead)  # a good one closes quietly
            assert layer.read(10) == plain[:10]
            layer.close()
    assert threading.active_count() == before


def test_tampered_tail_after_the_tar_end_is_noticed_on_close() -> None:
    """Same size, different bytes far after what a tar reader reads: the close still notices."""
    tail = random.Random(3).randbytes((READ_AHEAD + 8) * READ_CHUNK)
    good = gzip.compress(b"T" * 10240 + tail, compresslevel=0, mtime=0)
    bad = gzip.compress(b"T" * 10240 + tail[:-1] + bytes([tail[-1] ^ 1]), compresslevel=0, mtime=0)
    assert len(good) == len(bad)
    for read_ahead in (True, False):
        layer = UncompressedLayer(_blob(bad, of_bytes(good)), read_ahead=read_ahead)
        assert layer.read(10240) == b"T" * 10240
        with pytest.raises(DigestError, match="content has digest"):
            layer.close()


def test_corrupt_gzip_with_a_wrong_digest_says_so() -> None:
    """A blob that does not decompress is read to its end: a wrong digest is what is reported."""
    good = gzip.compress(_data(2000), mtime=0) + random.Random(4).randbytes(3 * READ_CHUNK)
    bad = bytearray(good)
    bad[100:164] = bytes(64)
    with (
        pytest.raises(DigestError, match="content has digest"),
        open_uncompressed(_blob(bytes(bad), of_bytes(good))) as layer,
    ):
        layer.read()


def test_a_blob_verified_in_full_is_rechecked_up_to_the_next_stride() -> None:
    """Once a blob was verified in full, a later read that stops early is checked up to the next
    PREFIX_STRIDE boundary against that verified prefix: tampering in what it read is noticed."""
    from linuxkit.oci.digest import PREFIX_STRIDE

    data = random.Random(9).randbytes(3 * PREFIX_STRIDE + 100)
    digest = of_bytes(data)

    def reader(raw: bytes) -> VerifyingReader:
        return VerifyingReader(io.BytesIO(raw), digest, len(data), "blob")

    first = reader(data)
    first.read(10)
    first.settle()  # nothing verified yet: reads it all
    assert first.finished and first.size == len(data)
    again = reader(data)
    again.read(10)
    again.settle()
    assert again.finished and again.size == PREFIX_STRIDE  # only the first stride
    tampered = bytearray(data)
    tampered[PREFIX_STRIDE - 1] ^= 1  # in the stride read, after the 10 bytes used
    changed = reader(bytes(tampered))
    changed.read(10)
    with pytest.raises(DigestError, match="differs from the blob verified earlier"):
        changed.settle()
    later = reader(bytes(tampered))  # the same change, read past by a consumer
    later.read(PREFIX_STRIDE + 10)
    with pytest.raises(DigestError, match="differs from the blob verified earlier"):
        later.settle()
    short = reader(data[: PREFIX_STRIDE // 2])
    short.read(10)
    with pytest.raises(DigestError, match="bytes, expected"):
        short.settle()
