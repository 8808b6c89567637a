"""``pytp scrub``: verify the tapes most in need, whole, within a time budget (``catalog/scrub.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from pytp.tapeio.exitcodes import EXIT_SUCCESS, EXIT_VERIFY_FAILED

from .app import App, emit, human_bytes, pass_app
from .job_run import job_options
from .progress_display import make_progress, progress_options

if TYPE_CHECKING:
    from datetime import timedelta

    from pytp.catalog.scrub import ScrubResult

PLAN_COLUMNS = ["tape", "pool", "reason", "last_verified", "last_verify_result", "error_growth", "copies"]


class Duration(click.ParamType):
    """``180d``, ``4h``, ``30m``, ``1h30m`` (``scrub.parse_duration``); bad text is a usage error (exit 2)."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        from pytp.catalog.scrub import parse_duration

        try:
            return parse_duration(str(value))
        except ValueError as err:
            self.fail(str(err), param, ctx)


def exit_code(result: ScrubResult) -> int:
    """10 when a tape's data failed; else the code of the first tape that could not be read; else 0."""
    if result.failed:
        return EXIT_VERIFY_FAILED
    return next((t.exit_code for t in result.unread if t.exit_code), EXIT_SUCCESS)


def _details(result: ScrubResult, max_age: timedelta, budget: timedelta | None) -> dict[str, Any]:
    return {
        "max_age_seconds": int(max_age.total_seconds()),
        "budget_seconds": int(budget.total_seconds()) if budget is not None else None,
        "scrubbed": [t.as_dict() for t in result.tapes],
        "failed": [t.tape for t in result.failed],
        "recopy": [t.recopy for t in result.tapes if t.recopy],
        "left": [c.label for c in result.left],
        "skipped": [{"tape": tape, "reason": why} for tape, why in result.skipped],
        "not_due": result.not_due,
    }


@click.command()
@click.option(
    "--max-age",
    type=Duration(),
    default="180d",
    show_default=True,
    help="A tape last verified longer ago than this is due (e.g. 180d, 26w).",
)
@click.option("--budget", type=Duration(), help="Start no new tape once this much time is spent (e.g. 4h, 30m).")
@click.option("--pool", help="Only tapes of this pool.")
@click.option("--dry-run", is_flag=True, help="List the tapes due, in the order they would be verified; read nothing.")
@click.option("-d", "--drive", help="Drive to read with (default: $PYTP_DEV, then the library's first free drive).")
@click.option("-l", "--library", help="Library whose tapes to scrub (default: $PYTP_LIB, then the first one).")
@progress_options
@job_options
@pass_app
def scrub(
    app: App,
    max_age: timedelta,
    budget: timedelta | None,
    pool: str | None,
    dry_run: bool,
    drive: str | None,
    library: str | None,
    quiet: bool,
    verbose: bool,
    show_progress: bool | None,
    fmt: str,
    log_file: str | None,
) -> None:
    """Verify the tapes most in need, each whole, and record when and with what result.

    Order: never verified, then last verified longest ago beyond --max-age,
    then tapes whose error counts grew since their last verify; within each,
    tapes with no second copy first.  Every member of every good job on the
    tape is read back and its xxh3 compared with the catalog.  A tape that
    fails is set aside (status error: no backup appends to it; restores still
    read it) and, when a copy exists, named for a new copy.  Exit 10 when a
    tape failed.

    \b
    Examples:
        pytp scrub --max-age 180d --budget 4h
        pytp scrub --pool offsite --dry-run
    """
    from pytp.catalog.scrub import ScrubOptions, run_scrub

    from .job_run import job_run

    if pool is not None:
        app.config.pool(pool)  # an unknown pool is a configuration error (exit 4)
    options = ScrubOptions(max_age=max_age, budget=budget, pool=pool, dry_run=dry_run)
    if dry_run:
        result = run_scrub(app.engine, app.config, app.select(drive, library), options)
        rows = [{**c.as_dict(), "copies": ", ".join(c.copies)} for c in result.planned]
        if fmt == "json":
            emit([c.as_dict() for c in result.planned], fmt)
        else:
            emit(rows, fmt, PLAN_COLUMNS, empty="No tape is due for a scrub.")
        if fmt == "table":
            for tape, why in result.skipped:
                click.echo(f"skipped {tape}: {why}")
        return
    with job_run(app, "scrub", fmt, log_file) as run:
        progress = make_progress(quiet, verbose, show_progress)
        result = run_scrub(app.engine, app.config, app.select(drive, library), options, progress=progress)
        code = exit_code(result)
        run.done(
            "failed" if code else "ok",
            code,
            files=sum(t.checked for t in result.tapes),
            bytes=sum(t.bytes for t in result.tapes),
            tapes=[t.tape for t in result.tapes],
            problems=[(path, f"tape {t.tape}: {what}") for t in result.failed for path, what in t.problems],
            details=_details(result, max_age, budget),
        )
    if run.table:
        _print(result, budget)
    for failed in result.failed:
        copy = f"; its copy holds the data: {failed.recopy}" if failed.recopy else "; no copy of it exists"
        click.echo(f"Error: tape {failed.tape} failed the scrub ({failed.message}){copy}.", err=True)
    for unread in result.unread:
        click.echo(f"Warning: tape {unread.tape} was not verified: {unread.message}", err=True)
    if code:
        click.get_current_context().exit(code)


def _print(result: ScrubResult, budget: timedelta | None) -> None:
    if not result.tapes:
        click.echo(f"No tape is due for a scrub ({result.not_due} verified recently).")
    else:
        ok = sum(1 for t in result.tapes if t.result == "ok")
        click.echo(
            f"Scrubbed {len(result.tapes)} tape(s): {ok} ok, {len(result.failed)} failed, "
            f"{len(result.unread)} not verified."
        )
    for tape in result.tapes:
        tail = f" Re-copy: {tape.recopy}" if tape.recopy else ""
        click.echo(
            f"  {tape.tape} {tape.result}: {tape.message} ({tape.reason}; {human_bytes(tape.bytes)} "
            f"in {tape.seconds:.1f} s).{tail}"
        )
    if result.left:
        click.echo(f"Left for the next scrub (budget {budget} spent): {', '.join(c.label for c in result.left)}")
    for tape, why in result.skipped:
        click.echo(f"Skipped {tape}: {why}")


COMMANDS = [scrub]
