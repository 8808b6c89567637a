"""`pytp backup`: the original options, writing through the catalog."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING

import click

from pytp.tapeio.exitcodes import EXIT_SUCCESS, EXIT_WARNING

from .app import App, emit, human_bytes, pass_app, warn
from .job_run import job_options
from .progress_display import make_progress, progress_options

if TYPE_CHECKING:
    from pytp.catalog.backup_options import BackupOptions, BackupResult


@click.command()
@click.argument("dirs", nargs=-1, required=True, type=click.Path())
@click.option("-l", "--library", help="Library to take tapes from (default: $PYTP_LIB, then the first one).")
@click.option("-d", "--drive", help="Drive to write with (default: $PYTP_DEV, then the library's first free drive).")
@click.option("-j", "--job", "job_name", help="Name of the backup chain (job).")
@click.option("--label", "job_label", help="Label of the backup chain, as in the original pytp.")
@click.option("--pool", help="Pool to write to (default: the configured default pool).")
@click.option(
    "-s",
    "--strategy",
    type=click.Choice(["direct", "tar", "dd"]),
    default="direct",
    show_default=True,
    help="direct: stream to tape through the memory buffer; tar: stage in tar_dir, then stream; "
    "dd: stage, then write without the buffer.",
)
@click.option(
    "--level",
    type=click.Choice(["full", "incremental", "differential"]),
    help="full; incremental: changes since the chain's last backup; differential: since its last full.",
)
@click.option("-i", "--incremental", is_flag=True, help="Same as --level incremental.")
@click.option("--checksum", is_flag=True, help="Incremental/differential: also compare content when metadata agrees.")
@click.option(
    "--exclude",
    "excludes",
    multiple=True,
    metavar="PATTERN",
    help="Leave out paths whose path below the source root or base name matches this glob, as GNU tar "
    "(repeatable; a pattern starting with / matches the absolute path).",
)
@click.option(
    "--exclude-from",
    "exclude_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Read --exclude patterns from FILE, one a line (repeatable).",
)
@click.option(
    "--one-file-system", is_flag=True, help="Do not enter mount points below a source root (they are stored empty)."
)
@click.option("-m", "--max-concurrent-tars", type=int, default=2, show_default=True, help="For --strategy tar.")
@click.option(
    "-mem",
    "--memory_buffer",
    "memory_buffer",
    type=click.FloatRange(min=0, min_open=True),
    help="Memory buffer in GiB (at most three quarters of this host's memory).",
)
@click.option(
    "-memp",
    "--memory_buffer_percent",
    "memory_buffer_percent",
    type=click.IntRange(0, 100),
    help="Start writing once the buffer is this full (%).",
)
# The original pytp's mbuffer options: accepted so its scripts keep working, and ignored.
@click.option("--double-buffer/--no-double-buffer", default=True, help="Accepted for compatibility; ignored.")
@click.option(
    "-lwm",
    "--low-water-mark",
    "low_water_mark",
    type=click.IntRange(0, 100),
    help="Accepted for compatibility; ignored.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be stored and on which tape; write nothing.")
@progress_options
@click.option(
    "--keep-loaded", is_flag=True, help="Leave the tape in the drive after the job (default: back to its slot)."
)
@job_options
@pass_app
def backup(
    app: App,
    dirs: tuple[str, ...],
    library: str | None,
    drive: str | None,
    job_name: str | None,
    job_label: str | None,
    pool: str | None,
    strategy: str,
    level: str | None,
    incremental: bool,
    checksum: bool,
    excludes: tuple[str, ...],
    exclude_files: tuple[str, ...],
    one_file_system: bool,
    max_concurrent_tars: int,
    memory_buffer: float | None,
    memory_buffer_percent: int | None,
    double_buffer: bool,
    low_water_mark: int | None,
    dry_run: bool,
    keep_loaded: bool,
    quiet: bool,
    verbose: bool,
    show_progress: bool | None,
    fmt: str,
    log_file: str | None,
) -> None:
    """Back up DIRS to tape: one tar archive per directory, appended at end of data.

    Every file's path, xxh3 checksum and tape position go into the catalog.

    \b
    Example:
        pytp backup /home /etc --job nightly
    """
    from pytp.catalog.backup import BackupOptions, run_backup
    from pytp.catalog.joblog import backup_details
    from pytp.tapeio.exclude import Exclusions

    from .job_run import job_run

    config = app.config
    buffer_gib = memory_buffer if memory_buffer is not None else config.buffer.memory_gib
    _check_buffer_fits(buffer_gib, None if memory_buffer is not None else str(config.path))
    options = BackupOptions(
        sources=list(dirs),
        job_name=job_name,
        job_label=job_label,
        level=level or ("incremental" if incremental else "full"),
        checksum=checksum,
        exclude=Exclusions.build(excludes, exclude_files, one_file_system),
        max_concurrent_tars=max_concurrent_tars,
        ask_for_tape=_ask_operator if sys.stdin.isatty() else None,
        strategy=strategy,
        pool=pool,
        buffer_bytes=max(1 << 20, int(buffer_gib * (1 << 30))),
        keep_loaded=keep_loaded,
        start_percent=memory_buffer_percent if memory_buffer_percent is not None else config.buffer.start_percent,
    )
    if dry_run:
        _dry_run(app, options, drive, library, fmt, verbose)
        return
    report = make_progress(quiet, verbose, show_progress)
    with job_run(app, "backup", fmt, log_file) as run:
        result = run_backup(app.engine, config, app.select(drive, library), options, progress=report)
        run.log_jobs.append(result.job_id)
        run.done(
            result.status,
            EXIT_WARNING if result.problems else EXIT_SUCCESS,
            job_id=result.job_id,
            files=result.files,
            bytes=result.bytes,
            tapes=result.tapes,
            problems=result.problems,
            notes=result.notes,
            details=backup_details(result),
        )
    for note in result.notes:
        click.echo(f"Note: {note}", err=True)
    for path, message in result.problems:
        warn(f"{path}: {message}")
    if run.table:
        _print_result(result)
    if result.problems:
        click.get_current_context().exit(EXIT_WARNING)


def _print_result(result: BackupResult) -> None:
    rate = result.bytes / result.seconds / (1 << 20) if result.seconds else 0.0
    click.echo(
        f"Job {result.job_id} {result.status} ({result.level}): {result.files} files"
        + (f", {result.deleted} deleted" if result.deleted else "")
        + f", {human_bytes(result.bytes)} "
        f"in {result.seconds:.1f} s ({rate:.1f} MiB/s) on tape {', '.join(result.tapes)}"
    )
    for tape, number, source, blocks in result.tape_files:
        click.echo(f"  {tape} file {number}: {source} ({blocks} blocks)")
    if result.buffer_high_water:
        click.echo(
            f"  memory buffer: filled up to {human_bytes(result.buffer_high_water)}, "
            f"drive waited for data {result.buffer_underruns} time(s)"
        )
    if result.problems:
        click.echo(f"{len(result.problems)} path(s) were not backed up; see the warnings above.")


def _dry_run(
    app: App, options: BackupOptions, drive: str | None, library: str | None, fmt: str, verbose: bool
) -> None:
    """``--dry-run``: what would be stored and on which tape (``catalog/dry_run.py``); nothing is written."""
    from dataclasses import asdict

    from pytp.catalog.dry_run import dry_run_backup

    report = dry_run_backup(app.engine, app.config, app.select(drive, library), options, list_paths=verbose)
    if fmt != "table":
        data = {
            "dry_run": True,
            "pool": report.pool,
            "level": report.level,
            "files": report.files,
            "bytes": report.bytes,
            "archive_bytes": report.archive_bytes,
            "tape": asdict(report.tape),
            "sources": [asdict(s) if verbose else {k: v for k, v in asdict(s).items() if k != "paths"}
                        for s in report.sources],
            "notes": report.notes,
            "problems": [{"path": p, "message": m} for p, m in report.problems],
        }
        if fmt == "json":
            click.echo(json.dumps(data, indent=2))
        else:
            rows = [{k: v for k, v in asdict(s).items() if k != "paths"} for s in report.sources]
            emit(rows, "csv")
        return
    article = "An" if report.level[:1] in "aeiou" else "A"
    click.echo(f"Dry run: nothing was written. {article} {report.level} backup to pool '{report.pool}' would store:")
    for source in report.sources:
        click.echo(
            f"  {source.source} ({source.level}): {source.files} files, {source.directories} directories"
            + (f", {source.other} other" if source.other else "")
            + f", {human_bytes(source.bytes)} (about {human_bytes(source.archive_bytes)} on tape)"
        )
        for path in source.paths:
            click.echo(f"    {path}")
    click.echo(f"Tape: {report.tape.message}")
    for note in report.notes:
        click.echo(f"Note: {note}", err=True)
    for path, message in report.problems:
        warn(f"{path}: {message}")


def _check_buffer_fits(gib: float, config_file: str | None) -> None:
    """Refuse a memory buffer the host cannot hold: the original pytp let mbuffer take 48 GB
    on a 50 GB host, and the kernel's OOM killer ended the backup.

    :param config_file: where the size came from, if not ``-mem`` (exit 4 rather than 2).
    """
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return  # not known here: nothing to compare with
    if gib * (1 << 30) <= total * 3 // 4:
        return
    why = (
        f"a {gib:g} GiB memory buffer is more than three quarters of this host's memory "
        f"({total / (1 << 30):.1f} GiB); give a smaller one."
    )
    if config_file is None:
        raise click.BadParameter(why, param_hint="-mem")
    from pytp.catalog.errors import ConfigError

    raise ConfigError(f"buffer.memory_buffer in {config_file}: {why}")


def _ask_operator(request: str) -> bool:
    """Ask at the terminal for the next tape (drives without a changer)."""
    click.echo("", err=True)
    return click.confirm(f"{request} Continue once it is in", default=True, err=True)


COMMANDS = [backup]
