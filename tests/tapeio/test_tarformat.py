"""Tar headers: one 512-byte ustar block when a member fits ustar, pax records
only when needed, read back by real GNU tar and by pytp's own parser, which
refuses hostile headers at least as strictly as Python's ``tarfile`` did
(issue 9, "Tape space"; docs/format.md#headers)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from pytp.tapeio.tarformat import (
    END_OF_ARCHIVE,
    RECORD,
    MemberHeader,
    build_header,
    byte_sum,
    member_essentials,
    padded,
    parse_header,
)

BLOCK = 512 << 10  # the default block size
SECOND = 1_000_000_000
T = 1_700_000_000 * SECOND  # a whole second

#: (id, header, headers' length): every way a member can need, or not need, pax records
VARIANTS = [
    (
        "short",
        MemberHeader(name=b"a/b.txt", kind="file", size=5, uid=1000, gid=1000, uname="u", gname="g", mtime_ns=T),
        512,
    ),
    ("dir", MemberHeader(name=b"a/", kind="dir", mode=0o755, mtime_ns=T), 512),
    ("name-100", MemberHeader(name=b"n" * 100, kind="file", size=1, mtime_ns=T), 512),
    ("prefix-split", MemberHeader(name=b"p" * 150 + b"/" + b"n" * 100, kind="file", size=3, mtime_ns=T), 512),
    ("prefix-split-dir", MemberHeader(name=b"d/" * 60 + b"e/", kind="dir", mode=0o700, mtime_ns=T), 512),
    ("symlink", MemberHeader(name=b"l", kind="symlink", linkname=b"../t" * 25, mode=0o777, mtime_ns=T), 512),
    ("hardlink", MemberHeader(name=b"h", kind="hardlink", linkname=b"a/b.txt", mtime_ns=T), 512),
    ("fifo", MemberHeader(name=b"f", kind="fifo", mtime_ns=T), 512),
    ("subsecond", MemberHeader(name=b"s", kind="file", size=2, mtime_ns=T + 123_456_789), 1536),
    ("no-split", MemberHeader(name=b"x" * 101, kind="file", size=1, mtime_ns=T), 1536),
    ("long-name", MemberHeader(name=b"q/" * 300 + b"z", kind="file", size=1, mtime_ns=T), 2048),
    ("utf8-name", MemberHeader(name="naïve-ü.txt".encode(), kind="file", size=1, mtime_ns=T), 1536),
    ("non-utf8-name", MemberHeader(name=b"bad-\xff\xfe", kind="file", size=1, mtime_ns=T), 1536),
    ("long-link", MemberHeader(name=b"l2", kind="symlink", linkname=b"t" * 101, mtime_ns=T), 1536),
    ("big-uid", MemberHeader(name=b"u", kind="file", uid=8**7, gid=3_000_000, mtime_ns=T), 1536),
    ("long-owner", MemberHeader(name=b"o", kind="file", uname="x" * 33, gname="grüppe", mtime_ns=T), 1536),
    ("old-time", MemberHeader(name=b"old", kind="file", mtime_ns=-5 * SECOND), 1536),
    ("old-subsecond", MemberHeader(name=b"older", kind="file", mtime_ns=-1_500_000_000), 1536),
    ("comment", MemberHeader(name=b"c", kind="file", size=1, mtime_ns=T, comment="pytp continuation"), 1536),
    ("xattr", MemberHeader(name=b"x", kind="file", size=1, mtime_ns=T, xattrs=((b"user.k=%", b"v\0\xff"),)), 1536),
]


def archive_of(variants: list[tuple[str, MemberHeader, int]]) -> bytes:
    """An archive of those members, their data a repeated letter, padded to whole 512 KiB blocks."""
    out = bytearray()
    for _, header, _ in variants:
        out += build_header(header)
        if header.kind == "file":
            out += (b"d" * header.size).ljust(padded(header.size), b"\0")
    out += END_OF_ARCHIVE
    out += b"\0" * (-len(out) % BLOCK)
    return bytes(out)


@pytest.mark.parametrize(("header", "length"), [v[1:] for v in VARIANTS], ids=[v[0] for v in VARIANTS])
def test_headers_take_512_bytes_when_they_fit_ustar_and_read_back_whole(header: MemberHeader, length: int) -> None:
    encoded = build_header(header)
    assert len(encoded) == length
    parsed = parse_header(encoded)
    expected_name = header.name.rstrip(b"/") if header.kind == "dir" else header.name
    assert parsed == MemberHeader(**{**header.__dict__, "name": expected_name, "size": header.size})


@pytest.mark.parametrize(("header", "length"), [v[1:] for v in VARIANTS], ids=[v[0] for v in VARIANTS])
def test_python_tarfile_reads_every_variant_the_same(header: MemberHeader, length: int) -> None:
    data = archive_of([("", header, length)])
    with tarfile.open(fileobj=io.BytesIO(data), encoding="utf-8", errors="surrogateescape") as archive:
        info = archive.next()
    assert info is not None and info.offset_data == length
    assert info.name.encode("utf-8", "surrogateescape") == header.name.rstrip(b"/")
    assert (info.size, info.uid, info.gid, info.mode) == (header.size, header.uid, header.gid, header.mode)
    assert info.linkname.encode("utf-8", "surrogateescape") == header.linkname
    assert round(info.mtime * SECOND) // 1000 == header.mtime_ns // 1000  # tarfile keeps a float


def test_gnu_tar_lists_and_extracts_every_variant_at_512_kib_blocks(tmp_path: Path) -> None:
    # Devices need root to extract; the rest is every variant above.
    variants = VARIANTS
    archive = tmp_path / "a.tar"
    archive.write_bytes(archive_of(variants))
    listed = subprocess.run(
        ["tar", "-b", "1024", "--quoting-style=literal", "-tf", str(archive)], capture_output=True, check=True
    ).stdout
    assert listed.split(b"\n")[:-1] == [h.name for _, h, _ in variants]
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-b", "1024", "-xf", str(archive), "-C", str(out)], check=True, capture_output=True)
    for _, header, _ in variants:
        path = out / os.fsdecode(header.name)
        st = os.lstat(path)
        if header.kind == "file":
            assert path.read_bytes() == b"d" * header.size
        if header.kind == "symlink":
            assert os.readlink(path) == os.fsdecode(header.linkname)
        elif header.kind != "dir":  # a later member may land in a directory and move its time
            assert st.st_mtime_ns == header.mtime_ns, header.name


def test_a_sub_second_time_keeps_its_pax_record_and_a_whole_second_does_not() -> None:
    whole = build_header(MemberHeader(name=b"w", kind="file", mtime_ns=T))
    fine = build_header(MemberHeader(name=b"w", kind="file", mtime_ns=T + 1))
    assert b"mtime=" not in whole and len(whole) == RECORD
    assert b" mtime=1700000000.000000001\n" in fine
    assert parse_header(fine).mtime_ns == T + 1
    before_1970 = build_header(MemberHeader(name=b"w", kind="file", mtime_ns=-1_500_000_000))
    assert b" mtime=-1.500000000\n" in before_1970  # the sign applies to the fraction too (POSIX)


@pytest.mark.parametrize("length", [0, 1, 255, 256, 257, 511, 512, 513, 4097])
def test_byte_sum_is_the_sum_of_the_bytes(length: int) -> None:
    for data in (b"\xff" * length, os.urandom(length), b"\0" * length):
        assert byte_sum(data) == sum(data)


def test_the_prefix_split_is_gnu_tars_longest_prefix() -> None:
    name = b"a" * 50 + b"/" + b"b" * 50 + b"/" + b"c" * 50
    block = build_header(MemberHeader(name=name, kind="file", mtime_ns=T))
    assert block[345:500].rstrip(b"\0") == b"a" * 50 + b"/" + b"b" * 50
    assert block[:100].rstrip(b"\0") == b"c" * 50


def _outcome(parse, data: bytes) -> object:  # type: ignore[no-untyped-def]
    try:
        return parse(data)
    except ValueError:
        return ValueError


def _full(data: bytes) -> tuple[bytes, str, int]:
    header = parse_header(data)
    return header.name, header.kind, header.size


def test_member_essentials_agrees_with_the_full_parser_on_every_variant_and_every_flipped_byte() -> None:
    """Verify's quick reading gives what the full parser gives, and refuses what it refuses,
    whatever byte of a header is damaged (every byte of every variant, flipped two ways)."""
    for _, header, _ in VARIANTS:
        encoded = build_header(header)
        assert member_essentials(encoded) == _full(encoded)
        for index in range(len(encoded)):
            for mask in (0x01, 0x80):
                damaged = bytearray(encoded)
                damaged[index] ^= mask
                assert _outcome(member_essentials, bytes(damaged)) == _outcome(_full, bytes(damaged)), (header, index)


# ------------------------------------------------------------------ hostile headers


def _ustar(**fields: bytes) -> bytearray:
    """A valid one-member header with some fields replaced (checksum redone unless given)."""
    block = bytearray(build_header(MemberHeader(name=b"f", kind="file", size=1, mtime_ns=T)))
    spans = {"mode": (100, 108), "uid": (108, 116), "size": (124, 136), "mtime": (136, 148), "chksum": (148, 156)}
    for key, value in fields.items():
        start, end = spans[key]
        block[start:end] = value.ljust(end - start, b"\0")
    if "chksum" not in fields:
        block[148:156] = b" " * 8
        block[148:156] = b"%06o\0 " % sum(block)
    return block


def _pax(records: bytes, size: int | None = None) -> bytes:
    """A pax extended header with these raw record bytes, then a valid member block."""
    head = _ustar(size=b"%011o" % (len(records) if size is None else size))
    head[156:157] = b"x"
    head[148:156] = b" " * 8
    head[148:156] = b"%06o\0 " % sum(head)
    return bytes(head) + records.ljust(padded(len(records)), b"\0") + bytes(_ustar())


def _tarfile_refuses(data: bytes) -> bool:
    """Whether Python's tarfile (what pytp used before) refuses these header bytes."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data + END_OF_ARCHIVE), mode="r:") as archive:
            info = archive.next()
    except (tarfile.TarError, EOFError, ValueError):
        return True
    return info is None


HOSTILE = {
    "bad checksum": bytes(_ustar(chksum=b"000001\0 ")),
    "non-octal checksum": bytes(_ustar(chksum=b"9x\0")),
    "non-octal size": bytes(_ustar(size=b"12345678x")),
    "signed size": bytes(_ustar(size=b"-1")),
    "non-octal uid": bytes(_ustar(uid=b"1_0")),
    "non-octal mode": bytes(_ustar(mode=b"0o777")),
    "base-256 negative size": bytes(_ustar(size=b"\xff" * 12)),
    "zero block": b"\0" * RECORD,
    "cut short": bytes(_ustar())[:300],
    "pax length too short": _pax(b"3 a=\n"),
    "pax length past the end": _pax(b"99 path=x\n"),
    "pax length not a number": _pax(b"1x path=x\n"),
    "pax record without newline": _pax(b"11 path=xyz"),
    "pax length off by one": _pax(b"10 path=xy\n"),
    "pax record without key": _pax(b"8 =xyz\n\n"),
    "pax record without =": _pax(b"9 pathxy\n"),
    "pax size not decimal": _pax(b"11 size=-5\n"),
    "pax mtime not a time": _pax(b"15 mtime=1e9.5\n"),
    "extension claims more than there is": _pax(b"11 path=xy\n", size=4096),
    "extension without its member": _pax(b"11 path=xy\n")[:-RECORD],
    "bytes after the member's header": bytes(_ustar()) + bytes(_ustar()),
}


@pytest.mark.parametrize("data", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_headers_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        parse_header(data)
    with pytest.raises(ValueError):
        member_essentials(data)  # verify's quick reading refuses it too


def test_whatever_tarfile_refused_is_refused_still() -> None:
    refused_by_tarfile = [name for name, data in HOSTILE.items() if _tarfile_refuses(data)]
    assert "bad checksum" in refused_by_tarfile  # the reference itself works
    for name in refused_by_tarfile:
        with pytest.raises(ValueError):
            parse_header(HOSTILE[name])


def test_base_256_numbers_are_read_as_gnu_tar_writes_them() -> None:
    big = 9 * 8**11  # too large for 11 octal digits
    data = _ustar(size=b"\x80" + big.to_bytes(11, "big"))
    assert parse_header(bytes(data)).size == big
    assert member_essentials(bytes(data)) == (b"f", "file", big)
