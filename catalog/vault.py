"""Vaults: tapes sent off-site through the import/export slots, and brought back (issue 11, part 1).

A tape is either in a library (where exactly, the changer says) or in a
named vault (``volume.vault``, since ``volume.vault_since``).  ``export``
moves a tape into an empty mail slot and records the vault; ``import`` takes
every cartridge from the mail slots into storage slots, reads its label and
records a known tape as back.  A label is trusted only when it agrees with
the barcode the library reads.  The vault report (jobs with too few copies,
copies all in one place, tapes due back) lives in :mod:`.vault_report`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from pytp.tapeio.changer import (
    Changer,
    ChangerStatus,
    DriveElement,
    free_mail_slot,
    free_storage_slot,
    is_cleaning_barcode,
)
from pytp.tapeio.errors import ChangerError, DriveBusy, ForeignTape, TapeIOError
from pytp.tapeio.exitcodes import EXIT_USAGE
from pytp.tapeio.procinfo import describe_holder

from .cleaning import cartridge_row
from .config import Config, LibraryConfig
from .devices import Selection, drive_lock, lock_holder, open_changer
from .errors import CatalogError, ConfigError, NotFound, WrongTape
from .media import MOVES, Media, open_media
from .models import Job, JobStatus, TapeFile, TapeFileStatus, Volume, row_id, utcnow

#: a vault name is shown in tables and typed by hand: keep it short and printable
MAX_VAULT_NAME = 64


class BadVaultName(CatalogError):
    """The vault name is empty, too long, or holds control characters."""

    exit_code = EXIT_USAGE


def check_vault_name(name: str) -> str:
    """``name`` if it can name a vault.

    :raises BadVaultName: empty, longer than 64 characters, padded, or not printable.
    """
    if not name or len(name) > MAX_VAULT_NAME or name.strip() != name or not name.isprintable():
        raise BadVaultName(
            f"Invalid vault name {name!r}: use 1 to {MAX_VAULT_NAME} printable characters, e.g. offsite-A."
        )
    return name


def iso(value: datetime | None) -> str | None:
    """ISO 8601 with its zone: SQLite hands back naive datetimes, which pytp stores in UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat(timespec="seconds")


def whereabouts(volume: Volume) -> str:
    """``in vault NAME since …`` for an exported tape, for messages that say where to fetch it."""
    if volume.vault is None:
        return "not in a vault"
    since = iso(volume.vault_since)
    return f"in vault {volume.vault}" + (f" since {since}" if since else "")


def find_volume(session: Session, name: str) -> Volume:
    """The tape labelled or barcoded ``name``.

    :raises NotFound: the catalog knows no such tape.
    """
    volume = session.exec(select(Volume).where((col(Volume.label) == name) | (col(Volume.barcode) == name))).first()
    if volume is None:
        raise NotFound(f"No tape labelled '{name}' in the catalog (see `pytp tapes`).")
    return volume


# ------------------------------------------------------------------ export


@dataclass(frozen=True)
class Exported:
    """One tape moved into a mail slot and recorded in a vault."""

    label: str
    barcode: str
    vault: str
    since: datetime
    library: str
    mail_slot: int
    #: the drive it was unloaded from first, if it was in one
    unloaded_from: str | None = None


def _running_job(session: Session, volume: Volume) -> Job | None:
    """A running job writing to ``volume`` (a job between two tapes holds no drive lock on this one)."""
    return session.exec(
        select(Job)
        .join(TapeFile, col(TapeFile.job_id) == Job.id)
        .where(
            TapeFile.volume_id == volume.id,
            TapeFile.status == TapeFileStatus.WRITING,
            Job.status == JobStatus.RUNNING,
        )
    ).first()


def _locate(config: Config, barcode: str, library: str | None) -> tuple[LibraryConfig, Changer, ChangerStatus] | None:
    """The library holding ``barcode`` (the named one only, with ``library``), its changer and status."""
    libraries = [config.library(library)] if library else list(config.libraries)
    for lib in libraries:
        try:
            changer = open_changer(lib)
            status = changer.status()
        except (TapeIOError, ConfigError):
            if library:
                raise
            continue  # a library that does not answer cannot hold it for us now
        if status.find_barcode(barcode) is not None:
            return lib, changer, status
    return None


def export_tapes(
    engine: Engine,
    config: Config,
    tapes: list[str],
    vault: str,
    *,
    library: str | None = None,
    now: datetime | None = None,
) -> Iterator[Exported]:
    """Move each tape of ``tapes`` into an empty mail slot and record it in ``vault``.

    Every name is looked up before anything moves, so a typo exports nothing.
    A tape in a drive is unloaded first, under that drive's lock: a drive a
    running job holds is refused, as is a tape a running job is writing.  The
    vault is recorded only after the move succeeded; an export cut short
    between the two finds the tape in a mail slot when run again.

    :param tapes: labels or barcodes.
    :param vault: where the tapes go (``offsite-A``).
    :param library: look only in this library (default: every configured one).
    :returns: one :class:`Exported` per tape, as each is done.
    :raises NotFound: a name the catalog does not know (nothing is moved).
    :raises WrongTape: a tape without barcode, or in no library.
    :raises DriveBusy: the tape is in a drive another pytp is using.
    :raises ChangerError: no mail slot is empty (the tapes exported before are listed and recorded).
    """
    vault = check_vault_name(vault)
    with Session(engine, expire_on_commit=False) as session:
        volumes: list[Volume] = []
        for name in tapes:
            volume = find_volume(session, name)
            if volume.id not in {v.id for v in volumes}:
                volumes.append(volume)
        for volume in volumes:
            yield _export_one(session, config, volume, vault, library, now or utcnow())


def _export_one(
    session: Session, config: Config, volume: Volume, vault: str, library: str | None, now: datetime
) -> Exported:
    if not volume.barcode:
        raise WrongTape(
            f"Tape {volume.label} has no barcode: a library cannot find it for an export. "
            "Take it out by hand (`pytp unload`, `pytp move`)."
        )
    job = _running_job(session, volume)
    if job is not None:
        raise DriveBusy(
            f"Tape {volume.label} is being written by running job {job.id}: export it when the job is done."
        )
    found = _locate(config, volume.barcode, library)
    if found is None:
        if volume.vault:
            where = whereabouts(volume)
        else:
            where = f"not in library {library}" if library else "in no configured library"
        raise WrongTape(
            f"Tape {volume.label} (barcode {volume.barcode}) is {where}: only a tape in a library can be exported."
        )
    lib, changer, status = found
    place = status.find_barcode(volume.barcode)
    unloaded_from = None
    if isinstance(place, DriveElement):
        if free_mail_slot(status) is None:
            # No mail slot: raise its error before the drive is unloaded, so nothing moves.
            changer.export_media(volume.barcode, status)
        name = lib.drives[place.index] if place.index < len(lib.drives) else None
        if name is None:
            raise ConfigError(
                f"Tape {volume.label} is in drive element {place.index} of library {lib.name}, "
                "which the configuration does not list: unload it by hand first."
            )
        drive = config.drive(name)
        try:
            with drive_lock(drive):
                changer.return_to_home(place.index, status)
                MOVES.info("unloaded %s from drive %s for export", volume.barcode, name)
                status = changer.status()
        except DriveBusy as err:
            raise DriveBusy(
                f"Tape {volume.label} is in drive {name}, which a running pytp holds "
                f"({describe_holder(lock_holder(drive))}): export it when that job is done."
            ) from err
        unloaded_from = name
    mail_slot = changer.export_media(volume.barcode, status)
    MOVES.info("exported %s to import/export slot %d of %s for vault %s", volume.barcode, mail_slot, lib.name, vault)
    volume.vault = vault
    volume.vault_since = now
    session.add(volume)
    session.commit()
    return Exported(volume.label, volume.barcode, vault, now, lib.name, mail_slot, unloaded_from)


# ------------------------------------------------------------------ import

#: what ``import`` found in a mail slot
BACK = "back"  # a known tape, its vault cleared
KNOWN = "known"  # a known tape that was not recorded in a vault
CLEANING = "cleaning"
BLANK = "blank"
UNKNOWN = "unknown"  # a pytp label this catalog does not know
FOREIGN = "foreign"  # data pytp did not write
MISMATCH = "mismatch"  # label and barcode disagree: not trusted, nothing recorded
UNREADABLE = "unreadable"


@dataclass(frozen=True)
class Imported:
    """One cartridge taken from a mail slot into a storage slot, and what it is."""

    #: None for a tape found in a storage slot while the catalog has it in a vault
    mail_slot: int | None
    slot: int
    barcode: str | None
    result: str
    label: str | None = None
    #: the vault it came back from (``back``), or that the catalog still records (``mismatch``)
    vault: str | None = None
    note: str | None = None


def import_tapes(engine: Engine, config: Config, selection: Selection) -> Iterator[Imported]:
    """Take every cartridge from the library's mail slots into storage slots and identify it.

    Each cartridge (but a cleaning one) is loaded into the selected drive,
    its label read, and put back into its new slot; the drive's own tape is
    loaded again at the end.  A tape the catalog knows, whose label agrees
    with its barcode, is recorded as back in the library.  Tapes the catalog
    has in a vault that sit in a storage slot (an import cut short, or put
    straight into a slot) are identified the same way.

    :param selection: the drive to read labels with, in the library to import into.
    :returns: one :class:`Imported` per cartridge, as each is done.
    :raises ConfigError: the drive is in no library.
    :raises ChangerError: no storage slot is empty (the cartridges not yet
        taken stay in their mail slots; those before are listed).
    """
    if selection.library is None or selection.element is None:
        raise ConfigError(f"Drive {selection.drive.name} is not in a library: `pytp vault import` needs one.")
    library = selection.library
    status = open_changer(library).status()
    mail = [s for s in status.slots if s.import_export and s.full]
    with Session(engine) as session:
        away = {v.barcode for v in session.exec(select(Volume).where(col(Volume.vault).is_not(None))).all()}
    # A tape the catalog has in a vault but the library holds in a storage slot: an import
    # killed between the move and the label read, or an operator who put it straight into a slot.
    strays = [s for s in status.slots if s.full and not s.import_export and s.barcode in away]
    if not mail and not strays:
        return
    with open_media(config, selection, borrow=True) as media, Session(engine, expire_on_commit=False) as session:
        assert media.changer is not None
        for index, element in enumerate(mail):
            status = media.changer.status()
            target = free_storage_slot(status)
            if target is None:
                left = len(mail) - index
                raise ChangerError(
                    f"No empty storage slot in library {library.name} for the cartridge in import/export slot "
                    f"{element.number}: {left} cartridge(s) stay in the mail slots. Free slots "
                    "(export tapes, or take some out with `pytp move`), then run `pytp vault import` again."
                )
            media.changer.transfer(element.number, target)
            MOVES.info("imported %s from import/export slot %d to slot %d", element.barcode, element.number, target)
            if is_cleaning_barcode(element.barcode) and element.barcode:
                # Not loaded (it would clean the drive); the catalog counts its uses from now on.
                row = cartridge_row(session, element.barcode)
                uses, most = row.uses, row.max_uses
                session.commit()
                note = f"cleaning cartridge, {uses} of {most} uses"
                yield Imported(element.number, target, element.barcode, CLEANING, note=note)
                continue
            yield _identify(session, media, element.number, target, element.barcode, library.name)
        for element in strays:
            yield _identify(session, media, None, element.number, element.barcode, library.name)


def _read(media: Media, slot: int) -> tuple[str, object]:
    """Load ``slot``, read its label, return the tape to ``slot``.

    :returns: (``ok``, the label or None for a blank), or (``foreign``/``unreadable``, why).
    """
    try:
        media.load(slot)
        try:
            return "ok", media.read_label()
        except ForeignTape as err:
            return FOREIGN, str(err)
        finally:
            media.unload()
    except (TapeIOError, ChangerError) as err:
        return UNREADABLE, str(err)


def _identify(
    session: Session, media: Media, mail_slot: int | None, slot: int, barcode: str | None, library: str
) -> Imported:
    """What the cartridge now in ``slot`` is; a known tape whose label agrees with its barcode is recorded as back."""
    outcome, value = _read(media, slot)
    by_barcode = session.exec(select(Volume).where(Volume.barcode == barcode)).first() if barcode else None

    def result(kind: str, label: str | None = None, vault: str | None = None, note: str | None = None) -> Imported:
        return Imported(mail_slot, slot, barcode, kind, label, vault, note)

    if outcome != "ok":
        note = str(value)
        if by_barcode is not None:
            note += f" The catalog knows barcode {barcode} as tape {by_barcode.label}: check the cartridge."
        return result(outcome, by_barcode.label if by_barcode else None, by_barcode.vault if by_barcode else None, note)
    label = value
    if label is None:
        if by_barcode is not None:
            return result(
                MISMATCH,
                by_barcode.label,
                by_barcode.vault,
                f"blank, but the catalog knows barcode {barcode} as tape {by_barcode.label}, "
                "which holds data: not recorded as back. Check the cartridge.",
            )
        return result(BLANK, note="not labelled: a backup labels it when it needs a tape")
    from pytp.tapeio.volume_label import VolumeLabel

    assert isinstance(label, VolumeLabel)
    if label.barcode and barcode and label.barcode != barcode:
        return result(
            MISMATCH,
            label.label,
            by_barcode.vault if by_barcode else None,
            f"the label '{label.label}' was written for barcode {label.barcode}, but the cartridge has barcode "
            f"{barcode}: not trusted, nothing recorded. Check the cartridge.",
        )
    volume = session.exec(select(Volume).where(Volume.uuid == label.uuid)).first()
    if volume is None:
        note = (
            f"labelled '{label.label}' by pytp, but not in this catalog: "
            f"`pytp catalog rebuild --tape {barcode or label.label}` adds its jobs"
        )
        if by_barcode is not None:
            note += f"; the catalog knows barcode {barcode} as tape {by_barcode.label}"
            return result(MISMATCH, label.label, by_barcode.vault, note)
        return result(UNKNOWN, label.label, note=note)
    if volume.barcode and barcode and volume.barcode != barcode:
        return result(
            MISMATCH,
            volume.label,
            volume.vault,
            f"tape {volume.label} has barcode {volume.barcode} in the catalog, but this cartridge has barcode "
            f"{barcode}: not trusted, nothing recorded. Check the cartridge.",
        )
    came_from = volume.vault
    since = volume.vault_since
    volume.vault = None
    volume.vault_since = None
    volume.library = library  # it lives here now: backups of this library may append to it again
    if barcode and not volume.barcode:
        volume.barcode = barcode
    session.add(volume)
    session.commit()
    if came_from is None:
        return result(KNOWN, volume.label, note="known tape, not recorded in a vault")
    note = f"back from vault {came_from}" + (f" (since {iso(since)})" if since else "")
    return result(BACK, volume.label, came_from, note)


# ------------------------------------------------------------------ list

#: the fields of every ``pytp vault list`` row, in every format
LIST_FIELDS = ("vault", "label", "barcode", "pool", "since", "retention_end", "due_back", "waiting_in")


def vault_rows(session: Session, config: Config, now: datetime | None = None) -> list[dict[str, object]]:
    """One row per tape in a vault, by vault and label (``LIST_FIELDS``).

    ``due_back`` says nothing on the tape needs keeping any more (copies
    counted, ``vault_report.retention``); ``waiting_in`` names the mail slot
    of a tape exported but not yet taken out of the library.
    """
    from .inventory import locate_barcodes
    from .vault_report import retention

    now = now or utcnow()
    volumes = session.exec(
        select(Volume).where(col(Volume.vault).is_not(None)).order_by(col(Volume.vault), col(Volume.label))
    ).all()
    if not volumes:
        return []
    where = locate_barcodes(config)
    state = retention(session, config, now)
    rows = []
    for volume in volumes:
        end = state.ends.get(row_id(volume))
        place = where.get(volume.barcode or "")
        rows.append(
            {
                "vault": volume.vault,
                "label": volume.label,
                "barcode": volume.barcode,
                "pool": volume.pool,
                "since": iso(volume.vault_since),
                "retention_end": "forever" if end is not None and end.year == 9999 else iso(end),
                "due_back": row_id(volume) not in state.kept,
                "waiting_in": str(place) if place else None,
            }
        )
    return rows
