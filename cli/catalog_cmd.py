"""Catalog commands: search, jobs, tapes (inventory), verify, exit-codes."""

from __future__ import annotations

from datetime import datetime, timezone

import click

from pytp.tapeio.exitcodes import EXIT_VERIFY_FAILED, TABLE

from .app import App, emit, human_bytes, output_option, pass_app


def _mtime(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).isoformat(timespec="seconds")


@click.command()
@click.argument("pattern")
@click.option("--regex", is_flag=True, help="PATTERN is a regular expression.")
@click.option("--job", "job_id", type=int, help="Only this job.")
@click.option("--tape", help="Only this tape (label).")
@click.option("--all-versions", is_flag=True, help="Every version, not only the newest.")
@click.option("--as-of", "as_of", help="What existed at JOB_ID or a date (2026-11-26T18:00).")
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
    fmt: str,
) -> None:
    """Find backed-up files by name: a substring, a glob (* ? [), or --regex.

    \b
    Examples:
        pytp search report
        pytp search '/home/*/*.pdf' --format json
    """
    from sqlmodel import Session

    from pytp.catalog.errors import NotFound
    from pytp.catalog.search import find, resolve_as_of

    with Session(app.engine) as session:
        view = resolve_as_of(session, as_of) if as_of else None
        # Deleted files are found too (they are what people look for most),
        # each marked with the job that recorded the deletion; --as-of shows
        # only what existed then.
        found = find(
            session,
            [pattern],
            regex=regex,
            job_id=job_id,
            tape=tape,
            all_versions=all_versions,
            as_of=view,
            include_deleted=not all_versions and view is None,
        )
    if not found:
        raise NotFound(f"No backed-up file matches '{pattern}'.")
    rows = [found_row(f) for f in found]
    emit(rows, fmt, None if fmt != "table" else ["path", "size", "mtime", "job", "tape", "tape_file", "deleted_by"])


def found_row(f) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """One search/versions/ls-catalog row of a catalog entry."""
    return {
        "path": f.entry.path_text,
        "type": f.entry.kind,
        "size": f.entry.size,
        "mode": oct(f.entry.mode),
        "mtime": _mtime(f.entry.mtime_ns) if f.entry.mtime_ns else None,
        "xxh3": f.entry.xxh3,
        "job": f.job.id,
        "level": f.job.level,
        "tape": f.volume.label,
        "tape_file": f.tape_file.file_number,
        "offset": f.entry.offset,
        #: the job that recorded the path as deleted (search, ls-catalog --include-deleted)
        "deleted_by": f.deleted_by.id if getattr(f, "deleted_by", None) is not None else None,
    }


@click.command()
@click.option("--limit", type=int, help="Only the newest N jobs.")
@output_option
@pass_app
def jobs(app: App, limit: int | None, fmt: str) -> None:
    """List backup jobs, newest first.

    \b
    Example:
        pytp jobs --limit 10
    """
    from sqlmodel import Session

    from pytp.catalog.inventory import job_rows

    with Session(app.engine) as session:
        rows = job_rows(session, limit)
    if fmt == "table":
        rows = [{**r, "bytes": human_bytes(r["bytes"])} for r in rows]
        columns = ["id", "name", "label", "level", "status", "start", "duration", "files", "bytes", "tapes"]
        emit(rows, fmt, columns, empty="No jobs yet.")
    else:
        emit(rows, fmt)


@click.command()
@output_option
@pass_app
def tapes(app: App, fmt: str) -> None:
    """Tape inventory: every known tape with its place, status, jobs and usage.

    \b
    Example:
        pytp tapes --format csv
    """
    from sqlmodel import Session

    from pytp.catalog.inventory import tape_rows

    with Session(app.engine) as session:
        rows = tape_rows(session, app.config)
    if fmt == "table":
        rows = [
            {**r, "bytes_written": human_bytes(r["bytes_written"]), "capacity": human_bytes(r["capacity"])}
            for r in rows
        ]
        columns = [
            "label",
            "barcode",
            "location",
            "status",
            "pool",
            "retention_end",
            "jobs",
            "files",
            "bytes_written",
            "capacity",
            "last_written",
            "note",
        ]
        emit(rows, fmt, columns, empty="No tapes in the catalog yet.")
    else:
        emit(rows, fmt)


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
) -> None:
    """Read the data back and compare every member's xxh3 with the catalog.

    DIRS (the original form) is the same as --against-disk for each.

    \b
    Examples:
        pytp verify --job 12
        pytp verify --against-disk /home
    """
    from pytp.catalog.verify import verify_disk, verify_tape

    disk_dirs = ([against_disk] if against_disk else []) + list(dirs)
    if disk_dirs:
        failed = False
        for directory in disk_dirs:
            report = verify_disk(app.engine, directory, checksum=not quick)
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
    result = verify_tape(app.engine, app.config, app.select(drive, library), job_id=job_id, tape=tape)
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
