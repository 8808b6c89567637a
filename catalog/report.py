"""What ``pytp report`` shows, collected from the catalog and the changers.

Plain data, no HTML: the library picture (every slot and drive with the
tape in it and how full the catalog says that tape is), usage per pool, jobs
per day, tapes due for a scrub or for return, and the problems an
administrator must look at.  The page itself is rendered in ``pytp.cli``
(``report_html``); another format can be built on the same :class:`Report`.

Everything is "as far as the catalog knows": a tape's fill is what pytp
wrote to it, its place is what the changer says now, and a tape no library
holds is outside (offline or in a vault).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any

from sqlmodel import Session, col, select

from pytp.tapeio.changer import ChangerStatus
from pytp.tapeio.errors import TapeIOError

from .config import Config, LibraryConfig
from .devices import open_changer
from .errors import CatalogError
from .models import Job, JobProblem, JobStatus, Volume, VolumeStatus, utcnow
from .vault_report import DUE_BACK, ONE_PLACE, vault_report
from .volumes import retention_ends_of, shown_status

#: How many problem paths of one partial job the report names (the rest is a count).
PROBLEM_PATHS_SHOWN = 3


def aware(value: datetime | None) -> datetime | None:
    """``value`` with its zone: SQLite hands back naive datetimes, which pytp stores in UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class TapeInfo:
    """One tape the catalog knows: what the picture, the pools and the lists show of it."""

    label: str
    barcode: str | None
    pool: str
    #: shown status: appendable, full, error, expired (``volumes.shown_status``)
    status: str
    used: int
    capacity: int | None
    #: library:slot N, library:drive NAME, or None when no library holds it
    location: str | None
    last_written: datetime | None
    last_verified: datetime | None
    retention_end: datetime | None
    reason: str | None = None
    #: the vault it was exported to (``pytp vault export``), None while in a library
    vault: str | None = None

    @property
    def fill(self) -> float | None:
        """Fraction of the capacity written (0..1), None when the capacity is unknown."""
        if not self.capacity:
            return None
        return min(1.0, self.used / self.capacity)

    @property
    def has_data(self) -> bool:
        return self.used > 0


@dataclass(frozen=True)
class Element:
    """A slot or drive of a library and the cartridge in it.

    :param kind: ``drive``, ``slot`` or ``import_export``.
    :param number: slot number (mtx's, from 1) or drive element (from 0).
    :param name: the configured drive name, for drives.
    :param tape: the catalog's tape for the barcode, None for a blank or foreign cartridge.
    """

    kind: str
    number: int
    full: bool
    barcode: str | None = None
    name: str | None = None
    tape: TapeInfo | None = None
    cleaning: bool = False


@dataclass(frozen=True)
class LibraryPicture:
    """One library as its changer reports it now; ``error`` says why it could not be read."""

    name: str
    elements: list[Element] = field(default_factory=list)
    error: str | None = None

    def of_kind(self, kind: str) -> list[Element]:
        return [e for e in self.elements if e.kind == kind]


@dataclass(frozen=True)
class PoolUsage:
    name: str
    retention_days: int | None
    tapes: int = 0
    appendable: int = 0
    full: int = 0
    expired: int = 0
    error: int = 0
    used: int = 0
    capacity: int = 0
    #: space still writable on the pool's appendable tapes
    free: int = 0


@dataclass(frozen=True)
class DayCount:
    """Jobs started on one day (in the report's time zone), by status."""

    day: date
    ok: int = 0
    partial: int = 0
    failed: int = 0
    running: int = 0

    @property
    def total(self) -> int:
        return self.ok + self.partial + self.failed + self.running


@dataclass(frozen=True)
class DueTape:
    tape: TapeInfo
    #: why it is listed, in words
    reason: str


@dataclass(frozen=True)
class Problem:
    """Something to look at: a failed or partial job, or a tape in error.

    :param kind: ``failed job``, ``partial job`` or ``tape in error``.
    :param subject: the job (``#12 nightly``) or tape label.
    :param details: the message and, for a partial job, the first problem paths.
    """

    kind: str
    subject: str
    when: datetime | None
    details: list[str] = field(default_factory=list)
    job_id: int | None = None


@dataclass(frozen=True)
class Report:
    generated_at: datetime
    days: int
    scrub_age_days: int
    libraries: list[LibraryPicture]
    #: tapes no configured library holds now
    outside: list[TapeInfo]
    pools: list[PoolUsage]
    jobs_per_day: list[DayCount]
    due_scrub: list[DueTape]
    due_return: list[DueTape]
    problems: list[Problem]
    tapes: int = 0
    jobs: int = 0


def _tapes(session: Session, config: Config, where: dict[str, str], now: datetime) -> list[TapeInfo]:
    tapes = []
    volumes = list(session.exec(select(Volume).order_by(col(Volume.label))).all())
    ends = retention_ends_of(session, config, volumes)  # one reading of the chains for all tapes
    for volume in volumes:
        tapes.append(
            TapeInfo(
                label=volume.label,
                barcode=volume.barcode,
                pool=volume.pool,
                status=shown_status(session, config, volume, now, ends[volume.id]),
                used=volume.bytes_written,
                capacity=volume.capacity,
                location=where.get(volume.barcode or "") or where.get(volume.label),
                last_written=aware(volume.last_written_at),
                # The catalog records no verification yet (`pytp scrub`, issue 11,
                # is to add ``last_verified_at``); until it does, every tape with
                # data counts as never verified, which is the truth it knows.
                last_verified=aware(getattr(volume, "last_verified_at", None)),
                retention_end=aware(ends[volume.id]),
                reason=volume.status_reason if volume.status == VolumeStatus.ERROR else None,
                vault=volume.vault,
            )
        )
    return tapes


def _changer_status(library: LibraryConfig) -> tuple[ChangerStatus | None, str | None]:
    """The changer's inventory, or why it could not be read (a report still shows the rest)."""
    try:
        return open_changer(library).status(), None
    except (TapeIOError, CatalogError) as err:
        return None, str(err)


def _pictures(config: Config) -> tuple[list[tuple[LibraryConfig, ChangerStatus | None, str | None]], dict[str, str]]:
    """Every library's status (read once), and where each barcode sits."""
    statuses = []
    where: dict[str, str] = {}
    for library in config.libraries:
        status, error = _changer_status(library)
        statuses.append((library, status, error))
        if status is None:
            continue
        for drive in status.drives:
            if drive.full and drive.barcode:
                where[drive.barcode] = f"{library.name}:drive {_drive_name(library, drive.index)}"
        for slot in status.slots:
            if slot.full and slot.barcode:
                kind = "i/e slot" if slot.import_export else "slot"
                where[slot.barcode] = f"{library.name}:{kind} {slot.number}"
    return statuses, where


def _drive_name(library: LibraryConfig, index: int) -> str:
    return library.drives[index] if index < len(library.drives) else str(index)


def _picture(
    library: LibraryConfig, status: ChangerStatus | None, error: str | None, by_barcode: dict[str, TapeInfo]
) -> LibraryPicture:
    if status is None:
        return LibraryPicture(library.name, error=error)
    elements = [
        Element(
            "drive",
            d.index,
            d.full,
            d.barcode,
            name=_drive_name(library, d.index),
            tape=by_barcode.get(d.barcode or ""),
            cleaning=bool(d.barcode and d.barcode.upper().startswith("CLN")),
        )
        for d in status.drives
    ]
    elements += [
        Element(
            "import_export" if s.import_export else "slot",
            s.number,
            s.full,
            s.barcode,
            tape=by_barcode.get(s.barcode or ""),
            cleaning=s.is_cleaning,
        )
        for s in status.slots
    ]
    return LibraryPicture(library.name, elements)


def _pools(config: Config, tapes: Iterable[TapeInfo]) -> list[PoolUsage]:
    """Usage per pool: the configured pools in their order, then pools only tapes still name."""
    retention = {p.name: p.retention_days for p in config.pools}
    totals: dict[str, dict[str, int]] = {name: {} for name in retention}
    for tape in tapes:
        t = totals.setdefault(tape.pool, {})
        t["tapes"] = t.get("tapes", 0) + 1
        if tape.status in ("appendable", "full", "expired", "error"):
            t[tape.status] = t.get(tape.status, 0) + 1
        t["used"] = t.get("used", 0) + tape.used
        t["capacity"] = t.get("capacity", 0) + (tape.capacity or 0)
        if tape.status == VolumeStatus.APPENDABLE and tape.capacity:
            t["free"] = t.get("free", 0) + max(0, tape.capacity - tape.used)
    return [PoolUsage(name, retention.get(name), **t) for name, t in totals.items()]


def _jobs_per_day(session: Session, first: datetime, zone: tzinfo, days: list[date]) -> tuple[list[DayCount], int]:
    counts: dict[date, dict[str, int]] = {day: {} for day in days}
    seen = 0
    for started, status in session.exec(
        select(Job.started_at, Job.status).where(col(Job.started_at) >= first.astimezone(timezone.utc))
    ).all():
        day = aware(started).astimezone(zone).date()  # type: ignore[union-attr]
        if day in counts and status in (JobStatus.OK, JobStatus.PARTIAL, JobStatus.FAILED, JobStatus.RUNNING):
            counts[day][status] = counts[day].get(status, 0) + 1
            seen += 1
    return [DayCount(day, **counts[day]) for day in days], seen


def _job_subject(job: Job) -> str:
    return f"#{job.id} {job.name}" if job.name else f"#{job.id}"


def _problems(session: Session, tapes: list[TapeInfo], since: datetime) -> list[Problem]:
    """Tapes in error, then failed and partial jobs of the period, newest first."""
    found = [
        Problem("tape in error", t.label, t.last_written, [t.reason or "set aside"])
        for t in tapes
        if t.status == "error"
    ]
    jobs = session.exec(
        select(Job)
        .where(col(Job.status).in_((JobStatus.FAILED, JobStatus.PARTIAL)), col(Job.started_at) >= since)
        .order_by(col(Job.started_at).desc(), col(Job.id).desc())
    ).all()
    for job in jobs:
        when = aware(job.ended_at or job.started_at)
        if job.status == JobStatus.FAILED:
            found.append(Problem("failed job", _job_subject(job), when, [job.message or "no message recorded"], job.id))
            continue
        paths = session.exec(
            select(JobProblem)
            .where(JobProblem.job_id == job.id)
            .order_by(col(JobProblem.id))
            .limit(PROBLEM_PATHS_SHOWN)
        ).all()
        details = [f"{job.problems} problem(s)"] + [f"{p.path_text}: {p.message}" for p in paths]
        if job.problems > len(paths):
            details.append(f"… and {job.problems - len(paths)} more (`pytp jobs`)")
        found.append(Problem("partial job", _job_subject(job), when, details, job.id))
    return found


def _copy_problems(vaults: list[dict[str, Any]]) -> list[Problem]:
    """Jobs whose copies are all in one place (``pytp vault report``): one fire or theft takes them all.

    Jobs with a single copy are not listed here: a site that makes no copies would see every job.
    """
    return [
        Problem(ONE_PLACE, f"#{r['job']} {r['name']}" if r["name"] else f"#{r['job']}", None, [r["detail"]], r["job"])
        for r in vaults
        if r["problem"] == ONE_PLACE
    ]


def _due_scrub(session: Session, tapes: list[TapeInfo], now: datetime, max_age_days: int) -> list[DueTape]:
    """The tapes ``pytp scrub --max-age {max_age_days}d`` would verify, in its order and with its reasons.

    Never verified, verified too long ago, or error counts grown since
    (``scrub.rank``); tapes in error are left out (already listed as problems).
    """
    from .scrub import ScrubOptions, candidates, rank

    by_label = {t.label: t for t in tapes}
    due = []
    for candidate in rank(candidates(session, ScrubOptions(max_age=timedelta(days=max_age_days)), now)):
        tape = by_label.get(candidate.label)
        if tape is not None and tape.status != VolumeStatus.ERROR:
            due.append(DueTape(tape, candidate.reason))
    return due


def _due_return(tapes: list[TapeInfo], vault_due: dict[str, str]) -> list[DueTape]:
    """Tapes whose data left retention: outside the library they are due back, inside free to reuse.

    :param vault_due: tapes in a vault with nothing left to keep, by label, with why
        (``vault_report``: it counts copy tapes, whose rows carry no job).
    """
    due = []
    for tape in tapes:
        if tape.vault is not None:
            if tape.label in vault_due:
                due.append(DueTape(tape, f"{vault_due[tape.label]}: due back from vault {tape.vault}"))
            continue
        if tape.status != VolumeStatus.EXPIRED:
            continue
        if tape.location is None:
            due.append(DueTape(tape, "retention ended: due back from outside the library"))
        else:
            due.append(DueTape(tape, "retention ended: free to relabel and reuse"))
    return due


def collect_report(
    session: Session,
    config: Config,
    *,
    days: int = 30,
    scrub_age_days: int = 180,
    now: datetime | None = None,
    zone: tzinfo | None = None,
) -> Report:
    """Gather everything the report page shows.

    Each changer is asked for its status once; one that does not answer is
    shown with its error and its tapes count as outside.

    :param days: how many days (today included) the job chart and the problem list cover.
    :param scrub_age_days: a tape last verified longer ago than this is due for a scrub.
    :param now: the report's time (tests); default now.
    :param zone: the time zone days are counted in; default the machine's local zone.
    """
    now = aware(now) or utcnow()
    zone = zone or now.astimezone().tzinfo or timezone.utc
    local_now = now.astimezone(zone)
    today = local_now.date()
    day_list = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
    first = datetime.combine(day_list[0], datetime.min.time(), tzinfo=zone)

    statuses, where = _pictures(config)
    tapes = _tapes(session, config, where, now)
    by_barcode = {t.barcode: t for t in tapes if t.barcode}
    by_barcode.update({t.label: t for t in tapes if t.label not in by_barcode})
    per_day, job_count = _jobs_per_day(session, first, zone, day_list)
    vaults = vault_report(session, config, now=now)
    return Report(
        generated_at=local_now,
        days=days,
        scrub_age_days=scrub_age_days,
        libraries=[_picture(lib, status, error, by_barcode) for lib, status, error in statuses],
        outside=[t for t in tapes if t.location is None],
        pools=_pools(config, tapes),
        jobs_per_day=per_day,
        due_scrub=_due_scrub(session, tapes, now, scrub_age_days),
        due_return=_due_return(tapes, {r["tape"]: r["detail"] for r in vaults if r["problem"] == DUE_BACK}),
        problems=_problems(session, tapes, first) + _copy_problems(vaults),
        tapes=len(tapes),
        jobs=job_count,
    )
