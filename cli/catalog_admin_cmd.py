"""`pytp catalog rebuild` (and later snapshots): the catalog from the tapes."""

from __future__ import annotations

import click

from pytp.tapeio.exitcodes import EXIT_VERIFY_FAILED

from .app import App, pass_app
from .progress_display import make_progress, progress_options


@click.group(name="catalog")
def catalog_group() -> None:
    """The catalog itself: rebuild it from tapes, back it up to tape, restore it."""


@catalog_group.command()
@click.option("--tape", help="Label or barcode of the tape to read.")
@click.option("--all", "all_tapes", is_flag=True, help="Every cartridge in the library: slots and drives.")
@click.option("-d", "--drive", help="Drive to read with.")
@click.option("-l", "--library", help="Library to load tapes from.")
@progress_options
@pass_app
def rebuild(
    app: App,
    tape: str | None,
    all_tapes: bool,
    drive: str | None,
    library: str | None,
    quiet: bool,
    verbose: bool,
    show_progress: bool | None,
) -> None:
    """Recreate volumes, jobs and entries from tape labels and manifests.

    Data files are skipped by filemark: a rebuild reads one block of each.
    Jobs already in the catalog are not added twice.  Every tape that can be
    read is read; each problem is printed with its tape, tape file and
    manifest line, and the command then exits with 10.  Members a damaged or
    missing manifest lost are recovered from the tar headers (no checksum).
    Tapes in other drives of the library are read where they are.

    \b
    Examples:
        pytp catalog rebuild --all
        pytp catalog rebuild --tape PYT003L9
    """
    from pytp.catalog.rebuild import rebuild as run_rebuild

    if tape and all_tapes:
        raise click.UsageError("Give --tape or --all, not both.")
    progress = make_progress(quiet, verbose, show_progress)
    report = run_rebuild(
        app.engine, app.config, app.select(drive, library), tape=tape, all_tapes=all_tapes, progress=progress
    )
    for note in report.notes:
        click.echo(f"note: {note}")
    for problem in report.problems:
        click.echo(f"problem: {problem}")
    click.echo(
        f"Read {len(report.tapes)} tape(s) ({', '.join(report.tapes) or 'none'}): {len(report.jobs_added)} job(s) "
        f"added, {report.jobs_known} already known, {report.entries} entries, "
        f"{report.data_files_skipped} data file(s) skipped by filemark"
        + (f", {report.snapshots} catalog snapshot(s) found" if report.snapshots else "")
        + (
            f", {report.recovered_entries} entries recovered from tar headers (no checksum)"
            if report.recovered_entries
            else ""
        )
        + "."
    )
    if report.pending_parts:
        click.echo(
            f"note: {report.pending_parts} member(s) cut across tapes have parts on tapes not read yet; "
            "rebuild those tapes too (or use --all) before restoring them."
        )
    if report.problems:
        tapes = sorted({p.tape for p in report.problems})
        click.echo(
            f"Error: {len(report.problems)} problem(s) on {len(tapes)} tape(s) ({', '.join(tapes)}); "
            "everything else that could be read is in the catalog. Check those tapes.",
            err=True,
        )
        click.get_current_context().exit(EXIT_VERIFY_FAILED)


COMMANDS = [catalog_group]


@catalog_group.command(name="backup")
@click.option("--pool", help="Pool of the tape to write to (default: the default pool).")
@click.option("-d", "--drive", help="Drive to write with.")
@click.option("-l", "--library", help="Library to take the tape from.")
@pass_app
def backup_snapshot(app: App, pool: str | None, drive: str | None, library: str | None) -> None:
    """Write a consistent snapshot of the catalog to tape, as its own tape file.

    Disaster recovery: `pytp catalog restore --tape T` the newest snapshot into
    a new catalog, then `pytp catalog rebuild` the tapes written after it.

    \b
    Example:
        pytp catalog backup --pool offsite
    """
    from pytp.catalog.snapshot import backup_catalog

    result = backup_catalog(app.engine, app.config, app.select(drive, library), pool)
    click.echo(
        f"Catalog snapshot of {result.rows} rows ({result.bytes} bytes compressed) written to tape "
        f"{result.tape} file {result.file_number}."
    )


@catalog_group.command(name="restore")
@click.option("--tape", required=True, help="Label or barcode of the tape with the snapshot.")
@click.option("-d", "--drive", help="Drive to read with.")
@click.option("-l", "--library", help="Library to load the tape from.")
@pass_app
def restore_snapshot(app: App, tape: str, drive: str | None, library: str | None) -> None:
    """Load the newest complete catalog snapshot on a tape into an empty catalog.

    A snapshot cut short (its `catalog backup` was killed) or damaged is
    skipped with a note, and the next older one is loaded.

    \b
    Example:
        pytp catalog restore --tape PYT001L9
    """
    from pytp.catalog.snapshot import restore_catalog

    result = restore_catalog(app.engine, app.config, app.select(drive, library), tape)
    for note in result.notes:
        click.echo(f"note: {note}")
    click.echo(
        f"Catalog restored from tape {result.tape} file {result.file_number}: "
        + ", ".join(f"{n} {table}" for table, n in result.counts.items())
        + "."
    )
