"""Getting the right tape under the head: mounting for append and for reading.

The drive is opened only after the changer has moved tapes, because an open
``st`` device holds the medium (and a virtual drive its lock).  Every load is
followed by a rewind and a label read: a tape is trusted only after its label
says what the catalog expects.
"""

from __future__ import annotations

import logging
import uuid as uuidlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlmodel import Session, col, select

from pytp.tapeio.changer import Changer, ChangerStatus, DriveElement, StorageElement
from pytp.tapeio.drive import Drive, ensure_block_size
from pytp.tapeio.errors import ChangerError, DriveBusy, ForeignTape, NoMedium, TapeIOError
from pytp.tapeio.ready import wait_until_ready
from pytp.tapeio.volume_label import VolumeLabel, read_label

from .config import Config
from .devices import Selection, drive_lock, open_changer, open_drive
from .errors import CatalogError, WrongTape
from .models import TapeFile, TapeFileStatus, Volume, VolumeStatus, utcnow
from .pool_choice import Candidate, pool_candidates
from .volumes import LabelClash, mark_error, pool_accepts, protection, retention_ends_of, write_volume_label

#: how many made-up labels a blank without barcode tries before giving up
GENERATED_LABEL_TRIES = 5

#: every changer move of a job, for its log (``joblog.MoveRecorder``)
MOVES = logging.getLogger("pytp.moves")


def made_up_label() -> str:
    """A label for a blank tape without barcode."""
    return f"PYTP-{uuidlib.uuid4().hex[:8].upper()}"


class NoTapeAvailable(WrongTape):
    """No usable tape is available."""


class Media:
    """The drive of a ``Selection`` and its changer, opened as needed.

    :param config: the effective configuration.
    :param selection: the drive (and library) to use; the caller holds its lock.
    """

    def __init__(self, config: Config, selection: Selection) -> None:
        self.config = config
        self.selection = selection
        self.block_size = selection.drive.block_size
        self.changer: Changer | None = open_changer(selection.library) if selection.library else None
        self._drive: Drive | None = None
        #: how many tapes this object loaded through the changer
        self.loads = 0
        #: why tapes looked at for an append were marked ``error`` and skipped
        self.set_aside: list[str] = []

    # drive handling ------------------------------------------------------
    @property
    def drive(self) -> Drive:
        if self._drive is None:
            self._drive = open_drive(self.selection.drive)
        return self._drive

    def close(self) -> None:
        if self._drive is not None:
            drive, self._drive = self._drive, None
            drive.close()

    def __enter__(self) -> Media:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # changer handling ----------------------------------------------------
    def changer_status(self) -> ChangerStatus | None:
        return self.changer.status() if self.changer else None

    def unload(self, element_index: int | None = None) -> None:
        """Return the tape in the drive to its home slot (``Changer.return_to_home``).

        :param element_index: another drive of the library (its lock held by the caller).
        """
        assert self.changer is not None and self.selection.element is not None
        index = self.selection.element if element_index is None else element_index
        if index == self.selection.element:
            self.close()
        status = self.changer.status()
        element = status.drive(index)
        slot = self.changer.return_to_home(index, status)
        if element is not None and slot is not None:
            MOVES.info("unloaded %s from drive element %d to slot %d", element.barcode or "a tape", index, slot)

    def load(self, slot: int) -> None:
        """Load the tape from ``slot`` (unloading the drive first), rewind it."""
        assert self.changer is not None and self.selection.element is not None
        status = self.changer.status()
        element = status.drive(self.selection.element)
        if element is not None and element.full:
            self.unload()
        self.close()
        self.changer.load(slot, self.selection.element)
        self.loads += 1
        barcode = getattr(status.slot(slot), "barcode", None) or "a tape"
        MOVES.info("loaded %s from slot %d into drive %s", barcode, slot, self.selection.drive.name)
        # The robot is done; the drive threads (and a new cartridge calibrates) before it is ready.
        waited = wait_until_ready(self.drive, self.config.timeouts.drive_ready_seconds)
        if waited >= 1.0:
            MOVES.info("drive %s was ready %.0f s after the load", self.selection.drive.name, waited)
        # The st driver reports file/block -1 after a changer load (DESIGN.md).
        self.drive.rewind()

    def has_tape(self) -> bool:
        return self.drive.status().online

    def read_label(self) -> VolumeLabel | None:
        ensure_block_size(self.drive, self.block_size)
        return read_label(self.drive, self.block_size)

    # mounting --------------------------------------------------------------
    def mount(self, session: Session, volume: Volume) -> None:
        """Make ``volume`` the tape in the drive, loading it if needed; check its label.

        :raises WrongTape: it is not in the library, or its label disagrees.
        """
        status = self.changer_status()
        if status is not None and self.selection.element is not None:
            element = status.drive(self.selection.element)
            in_drive = element is not None and element.full
            if not (in_drive and volume.barcode and element.barcode == volume.barcode):  # type: ignore[union-attr]
                place = status.find_barcode(volume.barcode) if volume.barcode else None
                if isinstance(place, DriveElement):
                    place = self._fetch_from_drive(volume, place.index)
                if place is None:
                    elsewhere = self._library_holding(volume.barcode)
                    if elsewhere is not None:
                        raise WrongTape(
                            f"Tape {volume.label} (barcode {volume.barcode}) is in library {elsewhere}, not in "
                            f"{self.changer.name}: run the command again with -l {elsewhere}."  # type: ignore[union-attr]
                        )
                    # An exported tape says which vault to fetch it from (``pytp vault``).
                    vault = f", in vault {volume.vault}" if volume.vault else ""
                    raise WrongTape(
                        f"Tape {volume.label} (barcode {volume.barcode or 'none'}{vault}) is not in library "
                        f"{self.changer.name}. Insert it and run the command again"  # type: ignore[union-attr]
                        + (" (`pytp vault import` takes it from the import/export slots)." if vault else ".")
                    )
                self.load(place.number)
        label = self._label_or_none()
        if label is None or label.uuid != volume.uuid:
            found = f"tape '{label.label}'" if label else "no pytp tape"
            raise WrongTape(
                f"Drive {self.selection.drive.name} holds {found}, not {volume.label}. "
                f"Load tape {volume.label} (barcode {volume.barcode or 'none'})."
            )
        self.check_barcode(label)

    def _library_holding(self, barcode: str | None) -> str | None:
        """Another configured library whose changer holds ``barcode`` (for the message), if any."""
        if not barcode:
            return None
        for library in self.config.libraries:
            if self.selection.library is not None and library.name == self.selection.library.name:
                continue
            try:
                if open_changer(library).status().find_barcode(barcode) is not None:
                    return library.name
            except (TapeIOError, OSError):
                continue  # a changer that cannot answer now: the message stays the plain one
        return None

    def _fetch_from_drive(self, volume: Volume, index: int) -> StorageElement:
        """Return ``volume`` from another drive of the library to a slot, if no one uses that drive.

        Tapes stay in their drive after a job; with two drives, the tape a
        restore or verify needs is often in the other one.

        :raises WrongTape: the other drive is in use.
        """
        library = self.selection.library
        assert library is not None and self.changer is not None
        other = self.config.drive(library.drives[index]) if index < len(library.drives) else None
        try:
            if other is None:
                raise DriveBusy(f"drive element {index} is not in the configuration")
            with drive_lock(other):
                self.unload(index)
        except DriveBusy as err:
            raise WrongTape(
                f"Tape {volume.label} is in another drive (element {index}) of library {self.changer.name}, "
                f"which is in use ({err}). Wait for it, or use that drive."
            ) from err
        place = self.changer.status().find_barcode(volume.barcode) if volume.barcode else None
        if not isinstance(place, StorageElement):
            raise WrongTape(f"Tape {volume.label} could not be returned to a slot of library {self.changer.name}.")
        return place

    def _label_or_none(self) -> VolumeLabel | None:
        try:
            if not self.has_tape():
                return None
            return self.read_label()
        except (ForeignTape, NoMedium):
            return None

    def mount_for_append(self, session: Session, pool: str) -> Volume:
        """Find, load and check a tape of ``pool`` that can take a new job.

        A tape in the drive is used when it is blank or an appendable tape of the
        pool; with a changer, tapes are tried from the slots in the order
        ``pool_choice.pool_candidates`` gives: appendable tapes of the pool,
        blank cartridges, and last tapes of the pool whose data expired.  An
        appendable tape whose end of data disagrees with the catalog is marked
        ``error`` (the reason is kept for ``pytp tapes``) and the next one tried.
        A tape another pytp loads meanwhile is passed over.

        :raises WrongTape: the tape in a drive without changer cannot be used.
        :raises NoTapeAvailable: the library has no usable tape.
        """
        if self.has_tape_in_drive():
            volume = self._usable(session, pool, fail=self.changer is None)
            if volume is not None:
                return volume
            self.unload()
        if self.changer is None:
            raise NoTapeAvailable(
                f"No tape in drive {self.selection.drive.name}. Insert a blank tape or one of pool '{pool}'."
            )
        status = self.changer.status()
        known = {v.barcode: v for v in self._library_volumes(session) if v.barcode}
        for candidate in self._candidates(session, status, known, pool):
            if not self._load_if_there(candidate.slot):
                continue
            if candidate.reuse:
                # Only when nothing else was left: recycle a tape of the pool whose data expired.
                volume = candidate.volume
                assert volume is not None
                label = self._label_or_none()
                if label is not None and label.uuid == volume.uuid:
                    return self.write_label(session, text=volume.label, pool=pool, barcode=volume.barcode, reuse=volume)
            else:
                usable = self._usable(session, pool, fail=False)
                if usable is not None:
                    return usable
            self.unload()
        set_aside = "".join(f" {reason}" for reason in self.set_aside)
        raise NoTapeAvailable(
            f"No appendable, blank or expired tape for pool '{pool}' in library {self.changer.name}.{set_aside} "
            "Put blank tapes into the library (see `pytp list`)."
        )

    def _library_volumes(self, session: Session) -> list[Volume]:
        """The catalog's tapes that may be in this library: labelled here, or before libraries were recorded.

        Another host's library may hold a cartridge with the same barcode; its
        row does not make a blank of ours "known" (issue 9).
        """
        name = self.selection.library.name if self.selection.library else None
        query = select(Volume)
        if name is not None:
            query = query.where((Volume.library == name) | (col(Volume.library).is_(None)))
        return list(session.exec(query).all())

    def _candidates(
        self, session: Session, status: ChangerStatus, known: dict[str, Volume], pool: str
    ) -> list[Candidate]:
        """The library's tapes to try for ``pool``, in order (``pool_choice.pool_candidates``)."""
        now = utcnow()
        stored = [known[s.barcode] for s in status.slots if s.full and not s.import_export and s.barcode in known]
        ours = [v for v in stored if v.pool == pool]
        ends = retention_ends_of(session, self.config, ours)
        protected = {
            v.id
            for v in ours
            if (end := ends[v.id]) is not None and end <= now and protection(session, self.config, v) is not None
        }
        return pool_candidates(
            status.slots, known, pool, lambda barcode: pool_accepts(self.config, pool, barcode), ends, protected, now
        )

    def _load_if_there(self, slot: int) -> bool:
        """Load ``slot``; False if its tape is gone, taken by another pytp on another drive meanwhile."""
        try:
            self.load(slot)
        except ChangerError:
            status = self.changer.status()  # type: ignore[union-attr]
            element = status.slot(slot)
            if element is not None and element.full:
                raise  # the tape is there: the failure is real
            return False
        return True

    def has_tape_in_drive(self) -> bool:
        status = self.changer_status()
        if status is not None and self.selection.element is not None:
            element = status.drive(self.selection.element)
            return bool(element and element.full)
        return self.has_tape()

    def current_barcode(self) -> str | None:
        status = self.changer_status()
        if status is None or self.selection.element is None:
            return None
        element = status.drive(self.selection.element)
        return element.barcode if element and element.full else None

    def _usable(self, session: Session, pool: str, fail: bool) -> Volume | None:
        """The tape in the drive as a volume to append to, labelling it if blank."""
        name = self.selection.drive.name
        try:
            label = self.read_label()
        except ForeignTape as err:
            if fail:
                raise WrongTape(f"Drive {name}: {err}") from err
            return None
        barcode = self.current_barcode()
        if label is None:
            mine = {v.barcode: v for v in self._library_volumes(session) if v.barcode} if barcode else {}
            known = mine.get(barcode) if barcode else None
            if known is not None:
                return self._blank_but_known(session, known, pool, fail)
            if not pool_accepts(self.config, pool, barcode):
                if fail:
                    raise WrongTape(f"The blank tape {barcode} in drive {name} is reserved for another pool.")
                return None
            try:
                return self._label_blank(session, pool, barcode)
            except LabelClash as err:
                # Another host took the label (or owns a cartridge with this barcode): next blank.
                self.set_aside.append(f"Blank tape {barcode} was skipped: {err}")
                if fail:
                    raise
                return None
        self.check_barcode(label)
        volume = session.exec(select(Volume).where(Volume.uuid == label.uuid)).first()
        problem = None
        if volume is None:
            problem = (
                f"Tape '{label.label}' in drive {name} was labelled by pytp but is not in this catalog; "
                "pytp will not write to it. Use another tape."
            )
        elif volume.pool != pool:
            problem = (
                f"Tape '{volume.label}' in drive {name} belongs to pool '{volume.pool}', this job writes "
                f"to pool '{pool}'. Load a tape of pool '{pool}', or use --pool {volume.pool}."
            )
        elif volume.copy_of_id is not None:
            # A copy mirrors its source file by file: a job appended to it would take a file number the copy needs.
            problem = (
                f"Tape '{volume.label}' in drive {name} is a copy tape (`pytp copy`); backups do not append "
                f"to copies. Load another tape of pool '{pool}'."
            )
        elif volume.status != VolumeStatus.APPENDABLE:
            problem = f"Tape '{volume.label}' in drive {name} is {volume.status}. Load another tape of pool '{pool}'."
        if problem:
            if fail:
                raise WrongTape(problem)
            return None
        assert volume is not None
        try:
            position_at_end_of_data(session, self.drive, volume)
        except WrongTape as err:
            # One tape that disagrees with the catalog must not block the pool
            # (issue 8, defect 8): set it aside with the reason, try the next.
            mark_error(session, volume, str(err))
            self.set_aside.append(f"Tape {volume.label} was set aside (status error): {err}")
            if fail:
                raise
            return None
        if barcode and volume.barcode != barcode:
            volume.barcode = barcode
        return volume

    def _blank_but_known(self, session: Session, volume: Volume, pool: str, fail: bool) -> Volume | None:
        """A blank tape whose barcode the catalog knows: a relabel cut short by a crash, or an erased tape.

        With nothing on it that needs keeping it is labelled again, keeping its
        row; a tape on which the catalog records protected data is set aside
        as ``error`` (that data is gone) and the next tape tried.
        """
        if volume.pool != pool:
            if fail:
                raise WrongTape(
                    f"The blank tape {volume.barcode} in drive {self.selection.drive.name} is known to the catalog "
                    f"as '{volume.label}' of pool '{volume.pool}'. Load a tape of pool '{pool}', "
                    f"or use --pool {volume.pool}."
                )
            return None
        reason = protection(session, self.config, volume)
        if reason is None:
            return self.write_label(session, text=volume.label, pool=pool, barcode=volume.barcode, reuse=volume)
        message = (
            f"Tape {volume.label} is blank, but the catalog records data on it ({reason}) pytp will not write to it."
        )
        mark_error(session, volume, message)
        self.set_aside.append(f"Tape {volume.label} was set aside (status error): {message}")
        if fail:
            raise WrongTape(message)
        return None

    def _label_blank(self, session: Session, pool: str, barcode: str | None) -> Volume:
        if barcode:
            return self.write_label(session, text=barcode, pool=pool, barcode=barcode)
        # A made-up name that another host took first is simply made up again.
        for _ in range(GENERATED_LABEL_TRIES - 1):
            try:
                return self.write_label(session, text=made_up_label(), pool=pool, barcode=None)
            except LabelClash:
                continue
        return self.write_label(session, text=made_up_label(), pool=pool, barcode=None)

    def write_label(
        self,
        session: Session,
        *,
        text: str,
        pool: str,
        barcode: str | None,
        reuse: Volume | None = None,
        copy_of: Volume | None = None,
    ) -> Volume:
        """Label the tape in the drive (``volumes.write_volume_label``) in this drive's library."""
        ensure_block_size(self.drive, self.block_size)
        return write_volume_label(
            session,
            self.config,
            self.drive,
            self.block_size,
            text=text,
            pool=pool,
            barcode=barcode,
            library=self.selection.library.name if self.selection.library else None,
            reuse=reuse,
            copy_of=copy_of,
        )

    def check_barcode(self, label: VolumeLabel) -> None:
        """A tape whose label names another barcode than the library reads is refused.

        :raises WrongTape: the two disagree (a swapped or relabelled cartridge).
        """
        barcode = self.current_barcode()
        if label.barcode and barcode and label.barcode != barcode:
            raise WrongTape(
                f"The tape in drive {self.selection.drive.name} has barcode {barcode}, but its label "
                f"'{label.label}' was written for barcode {label.barcode}. Check the cartridge; pytp will not use it."
            )


@contextmanager
def open_media(
    config: Config, selection: Selection, *, borrow: bool = False, keep_loaded: bool | None = None
) -> Iterator[Media]:
    """The drive of ``selection``, taken for this process, with its changer: how every job gets at tape.

    The drive lock is held for the block and the device closed at its end.

    :param borrow: a restore or verify: leave the library as it was found.  A
        cartridge loaded only to be read goes back to its slot, and the tape
        that was in the drive before is loaded again, so the next backup does
        not append to a tape another host is reading (issue 9).
    :param keep_loaded: what a job leaves in the drive (issue 11).  False (the
        job commands without ``--keep-loaded``): with a library, the tape goes
        back to its home slot (``Changer.return_to_home``) when the block ends,
        so that no cartridge sits in a drive unattended; a borrowing job then
        reloads the tape it found in the drive.  True (``--keep-loaded``): the
        tape stays in the drive, also a borrowed one.  None (labelling,
        snapshots, copies): the tape stays, a borrowed one goes back.
    :raises DriveBusy: another pytp holds the drive.
    """
    with drive_lock(selection.drive), Media(config, selection) as media:
        before = media.current_barcode() if borrow else None
        try:
            yield media
        finally:
            if keep_loaded is None:
                if borrow and media.loads:
                    _put_back(media, before)
            elif not keep_loaded:
                _put_back(media, before, always=True)


def _put_back(media: Media, before: str | None, always: bool = False) -> None:
    """Return the tape in the drive to its slot and reload ``before`` (the barcode found in the drive).

    :param always: also when this block loaded nothing (the job's tape goes home).
    """
    if not (always or media.loads) or media.changer is None:
        return
    try:
        if media.has_tape_in_drive() and (before is None or media.current_barcode() != before):
            media.unload()
        if before is not None and media.current_barcode() != before:
            place = media.changer.status().find_barcode(before)
            if isinstance(place, StorageElement):
                media.load(place.number)
    except TapeIOError as err:
        # The job itself succeeded (or already failed, and that error is the one to report, not this
        # one raised in a finally): a tape left in the drive is not worth failing it.
        MOVES.warning("could not put the library back as it was: %s", err)


def position_at_end_of_data(session: Session, drive: Drive, volume: Volume) -> int:
    """Space to end of data and check the tape holds the files the catalog expects.

    A job that died before its first block reached tape left a tape-file row
    that is not on tape; that row is marked absent.  Any other difference
    stops the write: something else wrote to this tape, or data is missing.
    A catalog snapshot still ``writing`` here is marked incomplete
    (:func:`_settle_snapshots_left_writing`).

    :returns: the file number the next tape file gets.
    :raises WrongTape: the tape and the catalog disagree.
    """
    drive.eod()
    actual = drive.status().file_number
    expected = volume.file_count
    if actual == expected:
        _settle_snapshots_left_writing(session, volume)
        return actual
    if actual == expected - 1:
        last = session.exec(
            select(TapeFile).where(TapeFile.volume_id == volume.id, TapeFile.file_number == actual)
        ).first()
        if last is not None and last.status in (TapeFileStatus.WRITING, TapeFileStatus.INCOMPLETE):
            last.status = TapeFileStatus.ABSENT
            volume.file_count = actual
            session.add_all([last, volume])
            session.commit()
            _settle_snapshots_left_writing(session, volume)
            return actual
    if actual < 0:
        raise CatalogError(f"Drive cannot tell its position at end of data on tape {volume.label}; not writing.")
    raise WrongTape(
        f"Tape {volume.label} holds {actual} tape files but the catalog expects {expected}. "
        "Something else wrote to it, or it is not the tape the catalog knows; pytp will not append to it."
    )


def _settle_snapshots_left_writing(session: Session, volume: Volume) -> None:
    """Mark incomplete the catalog snapshots on ``volume`` still ``writing``: their process is gone.

    A `catalog backup` has no job row, so ``reconcile.reconcile_jobs`` cannot
    see one killed with SIGKILL.  This tape is in the drive this command holds
    at end of data, so no other process is writing a snapshot to it any more.
    """
    stale = session.exec(
        select(TapeFile).where(
            TapeFile.volume_id == volume.id,
            col(TapeFile.job_id).is_(None),
            TapeFile.kind == "catalog",
            TapeFile.status == TapeFileStatus.WRITING,
        )
    ).all()
    for tape_file in stale:
        tape_file.status = TapeFileStatus.INCOMPLETE
        session.add(tape_file)
    if stale:
        session.commit()
