"""Members cut across tapes: finding their parts and reading them back whole.

Restore and verify handle a member whose ``Entry`` has ``EntryPart`` rows by
visiting each part's tape in turn: the first part gives the original header
and the first data bytes, every later part skips its continuation header and
gives the next data bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlmodel import Session, col, select

from .errors import CatalogError
from .media import Media
from .models import Entry, EntryPart, TapeFile, Volume
from .tape_reading import feed_bytes, read_tape_files

Piece = tuple[EntryPart, TapeFile, Volume]


def load_parts(session: Session, entry_ids: Iterable[int]) -> dict[int, list[Piece]]:
    """The parts of those entries that have any, in order, with their tape file and tape."""
    ids = list(entry_ids)
    parts: dict[int, list[Piece]] = {}
    for start in range(0, len(ids), 500):
        rows = session.exec(
            select(EntryPart, TapeFile, Volume)
            .join(TapeFile, col(TapeFile.id) == EntryPart.tape_file_id)
            .join(Volume, col(Volume.id) == TapeFile.volume_id)
            .where(col(EntryPart.entry_id).in_(ids[start : start + 500]))
            .order_by(col(EntryPart.entry_id), col(EntryPart.part))
        ).all()
        for part, tape_file, volume in rows:
            parts.setdefault(part.entry_id, []).append((part, tape_file, volume))
    return parts


def read_split_member(
    media: Media,
    session: Session,
    entry: Entry,
    pieces: list[Piece],
    feed: Callable[[bytes], None],
    with_header: bool,
) -> None:
    """Feed the member's bytes, part after part, loading each part's tape.

    :param with_header: feed the original header first (for tar); without it
        only the data is fed (for hashing).
    :raises CatalogError: a part is shorter on tape than the catalog says.
    """
    wanted = [(volume, tape_file, part) for part, tape_file, volume in pieces]
    for part, access in read_tape_files(media, session, wanted):
        reader = access.at(part.offset)
        header = reader.read(part.header_size)
        if part.part == 1 and with_header:
            feed(header)
        missing = feed_bytes(reader, part.data_size, feed)
        if missing:
            raise CatalogError(
                f"{entry.path_text}: part {part.part} on tape {access.volume.label} ends {missing} bytes early."
            )
