"""Catalog commands: search, jobs, tapes (inventory), verify, exit-codes."""

from __future__ import annotations

from base64 import b64encode
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import click

from pytp.tapeio.exitcodes import EXIT_SUCCESS, EXIT_VERIFY_FAILED, TABLE

from .app import App, emit, human_bytes, output_option, pass_app
from .host_option import chosen_host, host_option
from .job_run import job_options
from .progress_display import make_progress, progress_options

if TYPE_CHECKING:
    from pytp.catalog.light_sql import Reader

#: matches a search shows in a table on a terminal unless --limit says otherwise
DEFAULT_LIMIT = 1000


def _mtime(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).isoformat(timespec="seconds")


@click.command()
@click.argument("pattern")
@click.option("--regex", is_flag=True, help="PATTERN is a regular expression.")
@click.option("--job", "job_id", type=int, help="Only this job.")
@click.option("--tape", help="Only this tape (label).")
@click.option("--all-versions", is_flag=True, help="Every version, not only the newest.")
@click.option("--as-of", "as_of", help="What existed at JOB_ID or a date (2026-11-26T18:00).")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    help=f"Show at most N matches (0: all). Default: {DEFAULT_LIMIT} in a table on a terminal, else all.",
)
@host_option
@output_option
@pass_app
def search(
    app: App,
    pattern: str,
    regex: bool,
    job_id: int | None,
    tape: str | None,
    all_versions: bool,
    as_of: str | None,
    limit: int | None,
    host: str | None,
    fmt: str,
) -> None:
    """Find backed-up files by name: a substring, a glob (* ? [), or --regex.

    \b
    Examples:
        pytp search report
        pytp search '/home/*/*.pdf' --format json
    """
    import sys
    from itertools import islice

    from pytp.catalog.errors import NotFound
    from pytp.catalog.search_query import other_hosts_hint, search_rows

    if limit is None and fmt == "table" and sys.stdout.isatty():
        limit = DEFAULT_LIMIT  # a screenful of a million hits helps no one
    options = dict(
        regex=regex,
        job_id=job_id,
        tape=tape,
        all_versions=all_versions,
        host=None if job_id is not None and host is None else chosen_host(host),
        # One more than shown, to know there are more. The rest are not counted: that
        # costs what showing them costs (every candidate read, each path's newest
        # version chosen: seconds for a million hits), and the trigram index counts
        # candidates, not hits, so an estimate could be off by the versions per path.
        limit=limit + 1 if limit else None,
    )
    # Deleted files are found too (they are what people look for most), each marked
    # with the job that recorded the deletion; --as-of shows only what existed then.
    with search_reader(app, as_of) as (reader, roots):
        include_deleted = not all_versions and roots is None
        hits = search_rows(reader, [pattern], roots=roots, include_deleted=include_deleted, **options)
        shown = (hit_row(h) for h in islice(hits, limit or None))
        if fmt == "csv":
            printed = print_csv(shown)  # as the rows stream from the catalog
        else:
            rows = list(shown)
            printed = len(rows)
        more = next(hits, None) is not None
    if not printed:
        with search_reader(app, None) as (reader, _):
            if job_id is not None:
                _explain_job(reader, job_id)
            hint = other_hosts_hint(reader, options["host"])
        raise NotFound(f"No backed-up file matches '{pattern}'.{hint}")
    if fmt == "table":
        from .hit_table import print_table

        print_table(rows, ["path", "size", "mtime", "host", "job", "tape", "tape_file", "deleted_by"])
    elif fmt != "csv":
        emit(rows, fmt)
    if more:
        click.echo(
            f"More matches not shown (these are the first {limit:,} by path); use --limit N (0: all) to see them.",
            err=True,
        )


@contextmanager
def search_reader(app: App, as_of: str | None) -> Iterator[tuple[Reader, dict[bytes, tuple[int, ...]] | None]]:
    """Where a search (or ``versions``, ``ls-catalog``) reads, and the point in time
    ``--as-of`` names (None: now).

    A plain SQLite catalog at the schema's head is read through ``sqlite3``
    (:func:`.light_sql.listing_reader`): a search no longer imports the ORM
    stack, ~0.6 s of its start (issue 9).  ``--as-of`` reads the jobs' chains
    through the ORM (``resolve_as_of``), so it opens the catalog the full way.
    """
    from pytp.catalog.light_sql import CoreReader, listing_reader

    if as_of is None:
        with listing_reader(app.config.catalog_url, lambda: app.engine) as reader:
            yield reader, None
        return
    from sqlmodel import Session

    from pytp.catalog.search import resolve_as_of

    with Session(app.engine) as session:
        yield CoreReader(session), resolve_as_of(session, as_of).roots


def print_csv(rows: Iterator[dict[str, object]]) -> int:
    """What ``emit(rows, "csv")`` prints, written as the rows come, a few thousand
    at a time: a million hits were a list of a million dicts first (~1 GB at 10M
    entries), and making the list and its CSV in one piece cost a third more.
    Returns how many rows were printed (none: nothing is printed)."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    count = 0
    for row in rows:
        if not count:
            writer.writerow(list(row))
        writer.writerow(["" if value is None else value for value in row.values()])
        count += 1
        if not count % 5000:
            click.echo(buffer.getvalue(), nl=False)
            buffer.seek(0)
            buffer.truncate()
    if count:
        click.echo(buffer.getvalue(), nl=False)
    return count


def _explain_job(reader: Reader, job_id: int) -> None:
    """Nothing was found in job ``job_id``: say so when the job is why (none such, or not good)."""
    from pytp.catalog.errors import job_not_offered
    from pytp.catalog.search_query import job_status
    from pytp.catalog.statuses import JobStatus

    reason = job_not_offered(job_id, job_status(reader, job_id), JobStatus.GOOD)
    if reason is not None:
        raise reason


def _why_no_log(detail: dict[str, object]) -> str:
    """What ``jobs JOB`` says of a job without a log, from what the job row tells."""
    if str(detail["message"] or "").startswith("rebuilt from tape"):
        return "(none: the job was rebuilt from its tapes, which do not hold its log)"
    if detail["status"] == "running":
        return "(none yet: the job is still running)"
    if detail["status"] == "failed":
        return "(none: its process ended before it could store one)"
    return "(none: a pytp without job logs wrote the job)"


def hit_row(h) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """One search/versions/ls-catalog row of a hit (``search_query.search_rows``)."""
    return {
        "path": h.path,
        "type": h.type,
        "size": h.size,
        "mode": oct(h.mode),
        "mtime": _mtime(h.mtime_ns) if h.mtime_ns else None,
        "xxh3": h.xxh3,
        "host": h.host,
        "job": h.job,
        "level": h.level,
        "tape": h.tape,
        "tape_file": h.tape_file,
        "offset": h.offset,
        #: the job that recorded the path as deleted (search, ls-catalog --include-deleted)
        "deleted_by": h.deleted_by,
        #: a name that is not UTF-8, exactly (``path`` shows its bytes as \xNN, as a name
        #: holding those four characters would be shown): base64, as the manifest has it
        "path_b64": b64encode(h.path_bytes).decode() if h.path_bytes != h.path.encode() else None,
    }


@click.command()
@click.argument("job_id", type=int, required=False)
@click.option("--limit", type=int, help="Only the newest N jobs.")
@host_option
@output_option
@pass_app
def jobs(app: App, job_id: int | None, limit: int | None, host: str | None, fmt: str) -> None:
    """List backup jobs, newest first; with JOB_ID, one job in detail with its log.

    The log holds the job's summary, problems, notes and tape moves, and a
    line for each later verify of the job.

    \b
    Examples:
        pytp jobs --limit 10
        pytp jobs 12
    """
    from pytp.catalog.inventory import job_rows
    from pytp.catalog.light_sql import listing_reader
    from pytp.catalog.search_query import other_hosts_hint

    if job_id is not None:
        _show_job(app, job_id, fmt)
        return
    with listing_reader(app.config.catalog_url, lambda: app.engine) as reader:
        rows = job_rows(reader, limit, chosen_host(host))
        hint = "" if rows else other_hosts_hint(reader, chosen_host(host))
    if fmt == "table":
        rows = [{**r, "bytes": human_bytes(r["bytes"])} for r in rows]
        columns = ["id", "host", "name", "label", "level", "status", "start", "duration", "files", "bytes", "tapes"]
        emit(rows, fmt, columns, empty=f"No jobs yet.{hint}")
    else:
        emit(rows, fmt)


def _show_job(app: App, job_id: int, fmt: str) -> None:
    """``pytp jobs JOB``: the job's fields, its tape files, then its log."""
    from sqlmodel import Session

    from pytp.catalog.joblog import job_detail

    with Session(app.engine) as session:
        detail = job_detail(session, job_id)
    if fmt != "table":
        emit([detail], fmt)
        return
    for key, value in detail.items():
        if key not in ("tape_files", "log"):
            shown = human_bytes(value) if key == "bytes" else ", ".join(value) if isinstance(value, list) else value
            click.echo(f"{key + ':':<11} {'' if shown is None else shown}")
    click.echo("")
    emit(detail["tape_files"], "table", empty="No tape files.")
    click.echo("\nLog:")
    click.echo(detail["log"] or _why_no_log(detail), nl=False)
    if detail["log"] is None:
        click.echo("")


@click.command()
@click.argument("tape", required=False)
@output_option
@pass_app
def tapes(app: App, tape: str | None, fmt: str) -> None:
    """Tape inventory: every tape with its place, pool, status, space, jobs and dates.

    Blank cartridges in the libraries are listed too (from the changers'
    inventories, nothing is loaded); a tape in no configured library is
    ``outside``.  With TAPE (a label or barcode): its jobs and tape files.

    \b
    Examples:
        pytp tapes --format csv
        pytp tapes PYT001L9
    """
    from pytp.catalog.inventory import TAPE_FIELDS, tape_detail, tape_rows
    from pytp.catalog.light_sql import listing_reader

    with listing_reader(app.config.catalog_url, lambda: app.engine) as reader:
        if tape is not None:
            detail = tape_detail(reader, app.config, tape)
        else:
            rows = tape_rows(reader, app.config)
    if tape is not None:
        _show_tape(detail, fmt)
        return
    if fmt != "table":
        emit(rows, fmt, list(TAPE_FIELDS))
        return
    columns = ["label", "barcode", "location", "pool", "status", "used", "free", "jobs", "files", "last_written"]
    columns += ["last_verified", "errors", "note"]
    emit([_tape_cells(r) for r in rows], fmt, columns, empty="No tapes in the catalog or the libraries yet.")


def _tape_cells(row: dict) -> dict:  # type: ignore[type-arg]
    """A ``pytp tapes`` row as the table shows it: sizes for people, the status with its date or reason."""
    status = row["status"]
    if row.get("expired_at"):
        status = f"expired {row['expired_at']}"
    elif row.get("status_reason"):
        status = f"error: {row['status_reason']}"
    used = human_bytes(row["bytes_written"])
    if row.get("used_pct") is not None:
        used += f" ({row['used_pct']}%)"
    free = f"{human_bytes(row['free'])} ({row['free_pct']}%)" if row.get("free") is not None else ""
    verified = row["last_verified"] or ""
    if verified and row.get("last_verify_result"):
        verified += f" {row['last_verify_result']}"
    return {**row, "status": status, "used": used, "free": free, "last_verified": verified}


def _show_tape(detail: dict, fmt: str) -> None:  # type: ignore[type-arg]
    """``pytp tapes TAPE``: the tape's fields, its jobs, then its tape files."""
    if fmt == "json":
        emit([detail], fmt)
        return
    if fmt == "csv":
        # One table per CSV: the tape files, which say the tape (label) on every row.
        emit(
            [{"label": detail["label"], **f} for f in detail["tape_file_list"]],
            fmt,
            ["label", "file_number", "kind", "job", "source", "blocks", "bytes", "status"],
        )
        return
    for key, value in detail.items():
        if key not in ("job_list", "tape_file_list"):
            click.echo(f"{key + ':':<15} {'' if value is None else value}")
    click.echo("\nJobs:")
    emit([{**j, "bytes": human_bytes(j["bytes"])} for j in detail["job_list"]], "table", empty="No jobs.")
    click.echo("\nTape files:")
    emit([{**f, "bytes": human_bytes(f["bytes"])} for f in detail["tape_file_list"]], "table", empty="No tape files.")


@click.command()
@click.argument("dirs", nargs=-1, type=click.Path())
@click.option("--job", "job_id", type=int, help="Verify this job (default: the newest good job).")
@click.option("--tape", help="Verify every good job's data on this tape.")
@click.option(
    "--against-disk",
    "against_disk",
    type=click.Path(exists=True, file_okay=False),
    help="Compare the live files under DIR with the catalog instead of reading tape.",
)
@click.option("--quick", is_flag=True, help="With --against-disk: compare size and time only, no checksums.")
@click.option("-d", "--drive", help="Drive to read with.")
@click.option("-l", "--library", help="Library to load tapes from.")
@progress_options
@click.option(
    "--keep-loaded", is_flag=True, help="Leave the tape in the drive after the job (default: back to its slot)."
)
@host_option
@job_options
@pass_app
def verify(
    app: App,
    dirs: tuple[str, ...],
    job_id: int | None,
    tape: str | None,
    against_disk: str | None,
    quick: bool,
    drive: str | None,
    library: str | None,
    quiet: bool,
    verbose: bool,
    show_progress: bool | None,
    keep_loaded: bool,
    host: str | None,
    fmt: str,
    log_file: str | None,
) -> None:
    """Read the data back and compare every member's xxh3 with the catalog.

    DIRS (the original form) is the same as --against-disk for each.  A
    verify of tape adds a line to the log of each job it read (`pytp jobs JOB`).
    --host: whose newest job, or newest versions on disk, are compared
    (default: this host's; 'all': every host's).

    \b
    Examples:
        pytp verify --job 12
        pytp verify --against-disk /home
    """
    from pytp.catalog.joblog import disk_details, verify_details
    from pytp.catalog.verify import verify_disk, verify_tape

    from .job_run import job_run

    disk_dirs = ([against_disk] if against_disk else []) + list(dirs)
    if disk_dirs:
        failed = False
        for directory in disk_dirs:
            with job_run(app, "verify", fmt, log_file) as run:
                report = verify_disk(app.engine, directory, checksum=not quick, host=chosen_host(host))
                run.done(
                    "ok" if report.ok else "failed",
                    EXIT_SUCCESS if report.ok else EXIT_VERIFY_FAILED,
                    files=report.checked,
                    details=disk_details(directory, report),
                )
            if run.table:
                for label, items in (("changed", report.changed), ("missing", report.missing), ("new", report.new)):
                    for item in items:
                        click.echo(f"{label}: {item}")
                click.echo(
                    f"{directory}: {report.checked} checked, {len(report.changed)} changed, "
                    f"{len(report.missing)} missing, {len(report.new)} new."
                )
            failed |= not report.ok
        if failed:
            click.get_current_context().exit(EXIT_VERIFY_FAILED)
        return
    with job_run(app, "verify", fmt, log_file) as run:
        result = verify_tape(
            app.engine,
            app.config,
            app.select(drive, library),
            job_id=job_id,
            tape=tape,
            progress=make_progress(quiet, verbose, show_progress),
            keep_loaded=keep_loaded,
            host=chosen_host(host) if job_id is None and tape is None else None,
        )
        run.log_jobs.extend(result.jobs)
        run.done(
            "ok" if result.ok else "failed",
            EXIT_SUCCESS if result.ok else EXIT_VERIFY_FAILED,
            files=result.checked,
            bytes=result.bytes,
            tapes=result.tapes,
            problems=result.problems,
            details=verify_details(result),
        )
    if run.table:
        for path, problem in result.problems:
            click.echo(f"FAILED {path}: {problem}")
        jobs_text = ", ".join(str(j) for j in result.jobs)
        click.echo(
            f"Verified job(s) {jobs_text} on tape {', '.join(result.tapes)}: {result.checked} member(s) ok, "
            f"{human_bytes(result.bytes)} read, {len(result.problems)} problem(s)."
        )
    if not result.ok:
        click.echo(f"Error: verification failed for {len(result.problems)} member(s).", err=True)
        click.get_current_context().exit(EXIT_VERIFY_FAILED)


@click.command(name="exit-codes")
def exit_codes() -> None:
    """Print the table of exit codes.

    \b
    Example:
        pytp exit-codes
    """
    from tabulate import tabulate

    click.echo(tabulate(TABLE, headers=["code", "name", "meaning"], tablefmt="simple"))


COMMANDS = [search, jobs, tapes, verify, exit_codes]
