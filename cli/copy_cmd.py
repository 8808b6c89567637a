"""`pytp copy`: second copies of jobs or tapes, block for block, onto tapes of another pool."""

from __future__ import annotations

import click

from pytp.tapeio.exitcodes import EXIT_SUCCESS

from .app import App, emit, human_bytes, pass_app
from .job_run import job_options
from .progress_display import make_progress, progress_options


@click.command()
@click.option("--job", "job_ids", type=int, multiple=True, help="Copy the tape files this job needs (repeatable).")
@click.option("--tape", "tapes", multiple=True, help="Copy every complete tape file of this tape (repeatable).")
@click.option(
    "--uncopied",
    is_flag=True,
    help="Copy every good job that has a tape file without a copy in POOL (what a scheduled copy runs).",
)
@click.option("--since", metavar="DURATION", help="With --uncopied: only jobs started in the last DURATION (e.g. 7d).")
@click.option("--pool", required=True, help="The pool of the copy tapes (another pool than the source's).")
@click.option("--drive-from", help="Drive that reads the source tapes (default: the library's first free drive).")
@click.option(
    "--drive-to",
    help="Drive that writes the copies (default: another free drive; the same drive as --drive-from: staging).",
)
@click.option("-l", "--library", help="Library holding the source and copy tapes.")
@click.option(
    "--keep-loaded", is_flag=True, help="Leave the tapes in the drives after the copy (default: back to their slots)."
)
@progress_options
@job_options
@pass_app
def copy(
    app: App,
    job_ids: tuple[int, ...],
    tapes: tuple[str, ...],
    uncopied: bool,
    since: str | None,
    pool: str,
    drive_from: str | None,
    drive_to: str | None,
    library: str | None,
    keep_loaded: bool,
    quiet: bool,
    verbose: bool,
    show_progress: bool | None,
    fmt: str,
    log_file: str | None,
) -> None:
    """Copy jobs or whole tapes onto copy tapes of another pool, block for block.

    Each source tape gets its own copy tape (a blank of POOL, labelled as the
    copy of the source): tape file N of the copy is tape file N of the source,
    byte for byte, so the catalog's positions hold on both.  A copy holds the
    source's tape files in order, so the tape files of other jobs that lie
    before the last one needed are copied too (the output says which).  A copy
    tape that already mirrors part of the source is continued.  Restores read
    a copy when the original is not in the library.

    With two free drives the source is read in one and the copy written in
    the other; with one, tape files are staged in tar_dir first.  Every tape
    file written is read back and compared with the source (xxh3).  Copies do
    not span tapes: a copy tape smaller than its source fails (exit 7).

    \b
    Examples:
        pytp copy --job 12 --pool offsite
        pytp copy --tape PYT001L9 --tape PYT002L9 --pool offsite
        pytp copy --job 12 --pool offsite --drive-from d0 --drive-to d0   # one drive: staging
        pytp copy --uncopied --since 30d --pool offsite   # the weekly copy (configs/systemd)
    """
    if since is not None and not uncopied:
        raise click.UsageError("--since goes with --uncopied.")
    if not job_ids and not tapes and not uncopied:
        raise click.UsageError("Say what to copy: --job ID, --tape LABEL or --uncopied.")
    from pytp.catalog.copy import CopyOptions, run_copy, summary_details

    if uncopied:
        job_ids = job_ids + tuple(_uncopied(app, pool, since))
        if not job_ids and not tapes:
            click.echo(f"Nothing to copy now: every good job in reach has a copy in pool '{pool}'.")
            return

    from .job_run import job_run

    options = CopyOptions(
        pool=pool,
        job_ids=list(job_ids),
        tapes=list(tapes),
        drive_from=drive_from,
        drive_to=drive_to,
        library=library,
        keep_loaded=keep_loaded,
    )
    with job_run(app, "copy", fmt, log_file) as run:
        run.log_jobs = list(job_ids)
        result = run_copy(app.engine, app.config, options, make_progress(quiet, verbose, show_progress))
        run.log_jobs = sorted({j for t in result.tapes for j in t.jobs + t.other_jobs})
        run.done(
            "ok",
            EXIT_SUCCESS,
            files=result.files,
            bytes=result.bytes,
            tapes=[t.copy for t in result.tapes],
            notes=result.notes,
            details=summary_details(result),
        )
    if not run.table:
        return
    for note in result.notes:
        click.echo(f"Note: {note}")
    rows = [
        {
            "source": t.source,
            "copy": t.copy + (" (new)" if t.new_tape else ""),
            "barcode": t.copy_barcode or "-",
            "held_before": t.already,
            "copied": _ranges(t.files) or "-",
            "bytes": human_bytes(t.bytes),
        }
        for t in result.tapes
    ]
    emit(rows, "table")
    click.echo(
        f"Copied {result.files} tape file(s), {human_bytes(result.bytes)} ({result.mode}: "
        f"{', '.join(result.drives)}; {result.loads} load(s)); every tape file read back and checked."
    )


def _uncopied(app: App, pool: str, since: str | None) -> list[int]:
    from datetime import timedelta

    from sqlmodel import Session

    from pytp.catalog.copy_select import away_in_vaults, uncopied_jobs
    from pytp.catalog.models import utcnow
    from pytp.catalog.scrub import parse_duration

    start = None
    if since is not None:
        try:
            age: timedelta = parse_duration(since)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--since") from None
        start = utcnow() - age
    with Session(app.engine) as session:
        jobs = uncopied_jobs(session, pool, start, app.config)
        away = away_in_vaults(session, jobs)
    for job_id, tapes in sorted(away.items()):
        click.echo(f"Note: job {job_id} is not copied now: {', '.join(tapes)} is away (`pytp vault import` first).")
    return [job_id for job_id in jobs if job_id not in away]


def _ranges(numbers: list[int]) -> str:
    """``1-3, 5`` for [1, 2, 3, 5]."""
    out: list[str] = []
    for number in numbers:
        if out and out[-1].split("-")[-1] == str(number - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{number}"
        else:
            out.append(str(number))
    return ", ".join(out)


COMMANDS = [copy]
