"""Cleaning cartridges: choosing one, running it through a drive, counting its uses (issue 11, part 2).

A drive asks for cleaning with TapeAlert 20 (clean now) or 21 (clean
periodic).  After a job, :func:`clean_after_job` answers: it loads a cleaning
cartridge (barcode ``CLN…``) from the drive's library, lets the drive clean
(it cleans on load and ejects when done; the unload waits for that), puts the
cartridge back and counts the use in ``cleaning_cartridge``.  ``pytp clean
DRIVE`` is :func:`clean_drive` on demand.

A cartridge is used up when its uses reach ``max_uses`` (``cleaning.max_uses``
in the configuration, default 50: what LTO universal cleaning cartridges are
good for; every cartridge follows the configured value) or when the drive reported
TapeAlert 22 (expired cleaning media) or 23 (invalid cleaning tape) with it
loaded: its ``max_uses`` becomes 0 (the drive's word is final, whatever the
configuration says), it is never loaded again, and the message says to replace it.
Cleaning cartridges are never labelled or written
(``tapeio.changer.is_cleaning_barcode``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from pytp.tapeio.changer import Changer, StorageElement
from pytp.tapeio.errors import ChangerError, TapeIOError
from pytp.tapeio.health import DriveHealth

from .config import DriveConfig
from .health_log import take_reading
from .models import CleaningCartridge, utcnow

if TYPE_CHECKING:
    from .media import Media

#: TapeAlert flags a drive sets when the cleaning cartridge it was given cannot clean
EXPIRED_FLAGS = (22, 23)
#: ``max_uses`` of a cartridge the drive reported used up (``EXPIRED_FLAGS``)
REJECTED = 0


class NoCleaningCartridge(ChangerError):
    """The library holds no usable cleaning cartridge."""


@dataclass(frozen=True)
class Cleaned:
    """What a cleaning did.

    :param barcode: the cleaning cartridge's barcode.
    :param slot: the slot it came from and went back to.
    :param uses: its uses, this one included.
    :param max_uses: how many it is good for.
    :param expired: the drive reported the cartridge used up (TapeAlert 22/23): it did not clean.
    """

    drive: str
    barcode: str
    slot: int
    uses: int
    max_uses: int
    expired: bool = False

    def describe(self) -> str:
        if self.expired:
            return (
                f"drive {self.drive} rejected cleaning cartridge {self.barcode} from slot {self.slot} as used up "
                f"(TapeAlert 22/23) after {self.uses} use(s); the drive was not cleaned: replace the cartridge."
            )
        return f"cleaned with {self.barcode} from slot {self.slot} (use {self.uses} of {self.max_uses})"


def cartridge_row(session: Session, barcode: str, max_uses: int | None = None) -> CleaningCartridge:
    """The catalog's row of cleaning cartridge ``barcode``, added (0 uses) the first time it is seen.

    :param max_uses: the configured uses per cartridge, which every cartridge
        follows except one the drive rejected (:data:`REJECTED`).
    """
    row = session.exec(select(CleaningCartridge).where(CleaningCartridge.barcode == barcode)).first()
    if row is None:
        row = CleaningCartridge(barcode=barcode, **({"max_uses": max_uses} if max_uses else {}))
        session.add(row)
        session.flush()
    elif max_uses and row.max_uses not in (REJECTED, max_uses):
        row.max_uses = max_uses
        session.add(row)
        session.flush()
    return row


def choose_cartridge(
    session: Session, changer: Changer, max_uses: int | None = None
) -> tuple[StorageElement, CleaningCartridge]:
    """The cleaning cartridge to use: a storage slot before a mail slot, the fewest uses first.

    :param max_uses: the configured uses per cartridge (``cartridge_row``).
    :raises NoCleaningCartridge: none is in a slot, or every one is used up (named, with its uses).
    """
    status = changer.status()
    cleaners = [s for s in status.slots if s.full and s.is_cleaning and s.barcode]
    if not cleaners:
        raise NoCleaningCartridge(
            f"Library {changer.name} holds no cleaning cartridge (barcode CLN…) in a slot: insert one and retry."
        )
    rows = {s.barcode: cartridge_row(session, s.barcode, max_uses) for s in cleaners if s.barcode}
    usable = [s for s in cleaners if rows[s.barcode].uses < rows[s.barcode].max_uses]  # type: ignore[index]
    if not usable:
        spent = ", ".join(
            f"{b} ({r.uses} use(s); the drive reported it expired)"
            if r.max_uses == REJECTED
            else f"{b} ({r.uses} of {r.max_uses} uses)"
            for b, r in rows.items()
        )
        raise NoCleaningCartridge(
            f"Every cleaning cartridge in library {changer.name} is used up: {spent}. "
            "Replace it with a new one (a new barcode) and retry."
        )
    # A storage slot before a mail slot: an operator may be about to take the latter.
    chosen = min(usable, key=lambda s: (s.import_export, rows[s.barcode].uses, s.number))  # type: ignore[index]
    return chosen, rows[chosen.barcode]  # type: ignore[index]


def clean_drive(
    engine: Engine, changer: Changer, element: int, drive: DriveConfig, max_uses: int | None = None
) -> Cleaned:
    """Clean the drive at ``element`` of ``changer``'s library and count the use.

    The caller holds the drive's lock and has closed its device.  A tape in
    the drive goes back to its home slot first.  The drive's health is read
    while the cartridge is in it: TapeAlert 22/23 marks the cartridge used up.

    :param max_uses: the configured uses per cartridge (``Config.cleaning_max_uses``).

    :raises NoCleaningCartridge: no usable cleaning cartridge.
    :raises ChangerError: a move failed.
    """
    from .media import MOVES

    with Session(engine) as session:
        slot, row = choose_cartridge(session, changer, max_uses)
        barcode = row.barcode
        session.commit()  # a cartridge seen for the first time is counted from now on
    status = changer.status()
    changer.return_to_home(element, status)
    changer.load(slot.number, element)
    MOVES.info("loaded cleaning cartridge %s from slot %d into drive %s", barcode, slot.number, drive.name)
    reading = take_reading(drive, "cleaning", barcode)
    changer.unload(slot.number, element)
    MOVES.info("unloaded cleaning cartridge %s from drive %s to slot %d", barcode, drive.name, slot.number)
    expired = any(n in EXPIRED_FLAGS for n in reading.flags)
    with Session(engine) as session:
        row = cartridge_row(session, barcode)
        row.uses += 1
        row.last_used_at = utcnow()
        row.last_drive = drive.name
        if expired:
            row.max_uses = REJECTED  # used up: never chosen again
        session.add(row)
        session.commit()
        return Cleaned(drive.name, barcode, slot.number, row.uses, row.max_uses, expired)


def clean_after_job(engine: Engine, media: Media, health: DriveHealth) -> str:
    """The drive asked for cleaning (``health.needs_cleaning``) after a job: clean it if it can be done.

    Never raises: a drive outside a library, no usable cartridge or a failed
    move is a note in the job log, not a failure of the job.

    :param media: the job's ``media.Media`` (its drive lock is held).
    :returns: what happened, for the job log.
    """
    flags = ",".join(str(n) for n in health.tapealert if n in (20, 21)) or "cleaning bit"
    selection, changer = media.selection, media.changer
    if changer is None or selection.element is None:
        return f"asks for cleaning (TapeAlert {flags}) and is not in a library: insert a cleaning cartridge by hand"
    try:
        media.close()  # the open device holds the medium; the changer needs the drive
        done = clean_drive(engine, changer, selection.element, selection.drive, media.config.cleaning_max_uses)
    except (TapeIOError, OSError) as err:
        return f"asks for cleaning (TapeAlert {flags}), not cleaned: {err}"
    return done.describe()


def cartridge_rows(session: Session) -> list[dict[str, object]]:
    """Every cleaning cartridge the catalog counted, JSON-ready."""
    from .health_log import _iso

    return [
        {
            "barcode": r.barcode,
            "uses": r.uses,
            "max_uses": r.max_uses,
            "used_up": r.uses >= r.max_uses,
            "last_used_at": _iso(r.last_used_at),
            "last_drive": r.last_drive,
        }
        for r in session.exec(select(CleaningCartridge).order_by(CleaningCartridge.barcode)).all()
    ]
