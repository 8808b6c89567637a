"""Walking the member headers of a tar archive on tape, skipping the data.

When a job's manifest is lost or damaged, its data files still describe
themselves: every member starts with its headers.  Walking them costs one read
per member and a space (``fsr``) over each member's data, so a tape file of
large files is crossed almost without reading it, and nothing is hashed: what
is not read cannot be checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .blockio import TapeFileReader
from .errors import BlankTape, MediumError, TarFormatError
from .sparse import stored_size
from .tarformat import EXTENSION_TYPES, RECORD, MemberHeader, checksum_ok, number_field, padded, parse_header

#: Type flags whose members carry data in the archive (as ``tarfile`` reads
#: them: regular files, contiguous files, GNU sparse; unknown types too).
_KNOWN_WITHOUT_DATA = frozenset(b"123456")
#: More extension headers than any writer uses for one member: a hostile
#: archive must not make the walk read forever without finding a member.
MAX_EXTENSION_BYTES = 16 << 20


@dataclass(frozen=True)
class WalkedMember:
    """One member found by :func:`walk_headers`.

    :param offset: byte offset of its first header in the tape file.
    :param header_size: bytes of headers (extended ones included) before its data.
    :param complete: its data is all there (False: the tape file ends inside it).
    :param sparse_map: a sparse member's map, read from the start of its data
        (None: not sparse, or the map is unreadable).
    """

    header: MemberHeader
    offset: int
    header_size: int
    complete: bool
    sparse_map: str | None = None


def _read_sparse_map(reader: TapeFileReader, stored: int) -> str | None:
    """The map that leads a sparse member's ``stored`` data bytes (pax sparse
    1.0), read record by record; None when it is not a well-formed map that
    fits in the member (the rest of the data is not read)."""
    text = b""
    while len(text) < min(stored, MAX_EXTENSION_BYTES):
        record = reader.read(RECORD)
        if len(record) < RECORD:
            return None
        text += record
        lines = text.split(b"\n")
        try:
            count = int(lines[0])
        except ValueError:
            return None
        if len(lines) > 2 * count + 1:  # the count, two numbers per region, the rest
            candidate = b"\n".join(lines[: 2 * count + 1]).decode("ascii", "replace") + "\n"
            try:
                return candidate if stored_size(candidate) == stored else None
            except ValueError:
                return None
    return None


@dataclass(frozen=True)
class Damage:
    """Bytes of the archive where no valid header was found (``walk_headers(resync=True)``).

    :param offset: where the bad header started.
    :param resumed: where the walk found the next valid header (None: not before the end).
    """

    offset: int
    resumed: int | None
    reason: str


_ZERO_RECORD = b"\0" * RECORD


def walk_headers(reader: TapeFileReader, resync: bool = False) -> Iterator[WalkedMember | Damage]:
    """The members of the tar archive ``reader`` is at the start of, in order.

    Stops at the end-of-archive marker or the end of the tape file.  Data is
    skipped by size: ``reader.skip_to`` spaces over whole blocks.

    :param resync: after a bad header, read on record by record to the next
        valid ustar header (as GNU tar does, "skipping to next header") and
        yield a :class:`Damage` for the bytes passed.
    :raises TarFormatError: without ``resync``, a header is not a valid tar
        header (the walk cannot know where the next member starts); members
        before it were yielded.
    """
    pending: tuple[int, bytes] | None = None
    while True:
        if pending is not None:
            (offset, record), pending = pending, None
        else:
            offset = reader.position
            record = reader.read(RECORD)
            if len(record) < RECORD or record == _ZERO_RECORD:
                return  # end of the tape file, or the end-of-archive marker
        try:
            member = _member(reader, offset, record)
        except TarFormatError as err:
            if not resync:
                raise
            pending = _next_header(reader)
            yield Damage(offset, pending[0] if pending else None, str(err))
            if pending is None:
                return
            continue
        if member is None:
            return  # the tape file ends inside the headers: no member
        yield member
        if not member.complete:
            return


def _next_header(reader: TapeFileReader) -> tuple[int, bytes] | None:
    """The offset and first record of the next valid ustar header, reading record by record."""
    while True:
        offset = reader.position
        record = reader.read(RECORD)
        if len(record) < RECORD:
            return None
        if record[257:262] == b"ustar" and checksum_ok(record):
            return offset, record


def _member(reader: TapeFileReader, offset: int, record: bytes) -> WalkedMember | None:
    """The member whose first header record (at ``offset``) is ``record``; its data is skipped."""
    headers = record
    while True:
        if not checksum_ok(record):
            raise TarFormatError(f"no valid tar header at byte {offset} (bad checksum)")
        typeflag = record[156]
        if typeflag not in EXTENSION_TYPES:
            break
        try:
            size = number_field(record[124:136])
        except ValueError as err:
            raise TarFormatError(f"extended header at byte {offset} has a bad size field") from err
        if size < 0 or len(headers) + size > MAX_EXTENSION_BYTES:
            raise TarFormatError(f"extended header at byte {offset} claims {size} bytes")
        body = reader.read(padded(size))
        record = reader.read(RECORD)
        if len(body) < padded(size) or len(record) < RECORD:
            return None
        headers += body + record
    try:
        header = parse_header(headers)
    except ValueError as err:
        raise TarFormatError(f"no valid tar header at byte {offset} ({err})") from err
    header_size = len(headers)
    has_data = record[156] not in _KNOWN_WITHOUT_DATA
    stored = header.size if has_data else 0
    if stored < 0:
        raise TarFormatError(f"member at byte {offset} claims a negative size")
    end = reader.position + padded(stored)
    try:
        # A sparse member's size on tape depends on its map: read it too.
        sparse_map = _read_sparse_map(reader, stored) if header.realsize is not None and has_data else None
        reader.skip_to(end)
        complete = True
    except (BlankTape, MediumError):
        # The file ends inside the data (``fsr`` met the filemark): a
        # member cut at end of medium, or a truncated file.
        complete, sparse_map = False, None
    return WalkedMember(header, offset, header_size, complete, sparse_map)
