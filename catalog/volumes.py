"""Tapes as the catalog sees them: labelling, pools, retention and recycling.

A tape belongs to the pool it was labelled for.  Its data is in retention
until ``retention_days`` after the newest good job on it ended; once every
job is past that, the tape is ``expired`` and may be recycled: relabelled,
with everything the catalog knew about its old contents marked overwritten
(search and restore stop offering it).  A tape holding the newest catalog
snapshot is kept as well (``protection``).
"""

from __future__ import annotations

import uuid as uuidlib
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from pytp.tapeio.drive import Drive
from pytp.tapeio.volume_label import VolumeLabel, write_label

from .config import Config
from .copy_promote import promote_copies
from .errors import WrongTape
from .light_sql import CoreReader
from .models import TapeFile, TapeFileStatus, Volume, VolumeStatus, row_id, utcnow
from .retention import (  # noqa: F401 - pool_accepts and newest_snapshot_volume are re-exported
    newest_snapshot_volume,
    pool_accepts,
    pool_retention_days,
    retention_ends,
    status_shown,
)


def retention_days(config: Config, volume: Volume) -> int | None:
    """The pool's retention as configured now, else what was recorded at labelling."""
    return pool_retention_days(config, volume.pool, volume.retention_days)


#: ``shown_status``'s ``end`` when the caller has not looked it up
UNKNOWN: Any = object()


def retention_end(session: Session, config: Config, volume: Volume) -> datetime | None:
    """When the good data on ``volume`` leaves retention (None: it holds none; ``FOREVER``: kept forever).

    The rules are ``retention.retention_ends``: its own jobs, the later jobs
    of their chains that need them, and for a copy tape its original's jobs.
    """
    return None if volume.id is None else retention_ends(CoreReader(session), config, volume.id).get(volume.id)


def retention_ends_of(session: Session, config: Config, volumes: list[Volume]) -> dict[int, datetime | None]:
    """:func:`retention_end` of each of ``volumes``, by id, from one reading of the catalog."""
    ends = retention_ends(CoreReader(session), config)
    return {row_id(v): ends.get(row_id(v)) for v in volumes}


def _until(end: datetime | None) -> str:
    return "forever" if end is None or end.year == 9999 else f"until {end:%Y-%m-%d %H:%M} UTC"


def protection(
    session: Session, config: Config, volume: Volume, now: datetime | None = None, end: datetime | None = UNKNOWN
) -> str | None:
    """Why ``volume`` must not be overwritten, or None when nothing on it needs keeping.

    A tape is protected while it holds a good job in retention or the newest
    catalog snapshot, and always while it is retired.  Failed jobs protect
    nothing: no restore offers them.
    """
    if volume.status == VolumeStatus.RETIRED:
        return f"Tape '{volume.label}' is retired (`pytp tape unretire {volume.label}` to use it again)."
    if end is UNKNOWN:
        end = retention_end(session, config, volume)
    if end is not None and end > (now or utcnow()):
        return f"Tape '{volume.label}' holds data in retention {_until(end)}."
    if newest_snapshot_volume(CoreReader(session)) == volume.id:
        return f"Tape '{volume.label}' holds the newest catalog snapshot (`pytp catalog backup`)."
    return None


def shown_status(
    session: Session, config: Config, volume: Volume, now: datetime | None = None, end: datetime | None = UNKNOWN
) -> str:
    """The status to show: the stored one, or ``expired`` once its good data left retention.

    The rule is ``retention.status_shown``; the snapshot is looked up only for a tape past its retention.

    :param end: its :func:`retention_end`, when the caller has it (``retention_ends_of``).
    """
    if volume.status in (VolumeStatus.ERROR, VolumeStatus.RETIRED):
        return volume.status
    if end is UNKNOWN:
        end = retention_end(session, config, volume)
    now = now or utcnow()
    if end is None or end > now:
        return volume.status
    return status_shown(volume.status, end, newest_snapshot_volume(CoreReader(session)) == volume.id, now)


def mark_error(session: Session, volume: Volume, reason: str) -> None:
    """Set ``volume`` aside: no backup appends to it until it is relabelled or checked."""
    volume.status = VolumeStatus.ERROR
    volume.status_reason = reason
    session.add(volume)
    session.commit()


class LabelClash(WrongTape):
    """Another tape already holds this label (or barcode) in the catalog: try another blank."""


def _reserve(
    session: Session, text: str, uuid: str, pool: str, block_size: int, barcode: str | None, library: str | None
) -> Volume:
    """Insert the volume row for ``text`` in its own transaction, before anything is written to tape.

    The unique label index decides between two hosts labelling at once: the
    loser gets ``LabelClash`` and has written nothing, so no cartridge carries
    a label the catalog does not know.  The row stays ``error`` until the label
    is on tape; a crash in between leaves a blank tape whose barcode the catalog
    knows, which the next backup labels again (``Media._blank_but_known``).
    """
    volume = Volume(
        label=text,
        uuid=uuid,
        pool=pool,
        block_size=block_size,
        barcode=barcode,
        library=library,
        status=VolumeStatus.ERROR,
        status_reason="label being written",
        file_count=0,
    )
    session.add(volume)
    try:
        session.commit()
    except IntegrityError as err:
        session.rollback()
        raise LabelClash(
            f"Another pytp labelled a tape {text} at the same moment (barcode {barcode or 'none'}); not written."
        ) from err
    return volume


def write_volume_label(
    session: Session,
    config: Config,
    drive: Drive,
    block_size: int,
    *,
    text: str,
    pool: str,
    barcode: str | None,
    library: str | None,
    reuse: Volume | None = None,
    copy_of: Volume | None = None,
) -> Volume:
    """Write a new label at the start of the tape and record the volume.

    :param copy_of: the tape this one will mirror (``pytp copy``): the label
        names it, and the volume row points to it (``copy_of_id``).

    :param reuse: the catalog's volume for this tape when it is relabelled: its
        row is kept (history stays readable) and its old tape files are marked
        overwritten, so nothing on them is offered again.
    :raises WrongTape: another tape already has the label ``text``.
    """
    clash = session.exec(select(Volume).where(Volume.label == text)).first()
    if clash is not None and (reuse is None or clash.id != reuse.id):
        raise LabelClash(
            f"The catalog already has a tape labelled {text} (barcode {clash.barcode or 'none'}). "
            "Choose another label, or check the library for a duplicate barcode."
        )
    label = VolumeLabel(
        label=text,
        uuid=str(uuidlib.uuid4()),
        pool=pool,
        block_size=block_size,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        barcode=barcode,
        copy_of_uuid=copy_of.uuid if copy_of is not None else None,
        copy_of_label=copy_of.label if copy_of is not None else None,
    )
    volume = reuse or _reserve(session, text, label.uuid, pool, block_size, barcode, library)
    try:
        write_label(drive, block_size, label)
    except BaseException:
        if reuse is None:
            # The label never reached tape: give the name back, leave no row for a blank tape.
            session.rollback()
            session.delete(volume)
            session.commit()
        raise
    if reuse is not None:
        promote_copies(session, reuse)  # a copy of what this tape held stays restorable
        session.exec(  # type: ignore[call-overload]
            update(TapeFile).where(col(TapeFile.volume_id) == reuse.id).values(status=TapeFileStatus.OVERWRITTEN)
        )
    volume.label = text
    volume.uuid = label.uuid
    volume.pool = pool
    volume.barcode = barcode
    volume.block_size = block_size
    volume.status = VolumeStatus.APPENDABLE
    volume.status_reason = None
    volume.file_count = 1
    volume.bytes_written = 0
    volume.capacity = drive.capacity()
    volume.library = library
    volume.retention_days = config.pool(pool).retention_days
    volume.created_at = utcnow()
    volume.last_written_at = None
    volume.copy_of_id = copy_of.id if copy_of is not None else None
    session.add(volume)
    session.commit()
    return volume


def set_retired(session: Session, label: str, retired: bool) -> Volume:
    """Retire the tape ``label`` (never written or recycled again, still read) or bring it back.

    Unretiring makes it ``appendable`` again: what is on it stays, and the end
    of data is checked against the catalog before any append, as always.
    :raises NotFound: no tape has that label.
    """
    from .errors import NotFound

    volume = session.exec(select(Volume).where(Volume.label == label)).first()
    if volume is None:
        raise NotFound(f"No tape labelled '{label}' in the catalog (see `pytp tapes`).")
    if retired:
        volume.status = VolumeStatus.RETIRED
    elif volume.status == VolumeStatus.RETIRED:
        volume.status = VolumeStatus.APPENDABLE
    session.add(volume)
    session.commit()
    session.refresh(volume)
    return volume
