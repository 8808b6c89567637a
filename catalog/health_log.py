"""Drive and media health around every job: readings taken, stored, summarised (issue 11, part 2).

A job (backup, restore, verify, and each tape of a scrub) runs inside a
:class:`HealthWatch`: it reads the job's drive before the job starts and after
it ends, while the job's tape is still in the drive (a restore or verify puts
a borrowed tape back only after the watch has ended).  Each reading becomes a
``health_reading`` row tied to the job(s) and to the tape in the drive, so
``pytp tapes`` shows a tape's newest error counts and ``pytp scrub`` sees
them grow.

What a job's summary shows is :meth:`HealthWatch.summary`: the TapeAlert flags
of the reading after the job (a real drive clears its flags when they are read,
so after the reading before the job they are the ones raised during it) and
the error counters' growth between the two readings.

A drive that cannot report (no ``sg_logs``, tgt rejecting LOG SENSE, a virtual
drive whose state is unreadable) is recorded as ``unavailable`` with the reason;
nothing here ever fails a job.  Readings reach the job command through
:class:`HealthRecorder`, installed around the command the way
``joblog.MoveRecorder`` collects tape moves, so the job functions' results
need no health field of their own.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from pytp.tapeio.errors import TapeIOError
from pytp.tapeio.health import CRITICAL, DriveHealth, ErrorCounters

from .config import DriveConfig
from .health_rows import flag_dict as _flag_dict
from .health_rows import local_iso as _iso  # noqa: F401 - cleaning's times are shown alike
from .health_rows import reading_dict  # noqa: F401 - re-exported for ``pytp drives``
from .models import HealthReading, Volume, utcnow

if TYPE_CHECKING:
    from .media import Media

log = logging.getLogger("pytp.health")

#: the phases of the readings around a job; a scrub uses ``SCRUB_PHASES``
JOB_PHASES = ("before", "after")
SCRUB_PHASES = ("scrub-before", "scrub")


# --- taking a reading -------------------------------------------------------------------


@dataclass
class Reading:
    """One look at a drive: what it reported, or why it reported nothing.

    :param drive: the drive's configured name.
    :param phase: ``before``/``after`` a job, ``scrub-before``/``scrub``, ``cleaning``.
    :param barcode: the cartridge in the drive when the reading was taken, if known.
    :param health: the drive's report; None when ``unavailable``.
    :param unavailable: why no report could be had.
    """

    drive: str
    phase: str
    taken_at: datetime
    barcode: str | None = None
    health: DriveHealth | None = None
    unavailable: str | None = None

    @property
    def flags(self) -> tuple[int, ...]:
        return self.health.tapealert if self.health is not None else ()


def _total(counters: ErrorCounters | None) -> int | None:
    """Corrected plus uncorrected errors: both grow as a medium or head wears (None: not reported)."""
    if counters is None or (counters.corrected is None and counters.uncorrected is None):
        return None
    return (counters.corrected or 0) + (counters.uncorrected or 0)


def read_drive(drive: DriveConfig) -> tuple[DriveHealth | None, str | None]:
    """The drive's health now, or why it cannot be had; never raises.

    Virtual drives are read from their state files and ``st`` drives through
    ``sg_logs`` on their SCSI generic node, so a drive another process holds
    (or this one: the job's open drive) still answers.
    """
    try:
        if drive.type == "virtual":
            from pytp.tapeio.virtual_drive import read_health

            health = read_health(drive.device_path)
        else:
            from pytp.tapeio.st_drive import StDrive

            health = StDrive(drive.device_path, name=drive.name).health()
    except (TapeIOError, OSError, ValueError) as err:
        return None, f"{type(err).__name__}: {err}"
    if not health.available:
        if drive.type != "virtual" and shutil.which("sg_logs") is None:
            return None, "sg_logs (sg3-utils) is not installed"
        # tgt's tape emulation answers LOG SENSE with ILLEGAL REQUEST (README, Tests)
        return None, "the drive answered no LOG SENSE page (TapeAlert 0x2E, error counters 0x02/0x03)"
    return health, None


def take_reading(drive: DriveConfig, phase: str, barcode: str | None = None) -> Reading:
    """Read ``drive`` now (:func:`read_drive`) as a :class:`Reading` of ``phase``."""
    health, why = read_drive(drive)
    return Reading(drive.name, phase, utcnow(), barcode, health, why)


# --- storing and reading back ----------------------------------------------------------


def volume_of(session: Session, barcode: str | None, library: str | None = None) -> Volume | None:
    """The catalog's tape with ``barcode``, preferring one labelled in ``library`` (hosts share catalogs)."""
    if not barcode:
        return None
    rows = session.exec(select(Volume).where(Volume.barcode == barcode)).all()
    return next((v for v in rows if v.library == library), None) or next(
        (v for v in rows if v.library is None), rows[0] if rows else None
    )


def store_readings(engine: Engine, readings: list[Reading], job_ids: list[int], library: str | None = None) -> None:
    """One ``health_reading`` row per reading and job (one without a job when there is none)."""
    with Session(engine) as session:
        for reading in readings:
            volume = volume_of(session, reading.barcode, library)
            health = reading.health
            for job_id in job_ids or [None]:
                session.add(
                    HealthReading(
                        taken_at=reading.taken_at,
                        drive=reading.drive,
                        phase=reading.phase,
                        job_id=job_id,
                        volume_id=volume.id if volume is not None else None,
                        tapealert=None if health is None else ",".join(map(str, health.tapealert)),
                        read_errors=None if health is None else _total(health.read),
                        write_errors=None if health is None else _total(health.write),
                        unavailable=reading.unavailable,
                    )
                )
        session.commit()


def newest_per_drive(session: Session) -> dict[str, HealthReading]:
    """Each drive's newest stored reading (available or not), by drive name."""
    newest = select(func.max(HealthReading.id)).group_by(col(HealthReading.drive))
    rows = session.exec(select(HealthReading).where(col(HealthReading.id).in_(newest))).all()
    return {row.drive: row for row in rows}


def error_growth(session: Session, volume: Volume) -> int:
    """How much a tape's error counts grew since its last whole-tape verify.

    The newest reading's read+write errors minus those of the newest reading
    taken at or before ``last_verified_at`` (none: from 0).  Counters that went
    down (a drive reset them) count from 0 again.
    """
    rows = session.exec(
        select(HealthReading)
        .where(HealthReading.volume_id == volume.id, col(HealthReading.unavailable).is_(None))
        .order_by(col(HealthReading.id))
    ).all()
    if not rows:
        return 0

    def total(row: HealthReading) -> int:
        return (row.read_errors or 0) + (row.write_errors or 0)

    since = _aware(volume.last_verified_at)
    base = [r for r in rows if since is not None and _aware(r.taken_at) <= since]  # type: ignore[operator]
    newest = total(rows[-1])
    start = total(base[-1]) if base else 0
    return newest - start if newest >= start else newest


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


# --- a job's watch and its summary ------------------------------------------------------


def _delta(before: ErrorCounters | None, after: ErrorCounters | None) -> dict[str, int] | None:
    """Counter growth during the job; a counter that went down was reset (a load): its new value is the growth."""
    if after is None:
        return None
    out = {}
    for name in ("corrected", "uncorrected"):
        now = getattr(after, name) or 0
        then = getattr(before, name) if before is not None else None
        out[name] = now - then if then is not None and now >= then else now
    return out


def summarise(before: Reading | None, after: Reading | None) -> dict[str, Any]:
    """The job summary's ``health`` field: flags raised (after the job) and error counter growth."""
    last = after or before
    if last is None:
        return {
            "drive": None,
            "available": False,
            "unavailable": "no reading was taken",
            "tapealert": [],
            "read_errors": None,
            "write_errors": None,
            "cleaning": None,
        }
    health = last.health
    earlier = before.health if before is not None and after is not None else None
    return {
        "drive": last.drive,
        "available": health is not None,
        "unavailable": last.unavailable,
        "tapealert": [_flag_dict(n) for n in last.flags],
        "read_errors": _delta(earlier.read if earlier else None, health.read) if health else None,
        "write_errors": _delta(earlier.write if earlier else None, health.write) if health else None,
        #: what the cleaning after the job did (``cleaning.clean_after_job``), None when none was asked for
        "cleaning": None,
    }


def health_notes(summary: dict[str, Any]) -> list[str]:
    """Lines for the job log: every critical TapeAlert flag, and a drive that could not report."""
    notes = [
        f"drive {summary['drive']}: TapeAlert {f['number']} {f['name']} ({f['severity']})"
        for f in summary["tapealert"]
        if f["severity"] == CRITICAL
    ]
    if not summary["available"] and summary["drive"]:
        notes.append(f"drive {summary['drive']}: health unavailable: {summary['unavailable']}")
    return notes


def health_text(summary: dict[str, Any]) -> str:
    """One line for people: flags by name and severity, error growth as corrected/uncorrected."""
    if not summary["available"]:
        return f"drive {summary['drive']}: unavailable ({summary['unavailable']})"
    flags = "; ".join(f"{f['number']} {f['name']} ({f['severity']})" for f in summary["tapealert"]) or "none"

    def grow(d: dict[str, int] | None) -> str:
        return "-" if d is None else f"+{d['corrected']}/+{d['uncorrected']}"

    text = (
        f"drive {summary['drive']}: TapeAlert {flags}; errors during the job (corrected/uncorrected) "
        f"read {grow(summary['read_errors'])}, write {grow(summary['write_errors'])}"
    )
    if summary.get("cleaning"):
        text += f"; cleaning: {summary['cleaning']}"
    return text


_recorders: list[HealthRecorder] = []


@dataclass(eq=False)  # recorders nest (scrub in a job run): each leaves by identity, not by equal contents
class HealthRecorder:
    """Collects what the watches that end while it is installed saw (``with HealthRecorder() as h``).

    :param summaries: each watch's summary (the job summary's ``health``).
    :param notes: each watch's lines for the job log (critical flags, cleaning).
    """

    summaries: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __enter__(self) -> HealthRecorder:
        _recorders.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self in _recorders:
            _recorders.remove(self)  # by identity (eq=False)

    def last(self) -> dict[str, Any] | None:
        return self.summaries[-1] if self.summaries else None


class HealthWatch:
    """Readings of a job's drive before and after the job, stored, summarised, and cleaning when asked for.

    Used inside the job's ``open_media`` block::

        with open_media(config, selection) as media, HealthWatch(engine, media) as health:
            ...
            health.job_ids.append(job_id)

    :param engine: the catalog.
    :param media: the job's drive and changer (``media.Media``).
    :param phases: the phase names of the two readings.
    :param clean: after the job, load a cleaning cartridge if the drive asks for one.
    """

    def __init__(self, engine: Engine, media: Media, phases: tuple[str, str] = JOB_PHASES, clean: bool = True) -> None:
        self.engine = engine
        self.media = media
        self.phases = phases
        self.clean = clean
        self.job_ids: list[int] = []
        self.before: Reading | None = None
        self.after: Reading | None = None
        self.summary: dict[str, Any] | None = None
        self.notes: list[str] = []

    def _barcode(self) -> str | None:
        """The cartridge in the job's drive: from the changer, or a standalone virtual drive's state."""
        try:
            barcode = self.media.current_barcode()
            if barcode is None and self.media.changer is None and self.media.selection.drive.type == "virtual":
                from pytp.tapeio.virtual_drive import loaded_tape
                from pytp.tapeio.virtual_tape import tape_barcode

                tape = loaded_tape(self.media.selection.drive.device_path)
                barcode = tape_barcode(tape) if tape is not None else None
            return barcode
        except Exception as err:  # noqa: BLE001 - health is never worth failing a job
            log.debug("no barcode for the health reading: %s", err)
            return None

    def _read(self, phase: str) -> Reading:
        return take_reading(self.media.selection.drive, phase, self._barcode())

    def __enter__(self) -> HealthWatch:
        try:
            self.before = self._read(self.phases[0])
        except Exception as err:  # noqa: BLE001
            self.before = Reading(self.media.selection.drive.name, self.phases[0], utcnow(), unavailable=str(err))
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        try:
            self._finish(interrupted=isinstance(err, KeyboardInterrupt))
        except Exception as failure:  # noqa: BLE001 - the job's own outcome stands
            log.warning("health reading after the job failed: %s", failure)

    def _finish(self, interrupted: bool) -> None:
        self.after = self._read(self.phases[1])
        summary = summarise(self.before, self.after)
        notes = health_notes(summary)
        library = self.media.selection.library.name if self.media.selection.library else None
        readings = [r for r in (self.before, self.after) if r is not None]
        try:
            store_readings(self.engine, readings, self.job_ids, library)
        except Exception as err:  # noqa: BLE001 - a catalog that cannot take it: say so, go on
            notes.append(f"the health readings could not be stored: {err}")
        health = self.after.health
        if self.clean and not interrupted and health is not None and health.needs_cleaning:
            from .cleaning import clean_after_job

            outcome = clean_after_job(self.engine, self.media, health)
            summary["cleaning"] = outcome
            notes.append(f"drive {self.media.selection.drive.name}: {outcome}")
        self.summary, self.notes = summary, notes
        for recorder in _recorders:
            recorder.summaries.append(summary)
            recorder.notes.extend(notes)
