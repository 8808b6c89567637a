"""``pytp vault report``: jobs with too few copies, copies all in one place, tapes due back.

A job's copies are counted per tape file: the original tape files (rows
without ``copy_of_id``) and the block-exact copies made by ``pytp copy``
(rows whose ``copy_of_id`` chain leads to an original).  A job has N copies
when every one of its tape files is held N times, so a copy that misses one
tape file does not count.  A copy's place is its tape's vault, or the
library it belongs to while it is in none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlmodel import Session, col, select

from .config import Config
from .models import Job, JobStatus, TapeFile, TapeFileStatus, Volume, row_id, utcnow
from .vault import iso
from .volumes import protection, retention_days, retention_ends_of

#: the fields of every ``pytp vault report`` row, in every format
REPORT_FIELDS = ("problem", "job", "name", "tape", "vault", "copies", "places", "detail")

TOO_FEW = "too few copies"
ONE_PLACE = "copies in one place"
DUE_BACK = "due back"
#: what ``volumes.retention_end`` returns for data kept forever
FOREVER = datetime.max.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class _Row:
    id: int
    job_id: int | None
    volume_id: int
    copy_of_id: int | None
    status: str


def place_of(volume: Volume) -> str:
    """Where a tape is kept: ``vault NAME``, or ``library NAME`` (``library`` when none is recorded)."""
    if volume.vault is not None:
        return f"vault {volume.vault}"
    return f"library {volume.library}" if volume.library else "library"


def _root(rows: dict[int, _Row], row: _Row) -> int:
    """The original tape file a copy row leads to (a copy of a copy included); loops end where they close."""
    seen = {row.id}
    while row.copy_of_id is not None and row.copy_of_id in rows and row.copy_of_id not in seen:
        row = rows[row.copy_of_id]
        seen.add(row.id)
    return row.id


def job_copies(session: Session) -> dict[int, tuple[int, set[int]]]:
    """Per job with tape files: how many complete copies it has, and the tapes that hold them."""
    rows = {
        r.id: r
        for r in (
            _Row(row_id(tf), tf.job_id, tf.volume_id, tf.copy_of_id, tf.status)
            for tf in session.exec(
                select(TapeFile).where(col(TapeFile.status).in_((TapeFileStatus.COMPLETE, TapeFileStatus.OVERWRITTEN)))
            ).all()
        )
    }
    holders: dict[int, list[int]] = {}  # original tape file -> volumes holding it intact
    for row in rows.values():
        if row.status != TapeFileStatus.COMPLETE:
            continue  # an overwritten original still names what its copies hold, but holds nothing
        holders.setdefault(_root(rows, row), []).append(row.volume_id)
    result: dict[int, tuple[int, set[int]]] = {}
    originals: dict[int, list[int]] = {}
    for row in rows.values():
        if row.copy_of_id is None and row.job_id is not None:
            originals.setdefault(row.job_id, []).append(row.id)
    for job_id, files in originals.items():
        counts = [len(holders.get(f, [])) for f in files]
        tapes = {v for f in files for v in holders.get(f, [])}
        result[job_id] = (min(counts), tapes)
    return result


@dataclass(frozen=True)
class Retention:
    """Every tape's retention, copies counted: what the vault report and list measure against.

    :ivar ends: per volume id, when the data it holds leaves retention (None: it holds none).
    :ivar kept: volume ids that must not come back yet (``volumes.protection``, or a copy of data in retention).
    :ivar copies: per job, its copy count and tapes (:func:`job_copies`).
    """

    ends: dict[int, datetime | None]
    kept: set[int]
    copies: dict[int, tuple[int, set[int]]]


def retention(session: Session, config: Config, now: datetime) -> Retention:
    """Each tape's retention end and whether it is kept, for copy tapes too.

    ``volumes.retention_end`` follows a tape's own jobs; a copy tape's rows
    carry no job (the entries stay with the source), so its end is measured
    from the jobs it holds copies of, with the copy's own pool retention.
    """
    volumes = {row_id(v): v for v in session.exec(select(Volume)).all()}
    good = {row_id(j): j for j in session.exec(select(Job).where(col(Job.status).in_(JobStatus.GOOD))).all()}
    copies = job_copies(session)
    held: dict[int, set[int]] = {}
    for job_id, (_, tapes) in copies.items():
        for tape in tapes:
            held.setdefault(tape, set()).add(job_id)
    ends: dict[int, datetime | None] = {}
    kept: set[int] = set()
    own = retention_ends_of(session, config, list(volumes.values()))  # one reading of the chains for all tapes
    for vid, volume in volumes.items():
        end = own[vid]
        days = retention_days(config, volume)
        for job_id in held.get(vid, set()):
            job = good.get(job_id)
            if job is None or job.ended_at is None:
                continue
            ended = job.ended_at if job.ended_at.tzinfo else job.ended_at.replace(tzinfo=timezone.utc)
            candidate = FOREVER if days is None else ended + timedelta(days=days)
            end = candidate if end is None else max(end, candidate)
        ends[vid] = end
        if protection(session, config, volume, now, own[vid]) is not None or (end is not None and end > now):
            kept.add(vid)
    return Retention(ends, kept, copies)


def vault_report(
    session: Session, config: Config, copies: int = 2, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The rows of ``pytp vault report`` (``REPORT_FIELDS``).

    Only good jobs whose data is still in retention count (a job whose every
    tape left retention needs no copy); a tape is due back when it is in a
    vault and nothing on it needs keeping (:func:`retention`).

    :param copies: how many copies (the original included) each job should have.
    """
    now = now or utcnow()
    volumes = {row_id(v): v for v in session.exec(select(Volume)).all()}
    state = retention(session, config, now)
    in_retention = {vid for vid, end in state.ends.items() if end is not None and end > now}
    jobs = {row_id(j): j for j in session.exec(select(Job).where(col(Job.status).in_(JobStatus.GOOD))).all()}
    rows: list[dict[str, Any]] = []
    for job_id, (count, tapes) in sorted(state.copies.items()):
        job = jobs.get(job_id)
        if job is None or not (tapes & in_retention):
            continue
        labels = ",".join(sorted(volumes[v].label for v in tapes))
        places = sorted({place_of(volumes[v]) for v in tapes})
        base = {"job": job_id, "name": job.name, "tape": labels, "vault": None, "copies": count, "places": places}
        if count < copies:
            rows.append({"problem": TOO_FEW, **base, "detail": f"{count} of {copies} copies"})
        elif count >= 2 and len(places) == 1:
            rows.append({"problem": ONE_PLACE, **base, "detail": f"all {count} copies are in {places[0]}"})
    for volume in sorted(volumes.values(), key=lambda v: v.label):
        if volume.vault is None or row_id(volume) in state.kept:
            continue
        end = state.ends[row_id(volume)]
        rows.append(
            {
                "problem": DUE_BACK,
                "job": None,
                "name": None,
                "tape": volume.label,
                "vault": volume.vault,
                "copies": None,
                "places": [place_of(volume)],
                "detail": f"retention ended {iso(end)}" if end is not None else "holds no data to keep",
            }
        )
    return [{field: row[field] for field in REPORT_FIELDS} for row in rows]
