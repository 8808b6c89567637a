"""POSIX.1-2001 (pax) tar headers, built byte by byte.

pytp writes its own headers instead of using ``tarfile`` because it must know
each member's exact byte offset and header length, hash exactly the data bytes
that follow, and keep non-UTF-8 names as raw bytes.  ``tarfile`` would mark
such names ``hdrcharset=BINARY``, which GNU tar 1.34 answers with a warning on
every extraction; a raw-bytes ``path`` record is read back byte-exact by GNU
tar and by Python's tarfile (surrogateescape) alike.

Metadata beyond the ustar fields goes in pax records the way GNU tar 1.34
writes and reads them (``tar --xattrs --acls --sparse --format=pax``):
extended attributes as ``SCHILY.xattr.NAME``, POSIX ACLs as
``SCHILY.acl.access`` / ``SCHILY.acl.default`` in the long text form, and
sparse files in GNU's pax sparse format 1.0 (``GNU.sparse.major=1``,
``minor=0``, ``name``, ``realsize``; the map of data regions leads the data).
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from io import BytesIO

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


def _octal(value: int, width: int) -> bytes | None:
    """``value`` as a NUL-terminated octal field, or None if it does not fit."""
    digits = width - 1
    if 0 <= value < 8**digits:
        return b"%0*o\0" % (digits, value)
    return None


def _pax_record(key: str | bytes, value: bytes) -> bytes:
    # The length prefix counts itself, so grow it until it is stable.
    raw_key = key if isinstance(key, bytes) else key.encode("ascii")
    body = b" " + raw_key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode("ascii") + body


def _ustar_block(name: bytes, typeflag: bytes, size: int, h: MemberHeader) -> bytes:
    def field(value: bytes, width: int) -> bytes:
        return value[:width].ljust(width, b"\0")

    def number(value: int, width: int) -> bytes:
        # Values that do not fit are carried by a pax record; the ustar field
        # then holds 0, as GNU tar and bsdtar do.
        return _octal(value, width) or _octal(0, width)  # type: ignore[return-value]

    seconds = h.mtime_ns // 1_000_000_000
    parts = [
        field(name, 100),
        number(h.mode & 0o7777, 8),
        number(h.uid, 8),
        number(h.gid, 8),
        number(size, 12),
        number(seconds, 12),
        b" " * 8,  # checksum placeholder: spaces while summing
        typeflag,
        field(h.linkname, 100),
        b"ustar\0",
        b"00",
        field(h.uname.encode("utf-8", "replace"), 32),
        field(h.gname.encode("utf-8", "replace"), 32),
        number(h.devmajor, 8),
        number(h.devminor, 8),
        field(b"", 155),
        field(b"", 12),
    ]
    block = bytearray(b"".join(parts))
    assert len(block) == RECORD
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def xattr_keyword(name: bytes) -> bytes:
    """The pax keyword of an extended attribute, escaped as GNU tar does
    (``%`` and ``=`` would end or confuse the keyword)."""
    return b"SCHILY.xattr." + name.replace(b"%", b"%25").replace(b"=", b"%3D")


def _xattr_name(keyword: str) -> bytes:
    raw = keyword[len("SCHILY.xattr.") :].encode("utf-8", "surrogateescape")
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


def _pax_records(h: MemberHeader) -> bytes:
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
    elif len(h.name) > 100 or not h.name.isascii():
        records.append(_pax_record("path", h.name))
    if h.linkname and (len(h.linkname) > 100 or not h.linkname.isascii()):
        records.append(_pax_record("linkpath", h.linkname))
    if _octal(h.size, 12) is None:
        records.append(_pax_record("size", str(h.size).encode()))
    for key, value in (("uid", h.uid), ("gid", h.gid)):
        if _octal(value, 8) is None:
            records.append(_pax_record(key, str(value).encode()))
    for key, text in (("uname", h.uname), ("gname", h.gname)):
        raw = text.encode("utf-8", "surrogateescape")
        if len(raw) > 32 or not raw.isascii():
            records.append(_pax_record(key, raw))
    seconds, nanos = divmod(h.mtime_ns, 1_000_000_000)
    if nanos or _octal(seconds, 12) is None:
        records.append(_pax_record("mtime", b"%d.%09d" % (seconds, nanos)))
    if h.comment:
        records.append(_pax_record("comment", h.comment.encode("utf-8")))
    if h.acl_access is not None:
        records.append(_pax_record("SCHILY.acl.access", h.acl_access.encode("utf-8")))
    if h.acl_default is not None:
        records.append(_pax_record("SCHILY.acl.default", h.acl_default.encode("utf-8")))
    for name, value in h.xattrs:
        records.append(_pax_record(xattr_keyword(name), value))
    return b"".join(records)


def build_header(h: MemberHeader) -> bytes:
    """The header bytes for one member: an optional pax extended header, then ustar.

    The data (``h.size`` bytes, padded to 512) follows and is not included.
    """
    typeflag = TYPE_BY_KIND[h.kind]
    size = h.size if h.kind == "file" else 0
    out = b""
    records = _pax_records(h)
    if records:
        # GNU tar names extended headers "<dir>/PaxHeaders/<base>"; the name is
        # informational, so a short ASCII form keeps it inside 100 bytes.
        base = h.name.rstrip(b"/").rsplit(b"/", 1)[-1][:60] or b"member"
        pax_name = b"PaxHeaders/" + base.decode("ascii", "replace").encode("ascii", "replace")
        pax_meta = MemberHeader(name=pax_name, kind="file", mode=0o644, mtime_ns=h.mtime_ns)
        out += _ustar_block(pax_name, PAXTYPE, len(records), pax_meta)
        out += records.ljust(padded(len(records)), b"\0")
    name = h.name if h.realsize is None else sparse_placeholder(h.name)
    out += _ustar_block(name, typeflag, size, h)
    return out


def parse_header(data: bytes) -> MemberHeader:
    """Parse the header bytes of one member (as returned by ``build_header``).

    :raises ValueError: when the bytes are not a valid tar header.
    """
    # A sparse 1.0 member's map leads its data, which is not part of the
    # header bytes: an empty map block lets tarfile read the header alone.
    stream = BytesIO(data + b"0\n".ljust(RECORD, b"\0") + END_OF_ARCHIVE)
    try:
        with tarfile.open(fileobj=stream, mode="r:", encoding="utf-8", errors="surrogateescape") as tf:
            info = tf.next()
    except (tarfile.TarError, EOFError) as err:
        raise ValueError(f"not a valid tar header: {err}") from err
    if info is None:
        raise ValueError("not a valid tar header: end of archive")
    mtime_ns = int(info.mtime) * 1_000_000_000
    if "mtime" in info.pax_headers:
        # Parse the decimal text exactly: a float would lose the nanoseconds.
        sec, _, frac = info.pax_headers["mtime"].partition(".")
        mtime_ns = int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])
    pax = info.pax_headers
    size, realsize = info.size, None
    if pax.get("GNU.sparse.major") == "1" and "GNU.sparse.realsize" in pax:
        # tarfile reports the apparent size; the archive holds the ustar size.
        realsize = info.size
        size = int(pax["size"]) if "size" in pax else tarfile.nti(data[-RECORD:][124:136])
    acl_access, acl_default = pax.get("SCHILY.acl.access"), pax.get("SCHILY.acl.default")
    xattrs = tuple(
        (_xattr_name(key), value.encode("utf-8", "surrogateescape"))
        for key, value in pax.items()
        if key.startswith("SCHILY.xattr.")
    )
    return MemberHeader(
        name=info.name.encode("utf-8", "surrogateescape"),
        kind=KIND_BY_TYPE.get(info.type, "other"),
        size=size,
        mode=info.mode,
        uid=info.uid,
        gid=info.gid,
        uname=info.uname,
        gname=info.gname,
        mtime_ns=mtime_ns,
        linkname=info.linkname.encode("utf-8", "surrogateescape"),
        devmajor=info.devmajor,
        devminor=info.devminor,
        comment=pax.get("comment"),
        xattrs=xattrs,
        acl_access=acl_access,
        acl_default=acl_default,
        realsize=realsize,
    )
