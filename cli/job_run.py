"""What every job command (backup, restore, verify) does around its job (issue 11, part 4).

``--format json|csv`` prints the job summary as data; ``--log-file`` appends
the job log to a file; the log goes into the catalog (``pytp jobs JOB``); the
``notify.command`` hook gets the summary as JSON.  The same
``joblog.JobSummary`` feeds all four, so their field names agree.

A failed job is reported too: the error becomes a ``failed`` summary with the
exit code the command is about to exit with, and the error then goes on to
``app.PytpGroup.invoke`` as before.  Nothing here changes an exit code: a log
file or hook that fails is a warning.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from pytp.catalog.notify import run_hook
from pytp.tapeio.exitcodes import EXIT_INTERRUPTED

from .app import FORMATS, App, describe_error, emit, warn

if TYPE_CHECKING:
    from pytp.catalog.joblog import JobSummary

# The catalog (sqlmodel) is imported inside the methods: every command module
# imports this one for ``job_options``, and tape commands must start quickly.


def job_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--format table|json|csv`` and ``--log-file FILE`` for a job command."""
    func = click.option(
        "--log-file",
        type=click.Path(dir_okay=False),
        help="Append the job log (summary, problems, notes, tape moves) to FILE.",
    )(func)
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="table: the report for people; json, csv: the job summary as data (the notify hook's fields).",
    )(func)


class JobRun:
    """One job command's run: its start, the tape moves seen, and the summary once done.

    :param kind: ``backup``, ``restore`` or ``verify``.
    :param fmt: ``--format``; only ``table`` prints the report for people.
    """

    def __init__(self, app: App, kind: str, fmt: str, log_file: str | None) -> None:
        from pytp.catalog.health_log import HealthRecorder
        from pytp.catalog.joblog import MoveRecorder
        from pytp.catalog.models import utcnow

        self.app = app
        self.kind = kind
        self.fmt = fmt
        self.log_file = log_file
        self.started = utcnow()
        self.summary: JobSummary | None = None
        #: catalog jobs whose log this run is added to (a backup's own job, the jobs a verify read)
        self.log_jobs: list[int] = []
        self.moves = MoveRecorder()
        #: the drive's health around the job (``health_log.HealthWatch`` reports here)
        self.health = HealthRecorder()

    @property
    def table(self) -> bool:
        return self.fmt == "table"

    def done(self, status: str, exit_code: int, **fields: Any) -> JobSummary:
        """Record the outcome; ``fields`` are ``JobSummary``'s (files, bytes, tapes, problems, notes, details)."""
        from pytp.catalog.joblog import JobSummary
        from pytp.catalog.models import utcnow

        # Critical TapeAlert flags and cleaning go into the job log as notes.
        fields["notes"] = [*fields.get("notes", []), *self.health.notes]
        fields.setdefault("health", self.health.last())
        self.summary = JobSummary(
            kind=self.kind,
            status=status,
            exit_code=exit_code,
            started_at=self.started,
            ended_at=utcnow(),
            tape_moves=list(self.moves.moves),
            **fields,
        )
        return self.summary

    def failed(self, err: BaseException) -> JobSummary:
        if isinstance(err, (KeyboardInterrupt, click.Abort)):
            message, code = "interrupted.", EXIT_INTERRUPTED
        else:
            message, code = describe_error(err)  # type: ignore[arg-type]
        from pytp.catalog.joblog import job_of_this_process, recorded_totals

        job_id, files, size = None, 0, 0
        if self.kind == "backup":
            try:
                job_id = job_of_this_process(self.app.engine, self.started)
                if job_id is not None:
                    # the log says what `pytp jobs` says: the members that reached tape
                    files, size = recorded_totals(self.app.engine, job_id)
            except Exception:  # noqa: BLE001 - the catalog may be what failed
                pass
            if job_id is not None:
                self.log_jobs.append(job_id)
        # A restore that ended with problems says what it restored and each problem (its error's ``summary``).
        fields: dict[str, Any] = {"files": files, "bytes": size, **(getattr(err, "summary", None) or {})}
        return self.done("failed", code, job_id=job_id, error=message, **fields)

    def report(self) -> None:
        """Log to the catalog and ``--log-file``, run the hook, print the summary as data."""
        from pytp.catalog.joblog import append_log_file, store_log

        summary = self.summary
        assert summary is not None
        text = summary.text()
        for job_id in self.log_jobs:
            try:
                store_log(self.app.engine, job_id, text)
            except Exception as err:  # noqa: BLE001 - the job's outcome stands; say why the log is missing
                warn(f"the job log could not be stored in the catalog: {describe_error(err)[0]}")  # type: ignore[arg-type]
        if self.log_file:
            try:
                append_log_file(self.log_file, text)
            except OSError as err:
                warn(f"the job log could not be appended to {self.log_file}: {err.strerror or err}")
        data = summary.as_dict()
        try:
            notify = self.app.config.notify
        except Exception:  # noqa: BLE001 - a configuration that cannot be read has no hook; its error follows
            notify = None
        trouble = run_hook(notify, data) if notify is not None else None
        if trouble:
            warn(trouble)
        if self.table and summary.health is not None:
            _print_health(summary.health)
        if self.fmt == "json":
            click.echo(json.dumps(data, indent=2, default=str))
        elif self.fmt == "csv":
            emit([{key: _csv_cell(value) for key, value in data.items()}], "csv")


def _print_health(health: dict[str, Any]) -> None:
    """The drive's health for people, when there is something to say (flags, errors, cleaning, no answer)."""
    from pytp.catalog.health_log import health_text

    if not health["available"]:
        click.echo(f"Note: {health_text(health)}", err=True)
        return
    grew = any(
        (counts or {}).get(k)
        for counts in (health["read_errors"], health["write_errors"])
        for k in ("corrected", "uncorrected")
    )
    if health["tapealert"] or grew or health.get("cleaning"):
        click.echo(f"Drive health: {health_text(health)}")


def _csv_cell(value: Any) -> Any:
    """One CSV cell: lists joined with ``; ``, objects as ``a:b`` (a problem is ``path:message``)."""
    if isinstance(value, list):
        return "; ".join(
            ":".join(str(v) for v in item.values()) if isinstance(item, dict) else str(item) for item in value
        )
    if isinstance(value, dict):  # the health: one cell of JSON
        return json.dumps(value, default=str)
    return value


@contextmanager
def job_run(app: App, kind: str, fmt: str, log_file: str | None) -> Iterator[JobRun]:
    """Run the block as a job of ``kind``: report its summary however it ends, then let its exit code through."""
    run = JobRun(app, kind, fmt, log_file)
    try:
        with run.moves, run.health:
            yield run
    except click.exceptions.Exit:
        # The command's own exit code (partial, verify failed): its summary is set.
        if run.summary is not None:
            run.report()
        raise
    except (Exception, KeyboardInterrupt) as err:
        if not isinstance(err, click.UsageError):
            run.failed(err)
            run.report()
        raise
    if run.summary is not None:
        run.report()
