"""The tar writer and reader: Go's header formats, PAX records, round trips."""

from __future__ import annotations

import io
import tarfile

import pytest
from rootfs_fakes import chardev, file, layer

from linuxkit.errors import BuildError
from linuxkit.tar.header import DEFAULT_MTIME, DIR, LINK, REG, SYMLINK, Header, format_pax_time, plan_header
from linuxkit.tar.reader import parse_pax_time, read_entries
from linuxkit.tar.writer import BLOCK, TarWriter, encode_header, format_pax_record

PAX = {"LINUXKIT.source": "docker.io/library/x:1", "LINUXKIT.location": "init[0]"}


def _write(*headers: tuple[Header, bytes]) -> bytes:
    out = io.BytesIO()
    writer = TarWriter(out)
    for hdr, data in headers:
        writer.write_header(hdr)
        writer.write(data)
    writer.close()
    return out.getvalue()


def _read(raw: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return tar.getmembers()


def test_plain_header_is_ustar_with_go_field_layout() -> None:
    block = encode_header(Header(name="Dockerfile", mode=0o644, size=5, mtime=DEFAULT_MTIME))
    assert len(block) == 512
    assert block[100:108] == b"0000644\x00"
    assert block[124:136] == b"00000000005\x00"
    assert block[136:148] == b"13075437410\x00"
    assert block[257:265] == b"ustar\x0000"
    assert block[329:345] == b"0000000\x000000000\x00"  # device numbers always written
    assert block[155] == ord(" ")


def test_pax_records_sorted_and_header_named_like_go() -> None:
    raw = encode_header(Header(name="etc/hosts", mode=0o644, mtime=DEFAULT_MTIME, pax=dict(PAX)))
    assert raw[:19] == b"etc/PaxHeaders.0/ho"
    body = raw[512 : 512 + 200]
    assert body.index(b"LINUXKIT.location") < body.index(b"LINUXKIT.source")
    assert len(raw) == 3 * 512


def test_pax_record_length_includes_itself() -> None:
    assert format_pax_record("a", "b") == b"6 a=b\n"
    record = format_pax_record("k", "v" * 94)
    assert record.startswith(b"101 ") and len(record) == 101  # the size grew a digit
    assert format_pax_record("k", "v" * 93).startswith(b"99 ")


@pytest.mark.parametrize("name", ["a" * 100, "d/" + "b" * 150, "x/" * 80 + "y"])
def test_long_names_round_trip(name: str) -> None:
    raw = _write((Header(name=name, mode=0o644, size=1, mtime=DEFAULT_MTIME, pax=dict(PAX)), b"z"))
    (member,) = _read(raw)
    assert member.name == name and member.pax_headers["LINUXKIT.source"] == PAX["LINUXKIT.source"]


def test_long_splittable_name_without_records_uses_ustar_prefix() -> None:
    name = "d" * 60 + "/" + "f" * 60
    choice, _ = plan_header(Header(name=name, mtime=DEFAULT_MTIME))
    raw = encode_header(Header(name=name, mtime=DEFAULT_MTIME))
    assert len(raw) == 512 and raw[345:405] == b"d" * 60
    assert choice == 2


def test_big_ids_sizes_and_devices() -> None:
    hdr = Header(name="f", mode=0o4755, uid=3_000_000, gid=2**32 - 1, mtime=DEFAULT_MTIME, pax=dict(PAX))
    dev = Header(name="dev/null", typeflag="3", mode=0o666, devmajor=1, devminor=3, mtime=DEFAULT_MTIME)
    raw = _write((hdr, b""), (dev, b""))
    first, second = _read(raw)
    assert (first.uid, first.gid, first.mode) == (3_000_000, 2**32 - 1, 0o4755)
    assert first.pax_headers["uid"] == "3000000"
    assert second.ischr() and (second.devmajor, second.devminor) == (1, 3)


def test_sub_second_times_and_non_ascii_need_pax() -> None:
    _, records = plan_header(Header(name="héllo", mtime=(5, 500_000_000), atime=(1, 0)))
    assert records == {"path": "héllo", "mtime": "5.5", "atime": "1"}
    assert format_pax_time((-2, 500_000_000)) == "-1.5"
    assert parse_pax_time("-1.5") == (-2, 500_000_000)


def test_writer_rejects_bad_sizes() -> None:
    writer = TarWriter(io.BytesIO())
    writer.write_header(Header(name="f", size=2, mtime=DEFAULT_MTIME))
    with pytest.raises(BuildError):
        writer.write(b"abc")
    with pytest.raises(BuildError):
        writer.write_header(Header(name="g"))


def test_trailing_slash_on_regular_file_is_refused() -> None:
    with pytest.raises(BuildError):
        encode_header(Header(name="f/", typeflag=REG))


def test_reader_yields_go_headers() -> None:
    raw = layer(
        file("./a/" + "n" * 120, "x", uid=3_000_000),
        chardev("dev/c", 4, 5),
        file("t", "t", mtime=1.25),
        fmt=tarfile.GNU_FORMAT,
    )
    got = [(e.header.name, e.header.uid, e.header.typeflag, e.header.mtime) for e in read_entries(io.BytesIO(raw))]
    assert got[0] == ("./a/" + "n" * 120, 3_000_000, REG, (1_600_000_000, 0))
    assert got[1][2] == "3"
    assert got[2][3] == (1, 0)


def test_reader_keeps_pax_records_verbatim() -> None:
    raw = layer(file("p", "p", mtime=1.5, pax_headers={"SCHILY.xattr.user.x": "v"}), fmt=tarfile.PAX_FORMAT)
    for entry in read_entries(io.BytesIO(raw)):
        assert entry.header.mtime == (1, 500_000_000)
        assert entry.header.pax is not None and entry.header.pax["SCHILY.xattr.user.x"] == "v"
        assert entry.data.read() == b"p"


def test_types_and_blocks() -> None:
    raw = _write(
        (Header(name="d", typeflag=DIR, mode=0o755, mtime=DEFAULT_MTIME), b""),
        (Header(name="l", typeflag=SYMLINK, linkname="/x", mtime=DEFAULT_MTIME), b""),
        (Header(name="h", typeflag=LINK, linkname="d/f", mtime=DEFAULT_MTIME), b""),
    )
    assert len(raw) % BLOCK == 0 and raw.endswith(bytes(1024))
    kinds = [(m.name, m.type) for m in _read(raw)]
    assert kinds == [("d", tarfile.DIRTYPE), ("l", tarfile.SYMTYPE), ("h", tarfile.LNKTYPE)]
