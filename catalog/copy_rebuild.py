"""``pytp catalog rebuild`` of a copy tape: recorded as the copy it is, never as a second original.

A copy tape (``pytp copy``) holds its source's manifests byte for byte.
Importing them as if the copy were an original would attach the jobs' entries
to two tapes at once and let a backup append to a copy.  So a tape whose label
names its source (``copy_of_uuid``) is recorded the way ``pytp copy`` records
it: a volume pointing to the source and one tape-file row per tape file that
mirrors a complete tape file of the source.  The source must be in the catalog
first (rebuilt from its own tape, or still known); otherwise the copy is not
read, and the message says to rebuild the source first.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from pytp.tapeio.drive import Drive
from pytp.tapeio.volume_label import VolumeLabel

from .errors import CatalogError
from .models import TapeFile, TapeFileStatus, Volume, row_id
from .rebuild import volume_from_label
from .rebuild_scan import length_against


class CopyNotImported(CatalogError):
    """A copy tape could not be recorded by a rebuild."""


class SourceNotInCatalog(CopyNotImported):
    """The copy's source tape is not in the catalog (not read yet, lost, or recycled)."""


def import_copy_tape(
    session: Session,
    drive: Drive,
    label: VolumeLabel,
    barcode: str | None,
    library: str | None,
    source: Volume | None = None,
) -> str:
    """Record the copy tape in ``drive`` (its ``label`` read already) and what it holds; nothing is committed.

    Each tape file is checked to hold exactly the source's block count
    (spacing over the blocks, then expecting the filemark): a file cut short
    by an interrupted copy ends the tape files recorded.

    :param source: the tape it mirrors, when not the one its label names (that one is
        gone, and another copy of it became the original of its jobs).
    :returns: a note for the rebuild report.
    :raises CopyNotImported: the source is not in the catalog, or the label clashes with another tape.
    """
    if source is None:
        source = session.exec(select(Volume).where(Volume.uuid == label.copy_of_uuid)).first()
    if source is None:
        raise SourceNotInCatalog(
            f"it is a copy of tape {label.copy_of_label}, which is not in the catalog: rebuild from "
            f"{label.copy_of_label} first, then from this copy (tape not read; a second `pytp catalog rebuild "
            "--all` reads it once its source is in)"
        )
    copy = session.exec(select(Volume).where(Volume.uuid == label.uuid)).first()
    if copy is None:
        if session.exec(select(Volume).where(Volume.label == label.label)).first() is not None:
            raise CopyNotImported(f"another tape with label '{label.label}' is in the catalog: tape not read")
        copy = volume_from_label(label, barcode, library, copy_of_id=source.id)
        session.add(copy)
        session.flush()
    elif copy.copy_of_id != source.id or copy.label != label.label:
        raise CopyNotImported(f"the catalog knows tape uuid {label.uuid} as {copy.label}, not as this copy: not read")
    held = set(
        session.exec(
            select(TapeFile.file_number).where(
                TapeFile.volume_id == copy.id, TapeFile.status == TapeFileStatus.COMPLETE
            )
        ).all()
    )
    originals = {
        t.file_number: t
        for t in session.exec(
            select(TapeFile).where(TapeFile.volume_id == source.id, TapeFile.status == TapeFileStatus.COMPLETE)
        ).all()
    }
    drive.eod()
    files = drive.status().file_number
    recorded = 0
    last = 0
    for number in range(1, max(files, 1)):
        original = originals.get(number)
        if original is None or length_against(drive, number, original.blocks, original.block_size) is not None:
            break
        last = number
        if number in held:
            continue
        session.add(
            TapeFile(
                job_id=None,
                volume_id=row_id(copy),
                file_number=number,
                kind=original.kind,
                source_root=original.source_root,
                status=TapeFileStatus.COMPLETE,
                block_size=original.block_size,
                blocks=original.blocks,
                total_bytes=original.total_bytes,
                copy_of_id=original.id,
            )
        )
        recorded += 1
    # A tape file past ``last`` (an interrupted copy) is written over by the next `pytp copy`.
    for row in session.exec(
        select(TapeFile).where(TapeFile.volume_id == copy.id, col(TapeFile.file_number) > last)
    ).all():
        if row.status == TapeFileStatus.COMPLETE:
            row.status = TapeFileStatus.INCOMPLETE
            session.add(row)
    copy.file_count = last + 1
    session.flush()
    copy.bytes_written = sum(
        t.total_bytes
        for t in session.exec(
            select(TapeFile).where(TapeFile.volume_id == copy.id, TapeFile.status == TapeFileStatus.COMPLETE)
        ).all()
    )
    session.add(copy)
    session.flush()
    return f"copy of {source.label}: tape files 1-{last} mirror it ({recorded} recorded now)"
