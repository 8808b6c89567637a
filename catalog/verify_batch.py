"""Verify of one tape file in batches: rows streamed in offset order, blocks read in large chunks.

Before issue 9 a verify loaded every entry of a tape file as an ORM object and
opened Python's ``tarfile`` on each member's header; at 50,000 small files
that was ~65 % of its time (docs/performance.md).  Here the catalog rows come
from one query as plain tuples, a batch at a time, ordered by offset; the tape
file is read in chunks of one drive transfer that hold hundreds of small
members (``ChunkedReader.window``); a small member's headers are checked in
place by ``tarformat.quick_essentials`` (as strictly as the full parser,
which decides whatever it cannot) and its data hashed from a slice of the
chunk in one call, all in the loop itself, without a call per step.

Members cut across tapes (they have ``EntryPart`` rows) are left to the
caller, which reads them part by part: their ids are returned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, text
from sqlmodel import Session, col, select

from pytp.tapeio.errors import BlankTape, MediumError
from pytp.tapeio.hashing import ContentHasher, hash_bytes
from pytp.tapeio.tarformat import member_essentials, quick_essentials
from pytp.tapeio.tarwriter import member_data_size, member_name

from .integrity import check_offsets
from .levels import DELETED
from .models import Entry, EntryPart
from .tape_reading import ChunkedReader, TapeFileAccess

#: data up to this size is hashed from one slice of the chunk; larger, piece by piece
_ONE_PIECE = 4 << 20


@dataclass
class TapeFileResult:
    """What checking one tape file found (problems go to the caller's list).

    :param split: ids of the entries cut across tapes: not checked here.
    """

    checked: int = 0
    bytes: int = 0
    split: frozenset[int] = frozenset()


#: rows fetched from the database at a time
_BATCH = 2000

#: The entries of a tape file as stored, in offset order.  ``path`` is NULL
#: for a name that is the UTF-8 of ``path_text`` and ``xxh3`` holds the
#: digest's 16 bytes (``entry_types``); the check below reads both forms, so
#: SQLite has no per-row conversion to make.
_MEMBER_ROWS = (
    'SELECT id, path, path_text, kind, size, sparse_map, xxh3, "offset", header_size FROM entry'
    ' WHERE tape_file_id = :tape_file_id AND kind != :deleted ORDER BY "offset"'
)


def _member_rows(session: Session, tape_file_id: int) -> Iterator[Any]:
    """The entries of a tape file as rows of ``_MEMBER_ROWS``, fetched a batch at a time."""
    params = {"tape_file_id": tape_file_id, "deleted": DELETED}
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        # streamed: a server-side cursor on PostgreSQL
        yield from connection.execute(text(_MEMBER_ROWS).execution_options(yield_per=_BATCH), params)
        return
    # SQLite: the driver's own cursor, in the session's transaction, gives plain
    # tuples: a Row object and two conversions per member were a fifth of a
    # verify of small files (issue 9).
    cursor = connection.connection.cursor()
    try:
        cursor.execute(_MEMBER_ROWS, params)
        while batch := cursor.fetchmany(_BATCH):
            yield from batch
    finally:
        cursor.close()


def _split_ids(session: Session, tape_file_id: int) -> frozenset[int]:
    """Entries of this tape file that have parts on other tape files (cut across tapes)."""
    query = (
        select(EntryPart.entry_id)
        .join(Entry, col(Entry.id) == EntryPart.entry_id)
        .where(Entry.tape_file_id == tape_file_id)
        .distinct()
    )
    return frozenset(session.exec(query).all())


def _check_offsets(session: Session, tape_file_id: int, split: frozenset[int], where: str) -> None:
    """``integrity.check_offsets`` over the rows that could fail it, found in SQL
    (negative offsets, offsets used twice), before any member is read."""
    shared = (
        select(Entry.offset)
        .where(Entry.tape_file_id == tape_file_id, Entry.kind != DELETED)
        .group_by(col(Entry.offset))
        .having(func.count() > 1)
    )
    suspects = session.execute(
        select(Entry.id, Entry.path_text, Entry.offset)
        .where(
            and_(
                Entry.tape_file_id == tape_file_id,
                Entry.kind != DELETED,
                or_(col(Entry.offset) < 0, col(Entry.offset).in_(shared)),
            )
        )
        .order_by(col(Entry.offset), col(Entry.id))
    ).all()
    check_offsets(((path, offset) for entry_id, path, offset in suspects if entry_id not in split), where)


def check_tape_file(
    session: Session,
    access: TapeFileAccess,
    tape_file_id: int,
    where: str,
    problems: list[tuple[str, str]],
    on_member: Callable[[str, int], None] | None = None,
) -> TapeFileResult:
    """Read the members of one tape file and compare each with its catalog row.

    Every problem is appended to ``problems`` as ``(path, what)``; after an
    unreadable block the rest of the tape file's members are named "not checked".

    :param where: the tape file, for messages (``tape file 3 of PYT001L9``).
    :param on_member: called with each member's path and size before it is read (progress).
    :raises CatalogInconsistent: offsets are negative or shared (nothing was read).
    """
    split = _split_ids(session, tape_file_id)
    _check_offsets(session, tape_file_id, split, where)
    chunks = ChunkedReader(access)
    rows = _member_rows(session, tape_file_id)
    checked = data_bytes = 0
    # The chunk in hand (``window``): buf[index] is byte ``start + index`` of the tape file.
    buf, start = b"", 0
    view = memoryview(buf)
    for entry_id, path, path_text, kind, size, sparse_map, xxh3, offset, header_size in rows:
        if split and entry_id in split:
            continue
        if on_member is not None:
            on_member(path_text, size)
        if path is None:
            path = path_text.encode()  # stored as NULL: the UTF-8 of path_text
        if type(xxh3) is bytes:
            xxh3 = xxh3.hex()  # else None, or a digest stored as text (read as it is)
        try:
            if kind != "file" or sparse_map is not None or size > _ONE_PIECE:
                problem = _check(chunks, path, kind, size, sparse_map, xxh3, offset, header_size)
            else:
                # A small file, most members of most backups: its headers and data are
                # sliced out of the chunk in hand and checked here, without a call per step.
                index = offset - start
                end = index + header_size + size
                if index < 0 or end > len(buf):
                    buf, index = chunks.window(offset, header_size + size)
                    start, end = offset - index, index + header_size + size
                    view = memoryview(buf)
                found = quick_essentials(buf, index, header_size)
                if found is None:
                    found = _read_header(buf, index, header_size)
                if isinstance(found, str):
                    problem = found
                elif (
                    found[1] != "file"
                    or found[2] != size
                    or found[0].rstrip(b"/") != (path.lstrip(b"/") or b".").rstrip(b"/")
                ):
                    problem = "tar header on tape does not match the catalog"
                elif end > len(buf):
                    problem = "missing: the tape file ends inside this member"
                elif xxh3 is not None and hash_bytes(view[index + header_size : end]) != xxh3:
                    # (an entry a catalog rebuild recovered from tar headers has no checksum)
                    problem = "checksum mismatch: the data on tape is damaged"
                else:
                    problem = None
        except (MediumError, BlankTape) as err:
            problems.append((path_text, f"unreadable: {err}"))
            problems.extend(
                (row[2], "not checked: the tape file could not be read past an error")
                for row in rows
                if row[0] not in split
            )
            break
        if problem is not None:
            problems.append((path_text, problem))
            continue
        checked += 1
        if kind == "file":
            data_bytes += size
    return TapeFileResult(checked=checked, bytes=data_bytes, split=split)


def _read_header(buf: bytes, index: int, header_size: int) -> tuple[bytes, str, int] | str:
    """``member_essentials`` of the header at ``buf[index]``, or what is wrong with it."""
    if len(buf) - index < header_size:
        return "missing: the tape file ends before this member"
    try:
        return member_essentials(buf[index : index + header_size])
    except ValueError as err:
        return f"damaged tar header ({err})"


def _check(
    chunks: ChunkedReader,
    path: bytes,
    kind: str,
    size: int,
    sparse_map: str | None,
    xxh3: str | None,
    offset: int,
    header_size: int,
) -> str | None:
    """What is wrong with the member at ``offset``, or None when it matches its row."""
    # data_size: a sparse file's map and data regions
    data_size = member_data_size(kind, size, sparse_map)
    # A small member's headers and data come in one slice of the chunk.
    whole = kind == "file" and data_size <= _ONE_PIECE
    raw = chunks.read_at(offset, header_size + data_size if whole else header_size)
    found = _read_header(bytes(raw[:header_size]), 0, header_size)
    if isinstance(found, str):
        return found
    name, header_kind, header_size_field = found
    if (
        name.rstrip(b"/") != member_name(path).rstrip(b"/")
        or header_kind != kind
        or (kind == "file" and header_size_field != data_size)
    ):
        return "tar header on tape does not match the catalog"
    if kind != "file":
        return None
    start = offset + header_size
    if whole:
        data = raw[header_size:]
        missing, digest = data_size - len(data), hash_bytes(data)
    else:
        hasher = ContentHasher()
        missing = chunks.feed(start, data_size, hasher.update)
        digest = hasher.hexdigest()
    if missing:
        return "missing: the tape file ends inside this member"
    # An entry a catalog rebuild recovered from tar headers has no checksum:
    # its data was read whole, which is all that can be checked.
    if xxh3 is not None and digest != xxh3:
        return "checksum mismatch: the data on tape is damaged"
    return None
