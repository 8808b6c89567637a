"""What ``pytp copy`` copies: per source tape, the tape files its mirror needs (issue 11, part 1).

A copy tape mirrors one source tape file by file (``copy.py``), so it can only
grow in file-number order: to hold the last tape file a selected job needs, it
must hold every tape file before it, other jobs' included.  This module turns
``--job``/``--tape`` into that list, and refuses what cannot be mirrored: a
tape file that is not complete (a failed job's cut file, a write interrupted)
stops the copy of its tape, because the copy would otherwise number its files
differently from the source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, exists
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from .config import Config
from .errors import CatalogError, NotFound
from .light_sql import CoreReader
from .models import Job, JobStatus, TapeFile, TapeFileStatus, Volume, row_id, utcnow
from .retention import retention_ends


class CopyRefused(CatalogError):
    """The copy cannot be made as asked."""


@dataclass
class SourceTape:
    """One source tape and the tape files (1..``last``) its mirror must hold.

    :param files: the source's complete tape files 1..``last``, in order.
    :param jobs: the selected jobs with data on this tape.
    :param other_jobs: jobs that are not selected but whose tape files lie
        before ``last``: copied too, to keep the numbering.
    """

    volume: Volume
    files: list[TapeFile] = field(default_factory=list)
    jobs: list[int] = field(default_factory=list)
    other_jobs: list[int] = field(default_factory=list)
    #: a copy of ``volume`` to read instead of it (``pytp copy --tape COPY``:
    #: a new copy made from an existing one, e.g. after the original failed a scrub)
    read_from: Volume | None = None

    @property
    def reading(self) -> Volume:
        """The tape the blocks are read from."""
        return self.read_from if self.read_from is not None else self.volume

    @property
    def last(self) -> int:
        return self.files[-1].file_number if self.files else 0


def uncopied_jobs(
    session: Session, pool: str, since: datetime | None = None, config: Config | None = None
) -> list[int]:
    """Good jobs with a tape file that has no complete copy on a tape of ``pool``: what a scheduled copy takes.

    Jobs on tapes of ``pool`` itself and on copy tapes are not candidates.
    :param since: only jobs started at or after this time.
    :param config: leave out jobs whose tapes are all out of retention (``retention``):
        their data is due to be recycled, and a copy would spend offsite tapes on it.
    """
    copy_row = aliased(TapeFile)
    copy_tape = aliased(Volume)
    has_copy = exists().where(
        and_(
            copy_row.copy_of_id == TapeFile.id,
            copy_row.status == TapeFileStatus.COMPLETE,
            copy_tape.id == copy_row.volume_id,
            copy_tape.pool == pool,
        )
    )
    query = (
        select(Job.id)
        .join(TapeFile, col(TapeFile.job_id) == Job.id)
        .join(Volume, col(Volume.id) == TapeFile.volume_id)
        .where(
            col(Job.status).in_(list(JobStatus.GOOD)),
            TapeFile.status == TapeFileStatus.COMPLETE,
            col(Volume.copy_of_id).is_(None),
            Volume.pool != pool,
            ~has_copy,
        )
        .distinct()
        .order_by(col(Job.id))
    )
    if since is not None:
        query = query.where(col(Job.started_at) >= since)
    jobs = [job_id for job_id in session.exec(query).all() if job_id is not None]
    if config is None or not jobs:
        return jobs
    ends = retention_ends(CoreReader(session), config)
    now = utcnow()
    kept = set(
        session.exec(
            select(TapeFile.job_id).where(
                col(TapeFile.job_id).in_(jobs),
                TapeFile.status == TapeFileStatus.COMPLETE,
                col(TapeFile.volume_id).in_([v for v, end in ends.items() if end > now]),
            )
        ).all()
    )
    return [job_id for job_id in jobs if job_id in kept]


def away_in_vaults(session: Session, job_ids: list[int]) -> dict[int, list[str]]:
    """Of ``job_ids``, those with a tape in a vault: ``{job: ["LABEL (vault NAME)", ...]}``.

    A scheduled ``--uncopied`` run skips them (with a note) instead of failing
    on the first tape it cannot load: the other jobs still get their copies.
    """
    if not job_ids:
        return {}
    rows = session.exec(
        select(TapeFile.job_id, Volume.label, Volume.vault)
        .join(Volume, col(Volume.id) == TapeFile.volume_id)
        .where(
            col(TapeFile.job_id).in_(job_ids),
            TapeFile.status == TapeFileStatus.COMPLETE,
            col(Volume.vault).is_not(None),
        )
        .distinct()
    ).all()
    away: dict[int, list[str]] = {}
    for job_id, label, vault in rows:
        if job_id is not None:
            away.setdefault(job_id, []).append(f"{label} (vault {vault})")
    return away


def select_sources(session: Session, job_ids: list[int], tapes: list[str]) -> list[SourceTape]:
    """The source tapes of ``job_ids`` and ``tapes``, each with the tape files to mirror.

    :raises NotFound: a job or tape is not in the catalog, or holds nothing to copy.
    :raises CopyRefused: a job did not finish, a tape is itself a copy, or a
        tape file up to the last one needed is not complete.
    """
    wanted: dict[int, int] = {}  # volume id -> last file number needed
    selected_jobs: dict[int, set[int]] = {}
    volumes: dict[int, Volume] = {}
    for job_id in job_ids:
        job = session.get(Job, job_id)
        if job is None:
            raise NotFound(f"No job {job_id} in the catalog (see `pytp jobs`).")
        if job.status not in JobStatus.GOOD:
            raise CopyRefused(f"Job {job_id} is {job.status}: only finished jobs (ok, partial) are copied.")
        rows = session.exec(
            select(TapeFile, Volume)
            .join(Volume, col(Volume.id) == TapeFile.volume_id)
            .where(TapeFile.job_id == job_id, TapeFile.status == TapeFileStatus.COMPLETE)
        ).all()
        if not rows:
            raise NotFound(f"Job {job_id} has no complete tape file on any tape: nothing to copy.")
        for tape_file, volume in rows:
            vid = row_id(volume)
            volumes[vid] = volume
            wanted[vid] = max(wanted.get(vid, 0), tape_file.file_number)
            selected_jobs.setdefault(vid, set()).add(job_id)
    for label in tapes:
        volume = session.exec(select(Volume).where(Volume.label == label)).first()
        if volume is None:
            raise NotFound(f"No tape labelled '{label}' in the catalog (see `pytp tapes`).")
        last = session.exec(
            select(TapeFile.file_number)
            .where(TapeFile.volume_id == volume.id, TapeFile.status == TapeFileStatus.COMPLETE)
            .order_by(col(TapeFile.file_number).desc())
        ).first()
        if last is None:
            raise NotFound(f"Tape {label} holds no complete tape file: nothing to copy.")
        vid = row_id(volume)
        volumes[vid] = volume
        wanted[vid] = max(wanted.get(vid, 0), last)
        selected_jobs.setdefault(vid, set())
    sources = []
    for vid in sorted(wanted, key=lambda v: volumes[v].label):
        volume = volumes[vid]
        if volume.copy_of_id is None:
            sources.append(_source_tape(session, volume, wanted[vid], selected_jobs[vid]))
            continue
        # A copy named with --tape: a new copy of its original, read from this copy.
        original = session.get(Volume, volume.copy_of_id)
        if original is None:  # pragma: no cover - a foreign key keeps it
            raise CopyRefused(f"Tape {volume.label} is a copy of a tape the catalog no longer has.")
        source = _source_tape(session, original, wanted[vid], selected_jobs[vid])
        _check_copy_holds(session, volume, source.files)
        source.read_from = volume
        sources.append(source)
    return sources


def _check_copy_holds(session: Session, copy: Volume, files: list[TapeFile]) -> None:
    """Refuse to read ``copy`` in place of its original unless it holds every one of ``files`` complete."""
    held = {
        row.copy_of_id
        for row in session.exec(
            select(TapeFile).where(TapeFile.volume_id == copy.id, TapeFile.status == TapeFileStatus.COMPLETE)
        ).all()
    }
    missing = [t.file_number for t in files if t.id not in held]
    if missing:
        raise CopyRefused(
            f"Tape {copy.label} is a copy that does not hold tape file(s) {', '.join(map(str, missing))} of its "
            "original complete: a new copy cannot be made from it."
        )


def _on_tape(rows: list[TapeFile]) -> TapeFile | None:
    """The row that describes what is physically tape file N, or None when unknown.

    A complete row wins.  A failed job's cut tape file (``incomplete``, closed
    by a filemark, later jobs after it) is on the tape too: it is mirrored as
    it is, so a failed job never keeps the jobs after it from being copied;
    its entries are never offered by restore, on either tape.  Rows that are
    not on the tape (``absent``, ``overwritten``) are ignored; a ``writing``
    row is a job still running (or dead and not yet reconciled): unknown.
    """
    complete = [t for t in rows if t.status == TapeFileStatus.COMPLETE]
    if len(complete) == 1:
        return complete[0]
    if complete or any(t.status == TapeFileStatus.WRITING for t in rows):
        return None
    cut = [t for t in rows if t.status == TapeFileStatus.INCOMPLETE]
    return cut[-1] if len(cut) == 1 else None


def _source_tape(session: Session, volume: Volume, last: int, jobs: set[int]) -> SourceTape:
    """The complete tape files 1..``last`` of ``volume``; refuse a gap."""
    rows = session.exec(
        select(TapeFile)
        .where(TapeFile.volume_id == volume.id, col(TapeFile.file_number) <= last, col(TapeFile.file_number) >= 1)
        .order_by(col(TapeFile.file_number), col(TapeFile.id))
    ).all()
    by_number: dict[int, list[TapeFile]] = {}
    for row in rows:
        by_number.setdefault(row.file_number, []).append(row)
    source = SourceTape(volume, jobs=sorted(jobs))
    others: set[int] = set()
    for number in range(1, last + 1):
        tape_file = _on_tape(by_number.get(number, []))
        if tape_file is None:
            seen = ", ".join(sorted({t.status for t in by_number.get(number, [])})) or "no record"
            raise CopyRefused(
                f"Tape {volume.label}: tape file {number} is not known to be on the tape ({seen}), so no copy "
                f"of the tape can reach tape file {last}: a copy holds the source's tape files in order. "
                "Wait for a running job to end (or `pytp jobs` to reconcile a dead one), then copy again."
            )
        source.files.append(tape_file)
        if tape_file.job_id is not None and tape_file.job_id not in jobs:
            others.add(tape_file.job_id)
    if jobs:
        source.other_jobs = sorted(others)
    return source
