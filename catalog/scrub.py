"""``pytp scrub``: verify the tapes most in need, whole, within a time budget (issue 11, part 2).

Which tapes, in which order (:func:`rank`):

1. never verified, then last verified longer ago than ``max_age`` (oldest first);
2. tapes whose error counts grew since their last verify (``health_log.error_growth``),
   the largest growth first;
3. within each, a tape with no second copy before one that has a copy
   (a copy tape's ``copy_of_id`` names its source; either side counts as copied).

Tapes verified within ``max_age`` whose error counts did not grow are not due.
Tapes in ``error`` status, expired tapes (nothing on them is kept), tapes in a
vault or outside the library, and tapes of another library are skipped, each
with the reason.

Each tape is verified whole by ``verify.verify_tape`` (every member of every
good job on it read back and its xxh3 compared with the catalog), which also
records ``last_verified_at``/``_result``/``_message`` and takes the health
readings (phases ``scrub-before``/``scrub``).  Each job on the tape gets a line
in its log.  A tape that fails is set aside: status ``error``, reason
``scrub failed on DATE: …``, so no backup appends to it; restores still read
it, and a later verify or scrub that passes makes it ``full`` again.  When a
copy exists, the result names it for a new copy (``pytp copy --tape COPY``).

The budget is checked before each tape but the first: a scrub always
verifies at least one tape, and never starts a new one once the budget is
spent (what was left is listed).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from pytp.tapeio.errors import TapeIOError

from .config import Config
from .devices import Selection, drive_lock
from .errors import CatalogError, NotFound
from .health_log import SCRUB_PHASES, HealthRecorder, error_growth
from .inventory import locate_barcodes
from .joblog import store_log
from .models import Job, JobStatus, TapeFile, TapeFileStatus, Volume, VolumeStatus, row_id, utcnow
from .progress import Progress as ProgressEvents
from .verify import SCRUB_FAILED, verify_tape
from .volumes import retention_ends_of, shown_status

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> timedelta:
    """``"180d"``, ``"4h"``, ``"30m"``, ``"90s"``, ``"2w"``, a sum like ``"1h30m"``, or ``"0"``.

    :raises ValueError: anything else (a number without unit, a negative or empty duration).
    """
    cleaned = text.strip().lower().replace(" ", "")
    if cleaned == "0":
        return timedelta(0)
    if not cleaned or _PART.sub("", cleaned):
        raise ValueError(
            f"'{text}' is not a duration: give a number and a unit, s, m, h, d or w (e.g. 180d, 4h, 30m, 1h30m)."
        )
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in _PART.findall(cleaned)))


@dataclass
class ScrubOptions:
    """What ``pytp scrub`` was asked.

    :param max_age: a tape last verified longer ago than this is due.
    :param budget: stop starting new tapes once this much time is spent; None: no limit.
    :param pool: only this pool's tapes.
    :param dry_run: rank and list, verify nothing.
    """

    max_age: timedelta = timedelta(days=180)
    budget: timedelta | None = None
    pool: str | None = None
    dry_run: bool = False


@dataclass
class Candidate:
    """A tape with data, and why (or whether) it is due for a scrub."""

    volume_id: int
    label: str
    pool: str
    last_verified_at: datetime | None
    last_verify_result: str | None
    growth: int
    copies: list[str]
    #: 0 never verified, 1 too long ago, 2 error counts grew; None: not due
    tier: int | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "tape": self.label,
            "pool": self.pool,
            "reason": self.reason,
            "last_verified": _iso(self.last_verified_at),
            "last_verify_result": self.last_verify_result,
            "error_growth": self.growth,
            "copies": list(self.copies),
        }


@dataclass
class TapeScrub:
    """One tape's scrub: ``ok``, ``failed`` (data damaged), or ``not verified`` (it could not be read)."""

    tape: str
    result: str
    reason: str
    checked: int = 0
    bytes: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    message: str = ""
    seconds: float = 0.0
    copies: list[str] = field(default_factory=list)
    recopy: str | None = None
    exit_code: int = 0
    health: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "tape": self.tape,
            "result": self.result,
            "reason": self.reason,
            "checked": self.checked,
            "bytes": self.bytes,
            "problems": len(self.problems),
            "message": self.message,
            "seconds": round(self.seconds, 3),
            "copies": list(self.copies),
            "recopy": self.recopy,
            "health": self.health,
        }


@dataclass
class ScrubResult:
    """What a scrub did and left: tapes verified, tapes left by the budget, tapes skipped."""

    tapes: list[TapeScrub] = field(default_factory=list)
    planned: list[Candidate] = field(default_factory=list)
    left: list[Candidate] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    not_due: int = 0

    @property
    def failed(self) -> list[TapeScrub]:
        return [t for t in self.tapes if t.result == "failed"]

    @property
    def unread(self) -> list[TapeScrub]:
        return [t for t in self.tapes if t.result == "not verified"]


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _iso(value: datetime | None) -> str | None:
    value = _aware(value)
    return value.astimezone().isoformat() if value is not None else None


def _copies(session: Session, volume: Volume) -> list[str]:
    """The other copies of ``volume``'s data: its copy tapes, and its source if it is a copy."""
    labels = [v.label for v in session.exec(select(Volume).where(Volume.copy_of_id == volume.id)).all()]
    if volume.copy_of_id is not None:
        source = session.get(Volume, volume.copy_of_id)
        if source is not None:
            labels.insert(0, source.label)
    return labels


def _recopy_command(engine: Engine, failed_id: int, other: str) -> str:
    """The `pytp copy` that makes a new good copy of a failed tape's data, read from ``other``.

    A failed original is copied again from its copy (``--tape COPY`` mirrors the
    original) into the copy's pool; a failed copy is made again from its
    original into its own pool.
    """
    with Session(engine) as session:
        failed = session.get(Volume, failed_id)
        partner = session.exec(select(Volume).where(Volume.label == other)).first()
    copy = failed if failed is not None and failed.copy_of_id is not None else partner
    pool = f" --pool {copy.pool}" if copy is not None else ""
    return f"pytp copy --tape {other}{pool}"


def _tier(volume: Volume, growth: int, now: datetime, max_age: timedelta) -> tuple[int | None, str]:
    last = _aware(volume.last_verified_at)
    if last is None:
        return 0, "never verified"
    if last < now - max_age:
        return 1, f"last verified {(now - last).days} day(s) ago"
    if growth > 0:
        return 2, f"error counts grew by {growth} since its last verify"
    return None, f"verified {(now - last).days} day(s) ago"


def rank(candidates: list[Candidate]) -> list[Candidate]:
    """The due candidates in order of need (module docstring); the others are left out."""

    def key(c: Candidate) -> tuple[Any, ...]:
        copied = 1 if c.copies else 0
        if c.tier == 1:
            when = _aware(c.last_verified_at)
            return (1, when.timestamp() if when else 0.0, -c.growth, copied, c.label)
        return (c.tier, 0.0, -c.growth, copied, c.label)

    return sorted((c for c in candidates if c.tier is not None), key=key)


def candidates(session: Session, options: ScrubOptions, now: datetime | None = None) -> list[Candidate]:
    """Every tape holding a good job's data or a copy of it (of ``options.pool``), with its tier and reason."""
    now = now or utcnow()
    source = aliased(TapeFile)  # not correlated with the outer query's TapeFile
    good = (
        select(source.id)
        .join(Job, col(Job.id) == source.job_id)
        .where(source.kind == "data", source.status == TapeFileStatus.COMPLETE, col(Job.status).in_(JobStatus.GOOD))
    )
    with_data = select(TapeFile.volume_id).where(
        TapeFile.status == TapeFileStatus.COMPLETE,
        col(TapeFile.id).in_(good) | col(TapeFile.copy_of_id).in_(good),  # a copy tape's rows carry no job
    )
    query = select(Volume).where(col(Volume.id).in_(with_data)).order_by(col(Volume.label))
    if options.pool is not None:
        query = query.where(Volume.pool == options.pool)
    out = []
    for volume in session.exec(query).all():
        growth = error_growth(session, volume)
        tier, reason = _tier(volume, growth, now, options.max_age)
        out.append(
            Candidate(
                volume_id=row_id(volume),
                label=volume.label,
                pool=volume.pool,
                last_verified_at=_aware(volume.last_verified_at),
                last_verify_result=volume.last_verify_result,
                growth=growth,
                copies=_copies(session, volume),
                tier=tier,
                reason=reason,
            )
        )
    return out


def _skip_reason(volume: Volume, where: Any, selection: Selection) -> str | None:
    """Why ``volume`` cannot be scrubbed with ``selection`` now; None when it can."""
    if volume.status == VolumeStatus.ERROR:
        return f"status error ({volume.status_reason or 'no reason recorded'}): left to the operator"
    if volume.vault:
        return f"in vault {volume.vault}"
    if selection.library is None:
        return None  # a drive without changer: the tape in it is checked by its label
    if where is None:
        return "not in any library"
    if where.library != selection.library.name:
        return f"in library {where.library} (scrub it with --library {where.library})"
    return None


def run_scrub(
    engine: Engine,
    config: Config,
    selection: Selection,
    options: ScrubOptions,
    now: datetime | None = None,
    progress: ProgressEvents | None = None,
) -> ScrubResult:
    """Verify the tapes most in need, whole, until the budget is spent.

    :param selection: the drive (and library) to read with; held for the whole scrub.
    :param progress: the listener of each tape's verify (``catalog/progress.py``).
    :raises DriveBusy: another pytp holds the drive.
    """
    now = now or utcnow()
    result = ScrubResult()
    places = locate_barcodes(config) if selection.library is not None else {}
    with Session(engine) as session:
        every = candidates(session, options, now)
        result.not_due = sum(1 for c in every if c.tier is None)
        ends = retention_ends_of(session, config, list(session.exec(select(Volume)).all()))
        for candidate in rank(every):
            volume = session.get(Volume, candidate.volume_id)
            assert volume is not None
            why = _skip_reason(volume, places.get(volume.barcode or ""), selection)
            if why is None and shown_status(session, config, volume, now, ends[volume.id]) == VolumeStatus.EXPIRED:
                why = "expired: nothing on it is kept any more"
            if why is not None:
                result.skipped.append((candidate.label, why))
            else:
                result.planned.append(candidate)
    if options.dry_run or not result.planned:
        return result
    started = time.monotonic()
    # The drive stays ours between tapes: each verify's own lock adopts this one.
    with drive_lock(selection.drive):
        for index, candidate in enumerate(result.planned):
            spent = time.monotonic() - started
            if index and options.budget is not None and spent >= options.budget.total_seconds():
                result.left = result.planned[index:]
                break
            result.tapes.append(_scrub_tape(engine, config, selection, candidate, progress))
    return result


def _scrub_tape(
    engine: Engine, config: Config, selection: Selection, candidate: Candidate, progress: ProgressEvents | None = None
) -> TapeScrub:
    """Verify one tape whole, record the outcome on it and in its jobs' logs."""
    started = time.monotonic()
    done = TapeScrub(candidate.label, "ok", candidate.reason, copies=list(candidate.copies))
    with HealthRecorder() as health:
        try:
            report = verify_tape(
                engine, config, selection, tape=candidate.label, phases=SCRUB_PHASES, progress=progress
            )
        except (CatalogError, TapeIOError) as err:
            # It could not be read at all (not in the library, a changer or drive failure):
            # that says nothing about its data, so nothing is recorded on the tape.
            done.result, done.message = "not verified", str(err)
            done.exit_code = getattr(err, "exit_code", 3)
            if isinstance(err, NotFound):
                done.exit_code = 0
            done.seconds = time.monotonic() - started
            done.health = health.last()
            return done
    done.seconds = time.monotonic() - started
    done.health = health.last()
    done.checked, done.bytes, done.problems = report.checked, report.bytes, list(report.problems)
    stamp = utcnow().astimezone().isoformat(timespec="seconds")
    if report.ok:
        done.message = f"{report.checked} member(s) checked, every xxh3 matched"
    else:
        path, what = report.problems[0]
        done.result = "failed"
        done.message = f"{len(report.problems)} problem(s); the first: {path}: {what}"
        _set_aside(engine, candidate.volume_id, f"{SCRUB_FAILED} on {stamp}: {done.message}")
        if candidate.copies:
            done.recopy = _recopy_command(engine, candidate.volume_id, candidate.copies[0])
    line = f"{stamp} scrub of tape {candidate.label}: {done.result}, {done.message}"
    if done.recopy:
        line += f"; its copy {candidate.copies[0]} holds the data: {done.recopy}"
    for job_id in report.jobs:
        try:
            store_log(engine, job_id, line + "\n")
        except Exception:  # noqa: BLE001 - the tape's own record is what counts
            pass
    return done


def _set_aside(engine: Engine, volume_id: int, reason: str) -> None:
    """A tape whose data failed the scrub: no backup appends to it (retired tapes stay retired)."""
    with Session(engine) as session:
        volume = session.get(Volume, volume_id)
        if volume is not None and volume.status in (VolumeStatus.APPENDABLE, VolumeStatus.FULL):
            volume.status, volume.status_reason = VolumeStatus.ERROR, reason
            session.add(volume)
            session.commit()
