"""Jobs whose process is gone: found and closed by the next command.

A job is ``running`` until its process marks it ``ok``, ``partial`` or
``failed``.  A process killed with ``kill -9``, stopped by a second Ctrl-C
while it was recording the failure, or unable to write to a full catalog disk
never does, and its job would stay ``running`` for ever.  So every job records
the host, pid and start time of its process (:func:`process_fields`), and
every command that opens the catalog calls :func:`reconcile_jobs`: a running
job of this host whose process is gone (no such pid, or a pid now used by a
later process) is marked failed, and its unfinished tape files incomplete.

What reached tape stays recorded: the tape files that were completed keep
their status, and the volume's file count already includes the tape file that
was being written (it is counted before its first block goes to tape), so the
next backup appends after it; ``media.position_at_end_of_data`` marks it
absent if not even its first block got there.  Jobs of other hosts are left
alone: this host cannot see their processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from pytp.tapeio.procinfo import host_name, process_identity

from . import light_sql
from .models import Job, JobStatus, TapeFile, TapeFileStatus, row_id, utcnow


def process_fields() -> dict[str, object]:
    """The ``host``, ``pid`` and ``process_start`` of this process, for a new job row."""
    pid = os.getpid()
    return {"host": host_name(), "pid": pid, "process_start": process_identity(pid)}


def process_gone(job: Job) -> bool:
    """True if ``job`` was run by a process of this host that no longer exists.

    A job without a recorded process (written by an older pytp) or of another
    host is never judged gone.
    """
    return light_sql.process_gone(job.host, job.pid, job.process_start)


@dataclass(frozen=True)
class ReconciledJob:
    job_id: int
    pid: int
    completed_tape_files: int
    message: str

    def __str__(self) -> str:
        return f"job {self.job_id} was left running: {self.message}"


def reconcile_jobs(engine: Engine) -> list[ReconciledJob]:
    """Mark failed every running job of this host whose process is gone.

    :returns: the jobs marked, for the caller to report.
    """
    closed: list[ReconciledJob] = []
    with Session(engine) as session:
        running = session.exec(select(Job).where(Job.status == JobStatus.RUNNING, Job.host == host_name())).all()
        for job in running:
            if not process_gone(job):
                continue
            complete = session.exec(
                select(func.count(col(TapeFile.id))).where(
                    TapeFile.job_id == job.id, TapeFile.status == TapeFileStatus.COMPLETE
                )
            ).one()
            message = (
                f"interrupted: its process (pid {job.pid} on {job.host}) ended without finishing the job "
                f"(killed, crashed or out of catalog space); {complete} tape file(s) reached tape complete, "
                "the rest is not trusted"
            )
            # Only a job still running is changed: two commands may reconcile at once.
            changed = session.exec(  # type: ignore[call-overload]
                update(Job)
                .where(col(Job.id) == job.id, col(Job.status) == JobStatus.RUNNING)
                .values(status=JobStatus.FAILED, message=message, ended_at=utcnow())
            ).rowcount
            if not changed:
                continue
            session.exec(  # type: ignore[call-overload]
                update(TapeFile)
                .where(col(TapeFile.job_id) == job.id, col(TapeFile.status) == TapeFileStatus.WRITING)
                .values(status=TapeFileStatus.INCOMPLETE)
            )
            session.commit()
            closed.append(ReconciledJob(row_id(job), job.pid, complete, message))  # type: ignore[arg-type]
    return closed
