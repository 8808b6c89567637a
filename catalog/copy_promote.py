"""A copy takes over when its original tape is recycled (issue 9 probe: an offsite copy was lost).

``pytp copy`` records a copy's tape files as mirrors (``copy_of_id``) of the
source's rows, and the entries stay on the source's rows.  An original tape
recycled by its own pool's retention would take its entries with it, though
the copy (kept by its pool's, often far longer, retention) still holds every
block.  So before a tape is overwritten, each of its tape files that has a
complete copy hands its entries and job to that copy, which becomes the
original; further copies then mirror it.  The copy tapes of the recycled tape
stop being copies (there is nothing left to mirror) and are closed to new
data: they are ``full``.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import Session, col, select

from .models import Entry, EntryPart, TapeFile, TapeFileStatus, Volume, VolumeStatus, row_id


def promote_copies(session: Session, volume: Volume) -> list[str]:
    """Before ``volume`` is overwritten: its copies become the originals of what it held.

    Nothing is committed.

    :returns: the labels of the tapes that now hold what was on ``volume``.
    """
    heirs: set[int] = set()
    rows = session.exec(
        select(TapeFile).where(TapeFile.volume_id == volume.id, TapeFile.status != TapeFileStatus.OVERWRITTEN)
    ).all()
    for source in rows:
        copies = session.exec(
            select(TapeFile)
            .where(TapeFile.copy_of_id == source.id, TapeFile.status == TapeFileStatus.COMPLETE)
            .order_by(col(TapeFile.id))
        ).all()
        if not copies:
            continue
        heir, others = copies[0], copies[1:]
        for table in (Entry, EntryPart):
            session.exec(  # type: ignore[call-overload]
                update(table).where(col(table.tape_file_id) == source.id).values(tape_file_id=heir.id)
            )
        heir.copy_of_id = None
        heir.job_id = source.job_id
        source.job_id = None  # the job's data is on the heir now: the recycled tape no longer holds it
        session.add_all([heir, source])
        for other in others:
            other.copy_of_id = row_id(heir)
            session.add(other)
        heirs.add(heir.volume_id)
    for copy in session.exec(select(Volume).where(Volume.copy_of_id == volume.id)).all():
        copy.copy_of_id = None
        if copy.status == VolumeStatus.APPENDABLE:
            copy.status = VolumeStatus.FULL
        session.add(copy)
    session.flush()
    if not heirs:
        return []
    return sorted(session.exec(select(Volume.label).where(col(Volume.id).in_(sorted(heirs)))).all())
