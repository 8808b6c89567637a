"""The end of a catalog rebuild, once every tape was read (``rebuild``).

Manifests that named tapes read after them are merged again; a job that did
not come back whole is made ``partial`` and said so (a problem after
``--all``, a note after ``--tape``); jobs of other host names are pointed out;
each tape's bytes are summed again.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from pytp.tapeio.procinfo import host_name

from .manifest import ReadManifest
from .models import Job, TapeFile, TapeFileStatus, Volume, row_id
from .rebuild_import import FROM_TAPE, UNREAD_FINAL, UNREAD_MEMBERS, import_manifest, mark_partial, settle_totals
from .rebuild_report import RebuildProblem, RebuildReport


def second_pass(engine: Engine, report: RebuildReport) -> list[tuple[int, str, int, int, ReadManifest]]:
    """Manifests naming tape files of tapes read after them, merged again now (idempotent).

    One manifest's tape files can be what another one waits for (a part
    manifest on the next tape creates the full tape's files), so rounds go on
    while they resolve something.
    """
    pending, report.pending = report.pending, []
    while pending:
        report.pending_parts = 0
        waiting = []
        for item in pending:
            volume_id, _, number, blocks, manifest = item
            with Session(engine) as session:
                volume = session.get(Volume, volume_id)
                assert volume is not None
                outcome = import_manifest(
                    session, volume, number, blocks, manifest, report.kinds, report, lambda *_: None
                )
                session.commit()
            if outcome.pending:
                waiting.append(item)
        if len(waiting) == len(pending):
            break
        pending = waiting
    return pending


def note_other_hosts(engine: Engine, report: RebuildReport) -> None:
    """Say when jobs came back under other host names: `pytp jobs` and search show only this host's.

    Rebuilding on a replacement machine with another name is how a disaster
    recovery often goes; without this, the catalog looks empty afterwards.
    """
    if not report.jobs_added:
        return
    here = host_name()
    with Session(engine) as session:
        hosts = session.exec(
            select(Job.host).where(col(Job.id).in_(report.jobs_added), col(Job.host).is_not(None), Job.host != here)
        ).all()
    if hosts:
        named = ", ".join(f"{host} ({hosts.count(host)} job(s))" for host in sorted(set(hosts)))
        report.notes.append(
            f"jobs added of other hosts than this one ({here}): {named}; `pytp jobs`, `search`, `restore` "
            "and `verify` show them with --host all or --host NAME"
        )


def _first_tape(session: Session, job: Job) -> str:
    """The label of the first tape holding a tape file of ``job`` (where its problem is reported)."""
    label = session.exec(
        select(Volume.label)
        .join(TapeFile, col(TapeFile.volume_id) == Volume.id)
        .where(TapeFile.job_id == job.id)
        .order_by(col(TapeFile.id))
    ).first()
    return label or "(library)"


def settle_unresolved(
    engine: Engine, report: RebuildReport, unresolved: list[tuple[int, str, int, int, ReadManifest]], all_tapes: bool
) -> None:
    """Jobs that are not whole once every tape of this rebuild was read: ``partial``, and said so.

    A job whose tape is lost must not look whole: its manifest names tape
    files of tapes not read, or its final manifest (on its last tape) was
    never found.  After ``--all`` the library holds no other tape, so that is
    a problem; after ``--tape`` the others may simply not have been read yet:
    a note.
    """
    with Session(engine) as session:
        known = set(session.exec(select(Volume.label)).all())
        missing: dict[str, tuple[str, int, set[str]]] = {}  # job uuid: (tape, file, labels not read)
        for _, tape, number, _, manifest in unresolved:
            assert manifest.job is not None
            labels = {piece["tape"] for piece in manifest.job["tape_files"]} - known
            missing.setdefault(manifest.job["uuid"], (tape, number, set()))[2].update(labels)
        unsettled = session.exec(
            select(Job).where(
                col(Job.id).in_(sorted(report.jobs_seen)),
                col(Job.ended_at).is_(None),
                col(Job.message).startswith(FROM_TAPE),
            )
        ).all()
        jobs = {job.uuid: job for job in unsettled}
        jobs.update(
            (job.uuid, job) for job in session.exec(select(Job).where(col(Job.uuid).in_(sorted(missing)))).all()
        )
        for uuid, job in sorted(jobs.items(), key=lambda item: row_id(item[1])):
            tape, number, labels = missing.get(uuid, ("", 0, set()))
            if job.ended_at is None:
                what = "its final manifest was not found (on a tape not read, or lost)"
                note = UNREAD_FINAL
                settle_totals(session, job)
            elif labels:
                what = f"its manifest names tape files on {', '.join(sorted(labels))}"
                note = UNREAD_MEMBERS + ", ".join(sorted(labels))
            else:
                # Its tapes were read, but tape files it names were refused (the problems say why).
                mark_partial(job, "tape files its manifest names were not imported")
                session.add(job)
                continue
            mark_partial(job, note)
            session.add(job)
            message = f"job {job.id} ({job.name or job.uuid}): {what}; the job is partial"
            if all_tapes:
                message += ": those members are not in the catalog"
                report.problems.append(RebuildProblem(tape or _first_tape(session, job), number or None, None, message))
            else:
                report.notes.append(f"{message} until those tapes are read too (`pytp catalog rebuild --all`)")
        session.commit()


def settle_volumes(engine: Engine, report: RebuildReport) -> None:
    """Bytes written per tape read, now that manifests on other tapes added their tape files,
    and when it was last written: its newest job's end, as the manifests say."""
    with Session(engine) as session:
        for volume in session.exec(select(Volume).where(col(Volume.label).in_(report.tapes))).all():
            files = session.exec(select(TapeFile).where(TapeFile.volume_id == volume.id)).all()
            volume.bytes_written = sum(t.total_bytes for t in files if t.status != TapeFileStatus.OVERWRITTEN)
            if volume.last_written_at is None:
                jobs = [t.job_id for t in files if t.job_id is not None]
                ends = session.exec(
                    select(Job.ended_at).where(col(Job.id).in_(jobs), col(Job.ended_at).is_not(None))
                ).all()
                volume.last_written_at = max(ends, default=None)
            session.add(volume)
        session.commit()
