"""Verify's in-place header reading (``tarformat.quick_essentials``, issue 9).

It reads the headers GNU tar and pytp write straight out of a chunk of the
tape file and answers None for anything else.  What it accepts must be what
``parse_header`` accepts, with the same name, kind and size: single flipped
bytes (``test_tarformat.py``) break a checksum, so here every field that the
quick reading judges by its form gets every odd form with a correct checksum.
"""

from __future__ import annotations

import os

import pytest

from pytp.tapeio.tarformat import RECORD, MemberHeader, build_header, member_essentials, parse_header, quick_essentials
from tests.tapeio.test_tarformat import VARIANTS

T = 1_700_000_000 * 1_000_000_000

#: numeric fields of a ustar block: mode, uid, gid, size, mtime, devmajor, devminor
NUMBER_FIELDS = {"mode": (100, 108), "uid": (108, 116), "gid": (116, 124), "size": (124, 136)}
NUMBER_FIELDS |= {"mtime": (136, 148), "devmajor": (329, 337), "devminor": (337, 345)}


def _form_values(width: int) -> list[bytes]:
    """A numeric field of ``width`` bytes written every way a writer (or damage) could."""
    digits = width - 1
    return [
        b"0" * digits + b"\0",  # GNU tar's and pytp's
        b"1" * digits + b"\0",
        b"0" * (digits - 1) + b"1 ",  # space-ended (old writers)
        b" " * 2 + b"0" * (digits - 3) + b"1\0",  # leading spaces
        b"0" * (digits - 1) + b"1" + b" ",
        b"\0" * width,  # empty: 0
        b"01\0" + b"\0" * (width - 3),  # short, NUL-padded
        b"01\0" + b"7" * (width - 3),  # digits after the first NUL (ignored by the parsers)
        b"+" + b"0" * (digits - 1) + b"\0",
        b"-" + b"0" * (digits - 1) + b"\0",
        b"0" * (digits - 1) + b"8\0",  # not octal
        b"0" * (digits - 1) + b"9\0",
        b"0" * (digits - 2) + b"_1\0",  # int() would take it
        b"0x" + b"0" * (digits - 2) + b"\0",
        b"\x80" + b"\0" * (width - 2) + b"\x01",  # base-256
        b"\xff" * width,  # base-256, negative
        b"0" * digits + b"7",  # no NUL at all
    ]


def _with_checksum(block: bytearray, form: bytes = b"%06o\0 ") -> bytes:
    """``block`` with its checksum field redone (in ``form``)."""
    block[148:156] = b" " * 8
    block[148:156] = (form % sum(block)).ljust(8, b"\0")[:8]
    return bytes(block)


def _essentials(data: bytes) -> object:
    try:
        header = parse_header(data)
    except ValueError:
        return ValueError
    return header.name, header.kind, header.size


def _agree(data: bytes) -> None:
    """The quick reading gives parse_header's answer or none; member_essentials always gives it."""
    expected = _essentials(data)
    buf = os.urandom(777) + data + os.urandom(100)  # in place, among other bytes
    quick = quick_essentials(buf, 777, len(data))
    assert quick is None or quick == expected, (data, quick, expected)
    try:
        assert member_essentials(data) == expected
    except ValueError:
        assert expected is ValueError


@pytest.mark.parametrize(("header", "length"), [v[1:] for v in VARIANTS], ids=[v[0] for v in VARIANTS])
def test_every_header_pytp_writes_is_read_in_place(header: MemberHeader, length: int) -> None:
    encoded = build_header(header)
    buf = b"x" * 1000 + encoded + b"y" * 5000
    assert quick_essentials(buf, 1000, length) == _essentials(encoded)  # never None for these


@pytest.mark.parametrize("field", NUMBER_FIELDS, ids=NUMBER_FIELDS)
@pytest.mark.parametrize("pax", [False, True], ids=["ustar", "after-pax"])
def test_a_numeric_field_in_any_form_is_read_as_the_full_parser_reads_it(field: str, pax: bool) -> None:
    start, end = NUMBER_FIELDS[field]
    header = MemberHeader(name=b"f", kind="file", size=3, mtime_ns=T + (1 if pax else 0))
    encoded = build_header(header)
    head, block = encoded[:-RECORD], bytearray(encoded[-RECORD:])
    for value in _form_values(end - start):
        block[start:end] = value
        _agree(head + _with_checksum(block))


def test_the_pax_headers_size_field_in_any_form_is_read_as_the_full_parser_reads_it() -> None:
    encoded = build_header(MemberHeader(name=b"f", kind="file", size=3, mtime_ns=T + 1))
    pax, rest = bytearray(encoded[:RECORD]), encoded[RECORD:]
    # (the record is 30 bytes: "000000000036" read as 11 digits would be 3, padded alike)
    for value in [*_form_values(12), b"%011o\0" % 0, b"%011o\0" % 512, b"%011o\0" % 513, b"000000000036"]:
        pax[124:136] = value
        _agree(_with_checksum(pax) + rest)


@pytest.mark.parametrize(
    "form", [b"%06o\0 ", b"%06o  ", b"%06o\0\0", b"%07o\0", b"%o\0", b" %05o\0", b"%06o \0", b"0%06o"]
)
def test_a_checksum_in_any_form_is_judged_as_the_full_parser_judges_it(form: bytes) -> None:
    for header in (
        MemberHeader(name=b"f", kind="file", size=3, mtime_ns=T),
        MemberHeader(name=b"\xe9" * 90, kind="dir"),
    ):
        encoded = build_header(header)
        _agree(encoded[:-RECORD] + _with_checksum(bytearray(encoded[-RECORD:]), form))
        # the signed sum some old writers used, for a block with bytes of 128 and more
        block = bytearray(encoded[-RECORD:])
        block[148:156] = b" " * 8
        signed = sum(block) - 256 * sum(1 for byte in block if byte >= 128)
        block[148:156] = b"%06o\0 " % signed
        _agree(encoded[:-RECORD] + bytes(block))


def _record(key: bytes, value: bytes) -> bytes:
    """One well-framed pax record."""
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode() + body


PAX_RECORDS = [
    b"30 mtime=1796233316.223107560\n",
    b"11 path=xyz",  # the length frames it, but no newline ends it
    b"11 path=xy\0",
    _record(b"GNU.sparse.major", b"1") + _record(b"GNU.sparse.realsize", b"9") + _record(b"GNU.sparse.name", b"s"),
    _record(b"path", b"p" * 700),  # a long name: two records' blocks
    b"30 mtime=1796233316.223107560\n12 path=a/b\n",  # two records
    b"12 path=a/b\n30 mtime=1796233316.223107560\n\0\0",  # NULs after the records
    b"\0" * 20,  # no record at all
    b"13 path=a/b/\n",  # a trailing slash
    b"11 path=ab\n",  # length too long by one
    b"12 path=a/b\n" + b"x",  # bytes after the last record
    b"4 a=\n",  # too short to be a record
    b"08 path=\n",  # a leading zero, an empty value
    b" 9 path=x\n",
    b"10 =value\n",
    b"10 pathabc\n",
    b"12 size=1234\n",
    b"12 size=-123\n",
    b"11 uid=1e3\n",
    b"14 gid=123456\n",
    b"16 mtime=-1.5e3\n",
    b"13 mtime=-1.5\n",
    b"12 mtime=15.\n",
    b"11 mtime=.5\n",
    b"22 GNU.sparse.major=1\n",
    b"24 SCHILY.xattr.a=\xff\0b\n",
    b"23 comment=continued\n",
]


@pytest.mark.parametrize("records", PAX_RECORDS)
def test_pax_records_in_any_form_are_read_as_the_full_parser_reads_them(records: bytes) -> None:
    member = bytearray(build_header(MemberHeader(name=b"name", kind="file", size=1234, mtime_ns=T)))
    pax = bytearray(member)
    pax[:100] = b"PaxHeaders/name".ljust(100, b"\0")
    pax[124:136] = b"%011o\0" % len(records)
    pax[156] = ord("x")
    body = records + b"\0" * (-len(records) % RECORD)
    _agree(_with_checksum(pax) + body + bytes(member))


def test_a_pax_size_of_twelve_digits_is_read_whole() -> None:
    """The size field's twelfth byte is a digit, not its NUL: read as 11 digits it
    would frame only the first record and miss the second path."""
    records = _record(b"path", b"xy") + _record(b"path", b"z" * 72)
    assert (len(records), len(_record(b"path", b"xy"))) == (0o134, 0o13)
    member = bytearray(build_header(MemberHeader(name=b"name", kind="file", size=1234, mtime_ns=T)))
    pax = bytearray(member)
    pax[124:136] = b"000000000134"
    pax[156] = ord("x")
    data = _with_checksum(pax) + records.ljust(RECORD, b"\0") + bytes(member)
    assert _essentials(data) == (b"z" * 72, "file", 1234)
    _agree(data)
