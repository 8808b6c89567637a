"""The original pytp's drive commands: init, status, position, goto, rewind,
retension, ff, bb, ls."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .app import App, emit, output_option, pass_app

if TYPE_CHECKING:
    from pytp.tapeio.drive import Drive, DriveStatus

drive_option = click.option("-d", "--drive", help="Drive name from the configuration (default: $PYTP_DEV).")
library_option = click.option("-l", "--library", help="Library name (default: $PYTP_LIB, then the first one).")


@click.command()
@drive_option
@pass_app
def init(app: App, drive: str | None) -> None:
    """Put the drive in fixed-block mode at the configured block size.

    \b
    Example:
        pytp init --drive lto9
    """
    from pytp.tapeio.drive import ensure_block_size

    selection = app.select(drive)
    with app.open_drive(drive) as handle:
        ensure_block_size(handle, selection.drive.block_size)
        click.echo(f"Drive {selection.drive.name}: block size {selection.drive.block_size} bytes.")


@click.command()
@drive_option
@library_option
@click.option("-v", "--verbose", is_flag=True, help="Also show the volume statistics (sg_logs page 0x17).")
@output_option
@pass_app
def status(app: App, drive: str | None, library: str | None, verbose: bool, fmt: str) -> None:
    """Show the drive's position, block size, status bits, and the tape in it.

    \b
    Example:
        pytp status --drive lto9 --library msl2024
    """
    from pytp.catalog.tapeops import drive_report

    selection = app.select(drive, library)
    with app.open_drive(selection.drive.name) as handle:
        report = drive_report(app.config, selection, handle, statistics=verbose)
    if fmt == "table":
        for key, value in report.items():
            if key == "statistics" and isinstance(value, dict):
                click.echo("statistics:")
                for k, v in value.items():
                    click.echo(f"  {k}: {v}")
            else:
                click.echo(f"{key}: {value if value is not None else '-'}")
    else:
        emit([report], fmt)


@click.command()
@drive_option
@pass_app
def position(app: App, drive: str | None) -> None:
    """Print the tape file number the head is in (-1 if unknown).

    \b
    Example:
        pytp position
    """
    with app.open_drive(drive) as handle:
        click.echo(_loaded_status(handle).file_number)


@click.command()
@click.argument("block", type=int, required=False)
@drive_option
@pass_app
def goto(app: App, block: int | None, drive: str | None) -> None:
    """Go to BLOCK of the current tape file, or print the block number.

    Positioning is by filemark and block spacing, which every drive supports.

    \b
    Example:
        pytp goto 120
    """
    from pytp.tapeio.positioning import goto_file

    with app.open_drive(drive) as handle:
        if block is not None:
            current = _loaded_status(handle).file_number
            goto_file(handle, max(current, 0))
            if block:
                handle.fsr(block)
        click.echo(_loaded_status(handle).block_number)


def _loaded_status(handle: Drive) -> DriveStatus:
    """The drive's status; an empty drive is an error (exit 6), as for ``rewind``, not a position of -1."""
    from pytp.tapeio.errors import NoMedium

    status = handle.status()
    if not status.online:
        raise NoMedium(f"No tape in drive {handle.name}: load one with `pytp load SLOT`.")
    return status


@click.command()
@drive_option
@pass_app
def rewind(app: App, drive: str | None) -> None:
    """Rewind the tape.

    \b
    Example:
        pytp rewind --drive lto9
    """
    with app.open_drive(drive) as handle:
        handle.rewind()
    click.echo("Rewound.")


@click.command()
@drive_option
@library_option
@click.option("-s", "--slot", type=int, help="Load the tape from this slot first, and put it back afterwards.")
@click.option("-v", "--verbose", is_flag=True, help="Say each step.")
@pass_app
def retension(app: App, drive: str | None, library: str | None, slot: int | None, verbose: bool) -> None:
    """Retension the tape (wind to the end and back).

    \b
    Example:
        pytp retension --drive lto9 --slot 5
    """
    from pytp.catalog.tapeops import retension as do_retension

    selection = app.select(drive, library)
    for step in do_retension(app.config, selection, slot):
        if verbose:
            click.echo(step)
    click.echo("Retensioned." + (f" Tape returned to slot {slot}." if slot else ""))


@click.command()
@click.argument("count", type=click.IntRange(min=1), default=1)
@drive_option
@pass_app
def ff(app: App, count: int, drive: str | None) -> None:
    """Skip COUNT filemarks forward (to the start of a later tape file).

    \b
    Example:
        pytp ff 2
    """
    with app.open_drive(drive) as handle:
        handle.fsf(count)
        click.echo(f"At tape file {handle.status().file_number}.")


@click.command()
@click.argument("count", type=click.IntRange(min=1), default=1)
@drive_option
@pass_app
def bb(app: App, count: int, drive: str | None) -> None:
    """Go back COUNT tape files, to the start of that file (rewinds past the start).

    \b
    Example:
        pytp bb 2
    """
    from pytp.tapeio.positioning import goto_file

    with app.open_drive(drive) as handle:
        current = handle.status().file_number
        goto_file(handle, max(current - count, 0))
        click.echo(f"At tape file {handle.status().file_number}.")


@click.command(name="ls")
@drive_option
@click.option("--sample", type=click.IntRange(min=1), help="Show only the first N lines.")
@pass_app
def ls_command(app: App, drive: str | None, sample: int | None) -> None:
    """List the tar archive at the current position; the head then moves to the next file.

    \b
    Example:
        pytp ff 1 && pytp ls
    """
    from pytp.tapeio.drive import ensure_block_size
    from pytp.tapeio.gnutar import list_here

    selection = app.select(drive)
    with app.open_drive(drive) as handle:
        ensure_block_size(handle, selection.drive.block_size)
        listing = list_here(handle, selection.drive.block_size)
    lines = listing.splitlines()
    for line in lines[:sample] if sample else lines:
        click.echo(line)


COMMANDS = [init, status, position, goto, rewind, retension, ff, bb, ls_command]
