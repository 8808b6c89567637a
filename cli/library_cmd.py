"""Library commands: list, load, unload, move, and `library add-virtual`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from .app import App, emit, output_option, parse_size, pass_app

if TYPE_CHECKING:
    from pytp.catalog.config import LibraryConfig
    from pytp.catalog.devices import Selection
    from pytp.tapeio.changer import Changer

library_option = click.option("-l", "--library", help="Library name (default: $PYTP_LIB, then the first one).")
drive_option = click.option("-d", "--drive", help="Drive name (default: $PYTP_DEV, then the library's first drive).")


def _changer(app: App, library: str | None) -> tuple[LibraryConfig, Changer]:
    from pytp.catalog.devices import open_changer, select_library

    config = select_library(app.config, library)
    return config, open_changer(config)


@click.command(name="list")
@library_option
@output_option
@pass_app
def list_command(app: App, library: str | None, fmt: str) -> None:
    """Show the library's drives, slots and import/export slots with barcodes.

    \b
    Example:
        pytp list --library msl2024
    """
    config, changer = _changer(app, library)
    status = changer.status()
    rows = []
    for d in status.drives:
        name = config.drives[d.index] if d.index < len(config.drives) else str(d.index)
        rows.append(
            {
                "element": f"drive {d.index}",
                "name": name,
                "full": d.full,
                "barcode": d.barcode,
                "source_slot": d.source_slot,
            }
        )
    for s in status.slots:
        kind = "i/e slot" if s.import_export else "slot"
        rows.append(
            {"element": f"{kind} {s.number}", "name": "", "full": s.full, "barcode": s.barcode, "source_slot": None}
        )
    emit(rows, fmt, ["element", "name", "full", "barcode", "source_slot"])


def _in_library(app: App, library: str | None, drive: str | None) -> Selection:
    """The selected drive, which must sit in a library."""
    from pytp.catalog.errors import ConfigError

    selection = app.select(drive, library)
    if selection.library is None or selection.element is None:
        raise ConfigError(f"Drive {selection.drive.name} is not in a library; name one with --drive.")
    return selection


@click.command()
@click.argument("slot", type=int)
@library_option
@drive_option
@pass_app
def load(app: App, slot: int, library: str | None, drive: str | None) -> None:
    """Load the tape from SLOT into the drive (putting a loaded tape back first).

    \b
    Example:
        pytp load 5 --drive lto9
    """
    # The changer and the drive alone: catalog.media would import the catalog stack (issue 9).
    from pytp.catalog.devices import drive_lock, open_changer, open_drive

    selection = _in_library(app, library, drive)
    assert selection.library is not None and selection.element is not None
    with drive_lock(selection.drive):
        changer = open_changer(selection.library)
        changer.return_to_home(selection.element)
        changer.load(slot, selection.element)
        handle = open_drive(selection.drive)
        try:
            handle.rewind()  # the st driver reports file/block -1 after a changer load (DESIGN.md)
        finally:
            handle.close()
    click.echo(f"Loaded slot {slot} into drive {selection.drive.name}.")


@click.command()
@click.argument("slot", type=int, required=False)
@library_option
@drive_option
@pass_app
def unload(app: App, slot: int | None, library: str | None, drive: str | None) -> None:
    """Unload the drive into SLOT, or back into the slot the tape came from.

    \b
    Example:
        pytp unload
    """
    from pytp.catalog.devices import drive_lock, open_changer

    selection = _in_library(app, library, drive)
    assert selection.library is not None and selection.element is not None
    with drive_lock(selection.drive):
        changer = open_changer(selection.library)
        if slot is None:
            state = changer.status().drive(selection.element)
            slot = state.source_slot if state else None
        changer.unload(slot, selection.element)
    click.echo(f"Unloaded drive {selection.drive.name}" + (f" into slot {slot}." if slot else "."))


@click.command()
@click.argument("source", type=int)
@click.argument("destination", type=int)
@library_option
@pass_app
def move(app: App, source: int, destination: int, library: str | None) -> None:
    """Move a tape from slot SOURCE to slot DESTINATION (import/export slots included).

    \b
    Example:
        pytp move 3 24
    """
    _, changer = _changer(app, library)
    changer.transfer(source, destination)
    click.echo(f"Moved the tape in slot {source} to slot {destination}.")


@click.group()
def library() -> None:
    """Manage configured libraries."""


@library.command(name="add-virtual")
@click.argument("name")
@click.option(
    "--path", type=click.Path(file_okay=False), help="Directory for the library (default: in pytp's data dir)."
)
@click.option("--drives", type=click.IntRange(1, 16), default=2, show_default=True)
@click.option("--slots", type=click.IntRange(1, 512), default=8, show_default=True)
@click.option("--tapes", type=click.IntRange(0, 512), help="Tapes to create (default: one per slot).")
@click.option("--tape-size", default="4G", show_default=True, help="Capacity of each tape, e.g. 64M, 4G.")
@click.option("--block-size", default="512K", show_default=True, help="Block size of its drives.")
@click.option(
    "--barcode-prefix",
    default=None,
    help="1 to 3 letters or digits starting every barcode (default: NAME's first letter and two letters "
    "unique to this host and library).",
)
@pass_app
def add_virtual(
    app: App,
    name: str,
    path: str | None,
    drives: int,
    slots: int,
    tapes: int | None,
    tape_size: str,
    block_size: str,
    barcode_prefix: str | None,
) -> None:
    """Create a virtual library with drives and barcoded tapes and add it to the configuration.

    Barcodes are LTO-style (ABC001L9) and must name one cartridge wherever
    the catalog sees them: a prefix whose barcodes the catalog or another
    library already has is refused (exit 4).

    \b
    Example:
        pytp library add-virtual test --slots 4 --tape-size 64M
    """
    from pytp.catalog.libraries import add_virtual_library, known_barcodes

    summary = add_virtual_library(
        app.config,
        name,
        Path(path) if path else None,
        drives=drives,
        slots=slots,
        tapes=slots if tapes is None else tapes,
        tape_size=parse_size(tape_size),
        block_size=parse_size(block_size),
        barcode_prefix=barcode_prefix,
        catalog_barcodes=known_barcodes(app.engine),
    )
    click.echo(summary)


@library.command(name="move-cartridge")
@click.argument("barcode")
@click.option(
    "--to",
    "to",
    required=True,
    help="The library to carry it to: a configured virtual library's name, or a virtual library directory.",
)
@library_option
@pass_app
def move_cartridge_command(app: App, barcode: str, to: str, library: str | None) -> None:
    """Carry the virtual cartridge BARCODE from a slot of this library into an import/export slot of another.

    What an operator does between two hosts' libraries sharing one catalog:
    the cartridge lands in the first empty import/export slot of the other
    library, whose host can then read it (`pytp move` puts it into a storage
    slot).  Virtual libraries only.

    \b
    Example:
        pytp library move-cartridge HQA001L9 --to hostb-lib
    """
    from pytp.catalog.errors import ConfigError
    from pytp.tapeio.virtual_changer import move_cartridge

    source = _virtual_path(app, library)
    named = [lib for lib in app.config.libraries if lib.name == to]
    destination = named[0].device_path if named and named[0].type == "virtual" else to
    if not (Path(destination) / "library.json").is_file():
        raise ConfigError(f"--to {to}: neither a virtual library of the configuration nor a virtual library directory.")
    slot = move_cartridge(source, barcode, destination)
    click.echo(f"Moved cartridge {barcode} to import/export slot {slot} of {to}.")


def _virtual_path(app: App, library: str | None) -> str:
    """The directory of the selected library, which must be virtual."""
    from pytp.catalog.devices import select_library
    from pytp.catalog.errors import ConfigError

    config = select_library(app.config, library)
    if config.type != "virtual":
        raise ConfigError(f"Library {config.name} is not virtual: carry the cartridge over by hand.")
    return config.device_path


COMMANDS = [list_command, load, unload, move, library]
