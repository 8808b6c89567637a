"""POSIX tar headers, built and parsed byte by byte.

pytp writes its own headers instead of using ``tarfile`` because it must know
each member's exact byte offset and header length, hash exactly the data bytes
that follow, and keep non-UTF-8 names as raw bytes.  ``tarfile`` would mark
such names ``hdrcharset=BINARY``, which GNU tar 1.34 answers with a warning on
every extraction; a raw-bytes ``path`` record is read back byte-exact by GNU
tar and by Python's tarfile (surrogateescape) alike.

A member gets one 512-byte ustar header, as GNU tar writes, when everything
about it fits ustar (issue 9, "Tape space"): an ASCII name of at most 100
bytes or one that splits at a ``/`` into a 155-byte prefix and a 100-byte
name, an ASCII link name of at most 100 bytes, ids and size that fit their
octal fields, ASCII user and group names of at most 32 bytes, and a
modification time in whole seconds.  Anything else adds a pax extended header
(512 bytes plus its records, padded to 512) with only the records needed:
``path``, ``linkpath``, ``size``, ``uid``, ``gid``, ``uname``, ``gname``,
``mtime`` (sub-second or out of range), ``comment`` (continuations), and the
ones below.  Why sub-second times keep a pax record: docs/format.md.

Metadata beyond the ustar fields goes in pax records the way GNU tar 1.34
writes and reads them (``tar --xattrs --acls --sparse --format=pax``):
extended attributes as ``SCHILY.xattr.NAME``, POSIX ACLs as
``SCHILY.acl.access`` / ``SCHILY.acl.default`` in the long text form, and
sparse files in GNU's pax sparse format 1.0 (``GNU.sparse.major=1``,
``minor=0``, ``name``, ``realsize``; the map of data regions leads the data).

Headers are parsed here too (``parse_header``), without ``tarfile``: opening a
``TarFile`` per member was 43 % of a verify of small files (docs/performance.md).
The parser is at least as strict as ``tarfile`` was: a bad checksum, a
non-octal numeric field, a pax record whose length does not frame it, a
non-decimal pax number, or header bytes that do not end exactly where the
member's headers end are all a ``ValueError``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

RECORD = 512
#: Two zero records end an archive.
END_OF_ARCHIVE = b"\0" * (2 * RECORD)

REGTYPE = b"0"
LNKTYPE = b"1"
SYMTYPE = b"2"
CHRTYPE = b"3"
BLKTYPE = b"4"
DIRTYPE = b"5"
FIFOTYPE = b"6"
PAXTYPE = b"x"

#: Catalog/manifest names of the member kinds, by tar type flag.
KIND_BY_TYPE = {
    REGTYPE: "file",
    LNKTYPE: "hardlink",
    SYMTYPE: "symlink",
    CHRTYPE: "chardev",
    BLKTYPE: "blockdev",
    DIRTYPE: "dir",
    FIFOTYPE: "fifo",
}
TYPE_BY_KIND = {kind: flag for flag, kind in KIND_BY_TYPE.items()}

#: Largest values of the octal fields (7 and 11 digits).
_MAX7 = 8**7
_MAX11 = 8**11
_NS = 1_000_000_000
_NUL = b"\0"
_PAD12 = b"\0" * 12
#: Bytes of the numeric fields as GNU tar and pytp write them (digits and NULs):
#: such fields need no more checking than this (spaces, signs or base-256 do).
_PLAIN_NUMBER_BYTES = b"01234567\0"


def padded(size: int) -> int:
    """``size`` rounded up to whole 512-byte records."""
    return (size + RECORD - 1) // RECORD * RECORD


@dataclass(frozen=True)
class MemberHeader:
    """What a tar header says about one member.

    :param name: member name as raw bytes (no leading ``/``).
    :param kind: one of ``KIND_BY_TYPE``'s values.
    :param mtime_ns: modification time in nanoseconds since the epoch.
    """

    name: bytes
    kind: str
    size: int = 0
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    uname: str = ""
    gname: str = ""
    mtime_ns: int = 0
    linkname: bytes = b""
    devmajor: int = 0
    devminor: int = 0
    #: a pax ``comment`` record (tar readers ignore it; pytp marks continuations)
    comment: str | None = None
    #: extended attributes, ``(name, value)`` as raw bytes (``SCHILY.xattr.*``)
    xattrs: tuple[tuple[bytes, bytes], ...] = ()
    #: POSIX ACLs in the text form GNU tar writes (``SCHILY.acl.*``)
    acl_access: str | None = None
    acl_default: str | None = None
    #: a sparse file's apparent size; then ``size`` counts the bytes stored
    #: in the archive (the sparse map block and the data regions)
    realsize: int | None = None


# --------------------------------------------------------------------------- building


def _pax_record(key: str | bytes, value: bytes) -> bytes:
    # The length prefix counts itself, so grow it until it is stable.
    raw_key = key if isinstance(key, bytes) else key.encode("ascii")
    body = b" " + raw_key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode("ascii") + body


@lru_cache(maxsize=1024)
def _owner_part(typeflag: bytes, uname: str, gname: str, devmajor: int, devminor: int) -> tuple[bytes, bytes, int]:
    """Bytes 156–345 of a ustar block but the link name (type flag, magic,
    owner names, device numbers) and their byte sum: the same for most
    members of a backup, so built once (issue 9: headers without per-field
    Python overhead)."""
    major = b"%07o\0" % devmajor if 0 <= devmajor < _MAX7 else b"0000000\0"
    minor = b"%07o\0" % devminor if 0 <= devminor < _MAX7 else b"0000000\0"
    # Names that do not fit go in pax records; the field keeps what fits.
    user = uname.encode("utf-8", "replace")[:32].ljust(32, _NUL)
    group = gname.encode("utf-8", "replace")[:32].ljust(32, _NUL)
    tail = b"ustar\x0000" + user + group + major + minor
    return typeflag, tail, sum(typeflag) + sum(tail)


def _split_name(name: bytes) -> tuple[bytes, bytes] | None:
    """``(prefix, name)`` of an ASCII name of 101–255 bytes as GNU tar splits
    it for ustar (the longest prefix of at most 155 bytes that ends before a
    ``/``, leaving at most 100 bytes), or None when no ``/`` allows it."""
    # A directory's trailing "/" is part of the name field, never the split point.
    cut = name.rfind(b"/", 0, min(len(name) - 1, 156))
    if cut <= 0 or len(name) - cut - 1 > 100:
        return None
    return name[:cut], name[cut + 1 :]


def _ustar_block(
    name: bytes,
    prefix: bytes,
    typeflag: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    seconds: int,
    linkname: bytes,
    uname: str,
    gname: str,
    devmajor: int = 0,
    devminor: int = 0,
) -> bytes:
    """One ustar block; numbers that do not fit hold 0 (a pax record carries
    them, as GNU tar and bsdtar do) and names are cut to their fields."""
    numbers = b"%07o\0%07o\0%07o\0%011o\0%011o\0" % (
        mode & 0o7777,
        uid if 0 <= uid < _MAX7 else 0,
        gid if 0 <= gid < _MAX7 else 0,
        size if 0 <= size < _MAX11 else 0,
        seconds if 0 <= seconds < _MAX11 else 0,
    )
    name, linkname = name[:100], linkname[:100]
    flag, tail, tail_sum = _owner_part(typeflag, uname, gname, devmajor, devminor)
    # NUL padding adds nothing to the sum; the checksum field counts as 8 spaces.
    checksum = sum(name) + sum(numbers) + 256 + tail_sum + sum(linkname) + sum(prefix)
    return b"".join(
        (
            name.ljust(100, _NUL),
            numbers,
            b"%06o\0 " % checksum,
            flag,
            linkname.ljust(100, _NUL),
            tail,
            prefix.ljust(155, _NUL),
            _PAD12,
        )
    )


def xattr_keyword(name: bytes) -> bytes:
    """The pax keyword of an extended attribute, escaped as GNU tar does
    (``%`` and ``=`` would end or confuse the keyword)."""
    return b"SCHILY.xattr." + name.replace(b"%", b"%25").replace(b"=", b"%3D")


def _xattr_name(keyword: bytes) -> bytes:
    raw = keyword[len(b"SCHILY.xattr.") :]
    return raw.replace(b"%3D", b"=").replace(b"%25", b"%")


def sparse_placeholder(name: bytes) -> bytes:
    """The ustar name of a sparse member: ``DIR/GNUSparseFile.0/BASE``.

    Readers that know the sparse format take the real name from
    ``GNU.sparse.name``; others extract the raw data under this name.  GNU tar
    puts its pid after the dot; pytp writes 0 so the same tree gives the same
    archive.
    """
    head, _, base = name.rpartition(b"/")
    placeholder = (head + b"/" if head else b"") + b"GNUSparseFile.0/" + base
    return placeholder if len(placeholder) <= 100 and placeholder.isascii() else b"GNUSparseFile.0/" + b"member"


def _owner_name_fits(text: str) -> bool:
    return len(text) <= 32 and text.isascii()


def _pax_records(h: MemberHeader, ustar_name: bool) -> bytes:
    """The pax records ``h`` needs (b"": none).

    :param ustar_name: the name fits the ustar name (and prefix) fields.
    """
    records = []
    if h.realsize is not None:
        # GNU sparse 1.0: the name is carried by GNU.sparse.name, not ``path``
        # (GNU tar reads the placeholder's ``path`` otherwise).
        records += [
            _pax_record("GNU.sparse.major", b"1"),
            _pax_record("GNU.sparse.minor", b"0"),
            _pax_record("GNU.sparse.name", h.name),
            _pax_record("GNU.sparse.realsize", str(h.realsize).encode()),
        ]
    elif not ustar_name:
        records.append(_pax_record("path", h.name))
    if h.linkname and (len(h.linkname) > 100 or not h.linkname.isascii()):
        records.append(_pax_record("linkpath", h.linkname))
    if not 0 <= h.size < _MAX11:
        records.append(_pax_record("size", str(h.size).encode()))
    for key, value in (("uid", h.uid), ("gid", h.gid)):
        if not 0 <= value < _MAX7:
            records.append(_pax_record(key, str(value).encode()))
    for key, text in (("uname", h.uname), ("gname", h.gname)):
        raw = text.encode("utf-8", "surrogateescape")
        if len(raw) > 32 or not raw.isascii():
            records.append(_pax_record(key, raw))
    seconds, nanos = divmod(h.mtime_ns, _NS)
    if nanos or not 0 <= seconds < _MAX11:
        # The sign applies to the fraction too: -1.5 s is "-1.500000000" (POSIX, GNU tar, tarfile).
        whole, fraction = divmod(abs(h.mtime_ns), _NS)
        sign = b"-" if h.mtime_ns < 0 else b""
        records.append(_pax_record("mtime", b"%s%d.%09d" % (sign, whole, fraction)))
    if h.comment:
        records.append(_pax_record("comment", h.comment.encode("utf-8")))
    if h.acl_access is not None:
        records.append(_pax_record("SCHILY.acl.access", h.acl_access.encode("utf-8")))
    if h.acl_default is not None:
        records.append(_pax_record("SCHILY.acl.default", h.acl_default.encode("utf-8")))
    for name, value in h.xattrs:
        records.append(_pax_record(xattr_keyword(name), value))
    return b"".join(records)


def _name_fields(name: bytes) -> tuple[bytes, bytes] | None:
    """``(prefix, name)`` for the ustar fields, or None: a pax ``path`` is needed."""
    if not name.isascii():
        return None
    if len(name) <= 100:
        return b"", name
    return _split_name(name) if len(name) <= 256 else None


def build_header(h: MemberHeader) -> bytes:
    """The header bytes for one member: one ustar block when it fits, else a
    pax extended header (only the records needed) and then the ustar block.

    The data (``h.size`` bytes, padded to 512) follows and is not included.
    """
    typeflag = TYPE_BY_KIND[h.kind]
    size = h.size if h.kind == "file" else 0
    seconds = h.mtime_ns // _NS
    fields = _name_fields(h.name) if h.realsize is None else (b"", sparse_placeholder(h.name))
    nanos = h.mtime_ns % _NS
    if (
        # the common case first, without building any record
        fields is not None
        and h.realsize is None
        and 0 <= seconds < _MAX11
        and 0 <= h.size < _MAX11
        and 0 <= h.uid < _MAX7
        and 0 <= h.gid < _MAX7
        and (not h.linkname or (len(h.linkname) <= 100 and h.linkname.isascii()))
        and _owner_name_fits(h.uname)
        and _owner_name_fits(h.gname)
        and not (h.comment or h.xattrs or h.acl_access is not None or h.acl_default is not None)
    ):
        prefix, name = fields
        block = _ustar_block(
            name, prefix, typeflag, h.mode, h.uid, h.gid, size, seconds,
            h.linkname, h.uname, h.gname, h.devmajor, h.devminor,
        )  # fmt: skip
        if not nanos:
            return block
        # Only the sub-second time needs pax (most files written on ext4 or XFS).
        records = _pax_record(b"mtime", b"%d.%09d" % (seconds, nanos))
        return _pax_header(h.name, records, seconds) + block
    records = _pax_records(h, fields is not None and h.realsize is None)
    prefix, name = fields if fields is not None else (b"", h.name)
    return _pax_header(h.name, records, seconds) + _ustar_block(
        name, prefix, typeflag, h.mode, h.uid, h.gid, size, seconds,
        h.linkname, h.uname, h.gname, h.devmajor, h.devminor,
    )  # fmt: skip


def _pax_header(member: bytes, records: bytes, seconds: int) -> bytes:
    """The pax extended header (ustar block and records, padded) of the member named ``member``."""
    # GNU tar names extended headers "<dir>/PaxHeaders/<base>"; the name is
    # informational, so a short ASCII form keeps it inside 100 bytes.
    base = member.rstrip(b"/").rsplit(b"/", 1)[-1][:60] or b"member"
    pax_name = b"PaxHeaders/" + base.decode("ascii", "replace").encode("ascii", "replace")
    head = _ustar_block(pax_name, b"", PAXTYPE, 0o644, 0, 0, len(records), seconds, b"", "", "")
    return head + records.ljust(padded(len(records)), _NUL)


# --------------------------------------------------------------------------- parsing

#: Type flags of headers that only describe the member after them: pax
#: extended and global headers, GNU long name and long link.
EXTENSION_TYPES = frozenset(b"xgLK")
#: GNU types whose bytes 345–500 are not a ustar prefix (as tarfile reads them).
_GNU_TYPES = frozenset(b"LKS")
#: mode, uid, gid, size, mtime, devmajor, devminor: where they are in a ustar block
_NUMBER_FIELDS = ((100, 108), (108, 116), (116, 124), (124, 136), (136, 148), (329, 337), (337, 345))
#: pax keywords whose values are numbers the parser checks
_PAX_NUMBERS = (b"size", b"uid", b"gid")
#: digits 0-7 and NUL to "0", any other byte to "x": translated by it, a numeric
#: field as GNU tar writes it is all "0" (one C call with no table to build)
_NUMBER_CLASS = bytes(0x30 if byte in _PLAIN_NUMBER_BYTES else 0x78 for byte in range(256))
_ZEROS = b"0" * 48


def number_field(field: bytes) -> int:
    """A numeric header field: octal digits (NUL- or space-ended), or GNU's
    base-256 form (first byte 0x80, or 0xff for a negative value).

    :raises ValueError: anything else (a sign, a non-octal digit).
    """
    first = field[0]
    if first == 0x80:
        return int.from_bytes(field[1:], "big")
    if first == 0xFF:
        return int.from_bytes(field, "big", signed=True)
    text = field.split(_NUL, 1)[0].strip()
    if not text:
        return 0
    if text.strip(b"01234567"):
        raise ValueError(f"non-octal number field {bytes(field)!r}")
    return int(text, 8)


def byte_sum(data: bytes) -> int:
    """The sum of the bytes of ``data``, computed in C: Adler-32's low half is
    1 + the byte sum modulo 65521, which is the exact sum for 256 bytes or
    fewer (256 × 255 < 65521).  Five times faster than ``sum(data)`` on a
    header block, and a header checksum was the largest single cost of a
    verify of small files (issue 9)."""
    adler = zlib.adler32
    if len(data) == RECORD:
        return (adler(data[:256]) & 0xFFFF) + (adler(data[256:]) & 0xFFFF) - 2
    return sum((adler(data[start : start + 256]) & 0xFFFF) - 1 for start in range(0, len(data), 256))


def checksum_ok(block: bytes) -> bool:
    """Whether a 512-byte header block's checksum field matches its bytes
    (unsigned sum, or the signed one some old writers used, as tarfile accepts)."""
    field = block[148:156]
    if field[6:] == b"\0 " and not field[:6].translate(None, b"01234567"):
        stored = int(field[:6], 8)  # as GNU tar and pytp write it: six digits, NUL, space
    else:
        try:
            stored = number_field(field)
        except ValueError:
            return False
    unsigned = byte_sum(block) - sum(field) + 256
    if stored == unsigned:
        return True
    high = sum(1 for byte in block[:148] + block[156:] if byte >= 128)
    return stored == unsigned - 256 * high


def _pax_number(key: bytes, value: bytes) -> int:
    if not value.isdigit():
        raise ValueError(f"pax record {key.decode('ascii', 'replace')} is not a decimal number")
    return int(value)


def _pax_time(value: bytes) -> int:
    """A pax time (``SECONDS[.FRACTION]``) in nanoseconds, exactly (a float would lose them)."""
    seconds, dot, fraction = value.partition(b".")
    digits = seconds[1:] if seconds[:1] == b"-" else seconds
    if not digits.isdigit() or (dot and not fraction.isdigit()):
        raise ValueError("pax record mtime is not a decimal time")
    nanos = int((fraction + b"000000000")[:9]) if dot else 0
    whole = int(seconds)
    return whole * _NS - nanos if seconds[:1] == b"-" else whole * _NS + nanos


def parse_pax_records(data: bytes, into: dict[bytes, bytes]) -> None:
    """Add the records of a pax extended header's data to ``into``.

    Each record is ``LENGTH SP KEY=VALUE LF`` where LENGTH counts the whole
    record; the records end at the data's end or at a NUL where one would start.

    :raises ValueError: a record whose length does not frame it (too short,
        past the end, not ended by a newline), or without a key.
    """
    position, end = 0, len(data)
    while position < end and data[position] != 0:
        space = data.find(b" ", position, position + 21)
        digits = data[position:space] if space > 0 else b""
        if not digits.isdigit():
            raise ValueError(f"pax record at byte {position} has no length")
        length = int(digits)
        stop = position + length
        if length < 5 or stop > end or data[stop - 1] != 0x0A:
            raise ValueError(f"pax record at byte {position} has a bad length ({length})")
        key, equals, value = data[space + 1 : stop - 1].partition(b"=")
        if not key or not equals:
            raise ValueError(f"pax record at byte {position} has no key")
        into[key] = value
        position = stop


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _cstring(field: bytes) -> bytes:
    return field.split(_NUL, 1)[0]


def _headers(data: bytes) -> tuple[bytes, dict[bytes, bytes], bytes | None, bytes | None]:
    """Walk one member's header bytes: its ustar block, the pax records and
    GNU long name and link that came before it.

    :raises ValueError: a bad checksum, an extension header that claims more
        bytes than there are, bad pax records, or bytes left after the block.
    """
    pax: dict[bytes, bytes] = {}
    long_name = long_link = None
    position, end = 0, len(data)
    while True:
        if end - position < RECORD:
            raise ValueError(f"the header is cut short at byte {position}")
        block = data[position : position + RECORD]
        if not checksum_ok(block):
            if not block.strip(_NUL):
                raise ValueError(f"an end-of-archive block at byte {position}, not a header")
            raise ValueError(f"bad checksum in the header at byte {position}")
        typeflag = block[156]
        if typeflag not in EXTENSION_TYPES:
            break
        size = number_field(block[124:136])
        if size < 0 or position + RECORD + padded(size) > end:
            raise ValueError(f"the extended header at byte {position} claims {size} bytes it does not have")
        body = data[position + RECORD : position + RECORD + size]
        if typeflag in b"xg":
            parse_pax_records(body, pax)
        elif typeflag == ord("L"):
            long_name = _cstring(body)
        else:
            long_link = _cstring(body)
        position += RECORD + padded(size)
    if position + RECORD != end:
        raise ValueError(f"{end} bytes of headers, but the member's own header ends at byte {position + RECORD}")
    return block, pax, long_name, long_link


def parse_header(data: bytes) -> MemberHeader:
    """Parse the header bytes of one member: any pax (``x``, ``g``) or GNU
    long-name (``L``, ``K``) headers, then its ustar block, and nothing more.

    :raises ValueError: when the bytes are not exactly one member's valid headers.
    """
    return _member(*_headers(data))


def read_member(data: bytes) -> tuple[MemberHeader, bytes, dict[bytes, bytes]]:
    """``parse_header``, and also what the restore guard judges besides:
    the type flag as it is on tape (``MemberHeader.kind`` is "other" for
    any type pytp does not write) and every pax record, global ones included.

    :raises ValueError: as ``parse_header``.
    """
    block, pax, long_name, long_link = _headers(data)
    member = _member(block, pax, long_name, long_link)
    flag = block[156:157]
    return member, DIRTYPE if flag == _NUL and member.kind == "dir" else flag, pax


def _member(block: bytes, pax: dict[bytes, bytes], long_name: bytes | None, long_link: bytes | None) -> MemberHeader:
    """The member a ustar block describes, with what its extension headers say."""
    flag = block[156:157]
    if block[100:148].translate(None, _PLAIN_NUMBER_BYTES) or block[329:345].translate(None, _PLAIN_NUMBER_BYTES):
        fields = [number_field(block[a:b]) for a, b in _NUMBER_FIELDS]  # spaces, base-256: checked one by one
    else:
        # Digits and NULs only, as GNU tar and pytp write them: each is valid octal up to its first NUL.
        fields = [int(block[a:b].split(_NUL, 1)[0] or b"0", 8) for a, b in _NUMBER_FIELDS]
    mode, uid, gid, size, seconds, devmajor, devminor = fields
    name = _cstring(block[:100])
    if flag == _NUL and name.endswith(b"/"):
        flag = DIRTYPE  # an old-style directory (as tarfile reads it)
    prefix = _cstring(block[345:500])
    if long_name is not None:
        name = long_name
    elif prefix and block[156] not in _GNU_TYPES:
        name = prefix + b"/" + name
    linkname = long_link if long_link is not None else _cstring(block[157:257])
    uname, gname = _text(_cstring(block[265:297])), _text(_cstring(block[297:329]))
    mtime_ns = seconds * _NS
    realsize = None
    xattrs: tuple[tuple[bytes, bytes], ...] = ()
    comment = acl_access = acl_default = None
    if pax:
        get = pax.get
        if b"path" in pax:
            name = pax[b"path"].rstrip(b"/") or pax[b"path"]  # as tarfile reads it
        if b"linkpath" in pax:
            linkname = pax[b"linkpath"]
        if b"size" in pax:
            size = _pax_number(b"size", pax[b"size"])
        if b"uid" in pax:
            uid = _pax_number(b"uid", pax[b"uid"])
        if b"gid" in pax:
            gid = _pax_number(b"gid", pax[b"gid"])
        if b"uname" in pax:
            uname = _text(pax[b"uname"])
        if b"gname" in pax:
            gname = _text(pax[b"gname"])
        if b"mtime" in pax:
            mtime_ns = _pax_time(pax[b"mtime"])
        if get(b"GNU.sparse.major") == b"1" and b"GNU.sparse.realsize" in pax:
            realsize = _pax_number(b"GNU.sparse.realsize", pax[b"GNU.sparse.realsize"])
            if b"GNU.sparse.name" in pax:
                name = pax[b"GNU.sparse.name"]
        comment = _text(pax[b"comment"]) if b"comment" in pax else None
        acl_access = _text(pax[b"SCHILY.acl.access"]) if b"SCHILY.acl.access" in pax else None
        acl_default = _text(pax[b"SCHILY.acl.default"]) if b"SCHILY.acl.default" in pax else None
        xattrs = tuple([(_xattr_name(k), v) for k, v in pax.items() if k.startswith(b"SCHILY.xattr.")])
    if size < 0:
        raise ValueError(f"the member claims a negative size ({size})")
    kind = KIND_BY_TYPE.get(flag, "other")
    if kind == "dir":
        name = name.rstrip(b"/") or name  # tarfile's reading: a directory's name has no trailing "/"
    return MemberHeader(
        name=name,
        kind=kind,
        size=size,
        mode=mode,
        uid=uid,
        gid=gid,
        uname=uname,
        gname=gname,
        mtime_ns=mtime_ns,
        linkname=linkname,
        devmajor=devmajor,
        devminor=devminor,
        comment=comment,
        xattrs=xattrs,
        acl_access=acl_access,
        acl_default=acl_default,
        realsize=realsize,
    )


def member_essentials(data: bytes) -> tuple[bytes, str, int]:
    """``(name, kind, size)`` of one member's header bytes, exactly as
    ``parse_header`` would give them, and refused exactly when it refuses them.

    Verify compares only these three fields for each of thousands of small
    members; building a whole :class:`MemberHeader` was most of its time
    (issue 9).  The usual layouts are read by :func:`quick_essentials`;
    anything else goes through ``parse_header``, which also says why bytes
    are refused.

    :raises ValueError: the bytes are not exactly one member's valid headers.
    """
    quick = quick_essentials(data, 0, len(data))
    return quick if quick is not None else _essentials(parse_header(data))


def quick_essentials(buf: bytes, pos: int, length: int) -> tuple[bytes, str, int] | None:
    """``member_essentials(buf[pos : pos + length])`` for the headers GNU tar
    and pytp write, read in place; None when it cannot tell quickly (then ask
    ``member_essentials``, which also gives the reason of a refusal).

    Read here: one ustar block, or one pax ``x`` header and its ustar block,
    with numeric fields of digits and NULs, checksums and the pax header's
    size as GNU tar writes them, and no GNU long names or sparse records.
    Everything it accepts, ``parse_header`` accepts with the same name, kind
    and size (``tests/tapeio/test_tarformat.py`` flips every byte of every
    variant); what it does not accept, ``member_essentials`` decides.  Each
    step is a C call on the bytes where it can be: verify reads every member
    of a tape file this way (issue 9).
    """
    pax: dict[bytes, bytes] | None = None
    if length < RECORD or len(buf) < pos + length:
        return None
    if buf[pos + 156] == 0x78:  # "x": a pax header first
        head = buf[pos : pos + RECORD]
        digits = head[124:135]
        if head[135] or not digits.isdigit() or not _quick_checksum_ok(head):
            return None
        try:
            records = int(digits, 8)
        except ValueError:  # an 8 or a 9
            return None
        # exactly the records, padded, then one ustar block (what _headers insists on)
        if records <= 0 or length != 2 * RECORD + padded(records):
            return None
        body = buf[pos + RECORD : pos + RECORD + records]
        space = body.find(b" ", 0, 21)
        digits = body[:space]
        if space > 0 and digits.isdigit() and int(digits) == records >= 5 and body[-1] == 0x0A:
            # one record, as most members have (mtime): parse_pax_records' checks, inline
            key, equals, value = body[space + 1 : -1].partition(b"=")
            if not key or not equals:
                return None
            pax = {key: value}
        else:
            pax = {}
            try:
                parse_pax_records(body, pax)
            except ValueError:
                return None
        pos += length - RECORD
    elif length != RECORD:
        return None
    block = buf[pos : pos + RECORD]
    flag = block[156:157]
    if (
        block[156] in EXTENSION_TYPES
        or flag == _NUL
        or block[100:148].translate(_NUMBER_CLASS) != _ZEROS[:48]
        or block[329:345].translate(_NUMBER_CLASS) != _ZEROS[:16]
        or not _quick_checksum_ok(block)
    ):
        return None
    name = None
    if pax:
        if b"GNU.sparse.major" in pax:
            return None
        # parse_header checks these values; so must this
        for key in _PAX_NUMBERS:
            if key in pax and not pax[key].isdigit():
                return None
        if b"mtime" in pax:
            seconds, dot, fraction = pax[b"mtime"].partition(b".")  # as _pax_time checks it
            if not (seconds.isdigit() or seconds[:1] == b"-" and seconds[1:].isdigit()) or (
                dot and not fraction.isdigit()
            ):
                return None
        size = int(pax[b"size"]) if b"size" in pax else int(block[124:136].split(_NUL, 1)[0] or b"0", 8)
        if b"path" in pax:
            name = pax[b"path"].rstrip(b"/") or pax[b"path"]
    else:
        size = int(block[124:136].split(_NUL, 1)[0] or b"0", 8)
    if name is None:
        end = block.find(0, 0, 100)
        name = block[:end] if end >= 0 else block[:100]
        if block[345] and flag != b"S":  # a ustar prefix
            name = block[345:500].split(_NUL, 1)[0] + b"/" + name
    kind = KIND_BY_TYPE.get(flag, "other")
    if kind == "dir":
        name = name.rstrip(b"/") or name
    return name, kind, size


def _quick_checksum_ok(block: bytes) -> bool:
    """``checksum_ok`` for a checksum written as GNU tar and pytp write it (six
    octal digits, NUL, space); False for any other form (``checksum_ok`` decides)."""
    digits = block[148:154]
    if block[154:156] != b"\0 " or not digits.isdigit():
        return False
    try:
        stored = int(digits, 8)
    except ValueError:  # an 8 or a 9
        return False
    adler = zlib.adler32
    # the exact byte sums (see byte_sum) of the block and of the digits, which count as spaces
    total = (adler(block[:256]) & 0xFFFF) + (adler(block[256:]) & 0xFFFF) - 2
    return stored == total - ((adler(digits) & 0xFFFF) - 1) - 32 + 256


def _essentials(header: MemberHeader) -> tuple[bytes, str, int]:
    return header.name, header.kind, header.size
