"""The job log: what a backup, restore or verify did, as data and as text (issue 11, part 4).

One :class:`JobSummary` per run is the single description of a job: the CLI
prints it with ``--format json|csv``, the notification hook gets it as JSON
on stdin (``notify``), and its text form goes into the catalog (``job.log``,
shown by ``pytp jobs JOB``) and to ``--log-file``.  The field names are the
same everywhere; timestamps are ISO 8601 with their zone.

Tape moves are observed, not passed around: ``media`` logs each changer load
and unload on the ``pytp.moves`` logger, and :class:`MoveRecorder` collects
what is logged while a job runs.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from pytp.tapeio.procinfo import host_name

from .media import MOVES

if TYPE_CHECKING:
    from .backup_options import BackupResult
    from .restore import RestoreResult
    from .verify import DiskReport, VerifyReport
from .models import Job, utcnow

#: the catalog keeps at most this much of a job's log: a job with a million
#: problems must not put a million lines into one row (the full list is in job_problem)
MAX_LOG_CHARS = 64 << 10
#: problems and notes written out one by one in the text log; the rest are counted
MAX_LOG_LINES = 200


@dataclass
class JobSummary:
    """What one run did: the notify JSON, ``--format json|csv`` and the log text.

    :param kind: ``backup``, ``restore`` or ``verify``.
    :param status: ``ok``, ``partial`` or ``failed``.
    :param exit_code: what the command exits with (``pytp exit-codes``).
    :param job_id: the backup job (None for restore and verify).
    :param details: fields of this kind of job only (level, target, ...).
    :param health: the drive's health around the job (``health_log.summarise``): TapeAlert
        flags raised, error counter growth, cleaning; None when no reading was taken.
    """

    kind: str
    status: str
    exit_code: int
    started_at: datetime
    ended_at: datetime
    job_id: int | None = None
    files: int = 0
    bytes: int = 0
    tapes: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tape_moves: list[str] = field(default_factory=list)
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    host: str = field(default_factory=host_name)
    health: dict[str, Any] | None = None

    @property
    def seconds(self) -> float:
        return round((self.ended_at - self.started_at).total_seconds(), 3)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ISO 8601 timestamps with zone, problems as ``{path, message}`` objects."""
        return {
            "kind": self.kind,
            "status": self.status,
            "exit_code": self.exit_code,
            "job_id": self.job_id,
            "host": self.host,
            "started_at": self.started_at.astimezone().isoformat(),
            "ended_at": self.ended_at.astimezone().isoformat(),
            "seconds": self.seconds,
            "files": self.files,
            "bytes": self.bytes,
            "tapes": list(self.tapes),
            **self.details,
            "health": self.health,
            "problems": [{"path": p, "message": m} for p, m in self.problems],
            "notes": list(self.notes),
            "tape_moves": list(self.tape_moves),
            "error": self.error,
        }

    def text(self) -> str:
        """The log as lines for people: a summary line, then problems, notes and tape moves."""
        head = (
            f"{self.ended_at.astimezone().isoformat()} {self.kind}"
            + (f" job {self.job_id}" if self.job_id is not None else "")
            + f" {self.status} (exit {self.exit_code}) on {self.host}: {self.files} file(s), {self.bytes} bytes"
            f" in {self.seconds:.1f} s" + (f", tape(s) {', '.join(self.tapes)}" if self.tapes else "")
        )
        lines = [head]
        for key, value in self.details.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                # tape_files: one line each, ``tape=PYT001L9 file_number=1 ...``
                lines += [f"  {key}: " + " ".join(f"{k}={v}" for k, v in item.items()) for item in value]
            elif value not in (None, [], ""):
                lines.append(f"  {key}: {', '.join(map(str, value)) if isinstance(value, list) else value}")
        if self.health is not None:
            from .health_log import health_text

            lines.append(f"  health: {health_text(self.health)}")
        if self.error:
            lines.append(f"  error: {self.error}")
        lines += _bounded("problem", [f"{p}: {m}" for p, m in self.problems])
        lines += _bounded("note", self.notes)
        lines += _bounded("tape move", self.tape_moves)
        return "\n".join(lines) + "\n"


def _bounded(what: str, items: list[str]) -> list[str]:
    shown = [f"  {what}: {item}" for item in items[:MAX_LOG_LINES]]
    if len(items) > MAX_LOG_LINES:
        shown.append(f"  ... and {len(items) - MAX_LOG_LINES} more {what}(s)")
    return shown


class MoveRecorder(logging.Handler):
    """Collects the changer moves logged while it is installed (``with MoveRecorder() as moves``)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.moves: list[str] = []
        self._level = MOVES.level

    def emit(self, record: logging.LogRecord) -> None:
        self.moves.append(f"{utcnow().astimezone().isoformat(timespec='seconds')} {record.getMessage()}")

    def __enter__(self) -> MoveRecorder:
        MOVES.addHandler(self)
        if MOVES.getEffectiveLevel() > logging.INFO:
            MOVES.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        MOVES.removeHandler(self)
        MOVES.setLevel(self._level)


def store_log(engine: Engine, job_id: int, text: str) -> None:
    """Append ``text`` to the job's log in the catalog, keeping the newest :data:`MAX_LOG_CHARS`."""
    with Session(engine) as session:
        job = session.get(Job, job_id)
        if job is None:
            return
        log = (job.log or "") + text
        if len(log) > MAX_LOG_CHARS:
            # Keep the newest lines, whole: cut at the first line end after the bound.
            kept = log[-MAX_LOG_CHARS:]
            end = kept.find("\n")
            kept = kept[end + 1 :] if 0 <= end < len(kept) - 1 else kept
            log = "[... older log lines cut]\n" + kept
        job.log = log
        session.commit()


def append_log_file(path: str | os.PathLike[str], text: str) -> None:
    """``--log-file``: append the log to a file (created with its folder if needed).

    :raises OSError: the file cannot be written.
    """
    directory = os.path.dirname(os.fspath(path))
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, "a", encoding="utf-8", errors="backslashreplace") as f:
        f.write(text)


def job_of_this_process(engine: Engine, since: datetime) -> int | None:
    """The backup job this process started at or after ``since``.

    A failed backup raises instead of returning its result; its job row is
    found by the process that ran it (the row records host and pid, as
    ``reconcile`` uses them).
    """
    with Session(engine) as session:
        return session.exec(
            select(Job.id)
            .where(Job.host == host_name(), Job.pid == os.getpid(), col(Job.started_at) >= since)
            .order_by(col(Job.id).desc())
        ).first()


def recorded_totals(engine: Engine, job_id: int) -> tuple[int, int]:
    """The files and bytes the catalog records for job ``job_id`` (of a failed job: what reached tape)."""
    with Session(engine) as session:
        row = session.exec(select(Job.files, Job.total_bytes).where(Job.id == job_id)).first()
    return (int(row[0]), int(row[1])) if row is not None else (0, 0)


def backup_details(result: BackupResult) -> dict[str, Any]:
    """The backup-only fields of a summary."""
    return {
        "level": result.level,
        "deleted": result.deleted,
        "tape_files": [
            {"tape": tape, "file_number": number, "source": source, "blocks": blocks}
            for tape, number, source, blocks in result.tape_files
        ],
        "buffer_high_water": result.buffer_high_water,
        "buffer_underruns": result.buffer_underruns,
    }


def restore_details(result: RestoreResult) -> dict[str, Any]:
    """The restore-only fields of a summary."""
    return {"target": result.target, "verified": result.verified, "loads": result.loads}


def verify_details(report: VerifyReport) -> dict[str, Any]:
    """The fields of a verify against tape."""
    return {"jobs": list(report.jobs), "checked": report.checked}


def disk_details(directory: str, report: DiskReport) -> dict[str, Any]:
    """The fields of a verify against disk (``--against-disk``)."""
    return {
        "directory": directory,
        "checked": report.checked,
        "changed": list(report.changed),
        "missing": list(report.missing),
        "new": list(report.new),
    }


def job_detail(session: Session, job_id: int) -> dict[str, Any]:
    """One job in detail for ``pytp jobs JOB``: its row, tape files and log.

    :raises NotFound: no such job.
    """
    from .errors import NotFound
    from .models import TapeFile, Volume

    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"No job {job_id} in the catalog; `pytp jobs` lists them.")
    files = session.exec(
        select(TapeFile, Volume.label)
        .join(Volume, col(Volume.id) == TapeFile.volume_id)
        .where(TapeFile.job_id == job_id)
        .order_by(col(TapeFile.id))
    ).all()

    def iso(value: datetime | None) -> str | None:
        if value is None:
            return None
        # SQLite hands back naive datetimes of what was stored as UTC.
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone().isoformat()

    return {
        "id": job.id,
        "uuid": job.uuid,
        "name": job.name,
        "label": job.label,
        "level": job.level,
        "strategy": job.strategy,
        "status": job.status,
        "pool": job.pool,
        "host": job.host,
        "sources": json.loads(job.sources or "[]"),
        "started_at": iso(job.started_at),
        "ended_at": iso(job.ended_at),
        "files": job.files,
        "bytes": job.total_bytes,
        "problems": job.problems,
        "message": job.message,
        "tape_files": [
            {
                "tape": label,
                "file_number": tf.file_number,
                "kind": tf.kind,
                "source": None if tf.source_root is None else tf.source_root.decode("utf-8", "backslashreplace"),
                "status": tf.status,
                "blocks": tf.blocks,
            }
            for tf, label in files
        ],
        "log": job.log,
    }
