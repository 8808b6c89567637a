"""`pytp restore`: by catalog lookup, or the tape file under the head."""

from __future__ import annotations

import os
from pathlib import Path

import click

from pytp.tapeio.exitcodes import EXIT_SUCCESS

from .app import App, human_bytes, pass_app
from .host_option import chosen_host, host_option
from .job_run import job_options
from .progress_display import make_progress, progress_options


@click.command()
@click.argument("target_dir", type=click.Path(file_okay=False), default=".")
@click.option("--match", "patterns", multiple=True, help="Path substring or glob to restore (repeatable).")
@click.option("--regex", is_flag=True, help="Take --match as regular expressions.")
@click.option("--job", "job_id", type=int, help="Restore from this job (without --match: the whole job).")
@click.option("--tape", help="Only files on this tape.")
@click.option("--as-of", "as_of", help="The tree as it was at JOB_ID or a date (2026-11-26, 2026-11-26T18:00).")
@click.option(
    "--overwrite", is_flag=True, help="Replace files that already exist under TARGET_DIR (directories are kept)."
)
@click.option("--include-deleted", is_flag=True, help="Also files that a later backup recorded as deleted.")
@click.option(
    "--allow-special",
    is_flag=True,
    help="Create device nodes and fifos and keep setuid/setgid/sticky bits from tape (root only).",
)
@click.option("--plan", "plan_only", is_flag=True, help="Print the plan (tapes, order, blocks, time) and stop.")
@click.option("-d", "--drive", help="Drive to read with.")
@click.option("-l", "--library", help="Library to load tapes from.")
@host_option
@progress_options
@click.option(
    "--keep-loaded", is_flag=True, help="Leave the tape in the drive after the job (default: back to its slot)."
)
@job_options
@pass_app
def restore(
    app: App,
    target_dir: str,
    patterns: tuple[str, ...],
    regex: bool,
    job_id: int | None,
    tape: str | None,
    overwrite: bool,
    include_deleted: bool,
    allow_special: bool,
    as_of: str | None,
    plan_only: bool,
    drive: str | None,
    library: str | None,
    host: str | None,
    quiet: bool,
    verbose: bool,
    show_progress: bool | None,
    keep_loaded: bool,
    fmt: str,
    log_file: str | None,
) -> None:
    """Restore files into TARGET_DIR: looked up in the catalog, read from their blocks.

    Files land at their original absolute path made relative
    (/home/a/x → TARGET_DIR/home/a/x).  Without --match or --job, extracts
    the tape file at the current position (the original behaviour).

    --format json|csv, --log-file and the notify hook report restores looked
    up in the catalog (not the raw extraction at the current position).

    Before reading, the restore plans which tapes (each loaded once), tape
    files and blocks it needs; --plan prints that plan and touches no tape.

    Nothing is written outside TARGET_DIR: symlinks and hard links are made
    after everything else, no symlink is followed on the way, and absolute
    names, '..', links out, device nodes and setuid bits from tape are refused
    or cleared (unless --allow-special, as root).  Damaged members are named
    and the rest is restored (exit 10); refused ones exit 12.  A full target
    stops the restore at the first file that does not fit, which is removed
    (exit 3).

    \b
    Examples:
        pytp restore /tmp/out --match report.pdf
        pytp restore /tmp/out --job 12
        pytp restore /tmp/out --as-of 2026-11-01 --match /home/alice --plan
    """
    if not patterns and job_id is None and as_of is None:
        # The raw path: no catalog (and no sqlmodel import) is needed.
        from pytp.tapeio.drive import ensure_block_size
        from pytp.tapeio.gnutar import extract_here

        if allow_special and os.geteuid() != 0:
            from pytp.tapeio.extract_guard import UnsafeMember

            raise UnsafeMember("--allow-special creates device nodes and setuid files: run the restore as root.")
        selection = app.select(drive, library)
        with app.open_drive(drive, library) as handle:
            ensure_block_size(handle, selection.drive.block_size)
            done = extract_here(handle, selection.drive.block_size, Path(target_dir), overwrite, allow_special)
        for note in done.notes():
            click.echo(f"Note: {note}")
        click.echo(f"Extracted {done.extracted} member(s) of the tape file into {Path(target_dir).resolve()}.")
        return
    from pytp.catalog.restore import RestoreOptions, run_restore

    options = RestoreOptions(
        target=target_dir,
        patterns=list(patterns),
        regex=regex,
        job_id=job_id,
        tape=tape,
        overwrite=overwrite,
        as_of=as_of,
        include_deleted=include_deleted,
        allow_special=allow_special,
        # --job names its job whatever its host; otherwise this host's newest versions (issue 9)
        host=None if job_id is not None and host is None else chosen_host(host),
        keep_loaded=keep_loaded,
    )
    if plan_only:
        from pytp.catalog.restore import plan_restore

        for line in plan_restore(app.engine, app.config, app.select(drive, library), options).describe():
            click.echo(line)
        return
    from pytp.catalog.joblog import restore_details

    from .job_run import job_run

    with job_run(app, "restore", fmt, log_file) as run:
        progress = make_progress(quiet, verbose, show_progress)
        result = run_restore(app.engine, app.config, app.select(drive, library), options, progress=progress)
        run.done(
            "ok",
            EXIT_SUCCESS,
            files=result.files,
            bytes=result.bytes,
            tapes=result.tapes,
            notes=result.notes,
            details=restore_details(result),
        )
    if not run.table:
        return
    for note in result.notes:
        click.echo(f"Note: {note}")
    click.echo(
        f"Restored {result.files} item(s), {human_bytes(result.bytes)} from tape {', '.join(result.tapes)} "
        f"into {result.target} ({result.loads} load(s)); {result.verified} file checksum(s) verified."
    )


COMMANDS = [restore]
