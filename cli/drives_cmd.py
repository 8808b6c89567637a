"""``pytp drives``: every configured drive with what it holds, who uses it and its health;
``pytp clean DRIVE``: run a cleaning cartridge through a library drive.

``pytp drives`` uses the configuration, the changers and the drives alone:
never the catalog stack (issue 9), so it answers fast and while the catalog
is busy; ``--recorded`` opens the catalog for each drive's newest recorded
reading.  ``pytp clean`` counts the cartridge's uses in the catalog
(``catalog/cleaning.py``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import click

from .app import App, emit, output_option, pass_app, warn

if TYPE_CHECKING:
    from pytp.catalog.config import DriveConfig, LibraryConfig
    from pytp.tapeio.health import DriveHealth

# serial and matched last: scripts reading the CSV by position keep working
COLUMNS = ["name", "type", "device", "library", "barcode", "busy", "needs_cleaning", "tapealert",
           "write_errors", "read_errors", "serial", "matched"]


def _library_barcodes(library: LibraryConfig) -> dict[int, str | None] | None:
    """Barcode per drive element of ``library``, None when its changer does not answer."""
    from pytp.catalog.devices import open_changer
    from pytp.catalog.errors import CatalogError
    from pytp.tapeio.errors import TapeIOError

    try:
        status = open_changer(library).status()
    except (TapeIOError, CatalogError, OSError) as err:
        warn(f"library {library.name}: {err}")
        return None
    return {d.index: (d.barcode if d.full else None) for d in status.drives}


def _health(drive: DriveConfig) -> DriveHealth:
    """The drive's health without taking it from whoever uses it."""
    from pytp.tapeio.errors import TapeIOError
    from pytp.tapeio.health import DriveHealth

    try:
        if drive.type == "virtual":
            from pytp.tapeio.virtual_drive import read_health

            return read_health(drive.device_path)  # the state files: no drive lock needed
        from pytp.tapeio.st_drive import StDrive

        return StDrive(drive.device_path, name=drive.name).health()  # sg_logs on the sg node
    except (TapeIOError, OSError) as err:
        warn(f"drive {drive.name}: health unavailable: {err}")
        return DriveHealth(available=False)


def _standalone_barcode(drive: DriveConfig) -> str | None:
    """What a drive outside any library holds, where that can be told (virtual drives)."""
    if drive.type != "virtual":
        return None
    from pytp.tapeio.errors import TapeIOError
    from pytp.tapeio.virtual_drive import loaded_tape
    from pytp.tapeio.virtual_tape import tape_barcode

    try:
        tape = loaded_tape(drive.device_path)
        return tape_barcode(tape) if tape is not None else None
    except TapeIOError:
        return None


def _counts(counters: dict[str, Any] | None) -> str:
    """``corrected/uncorrected`` for a table or CSV cell."""
    if counters is None:
        return ""
    return f"{counters.get('corrected') or 0}/{counters.get('uncorrected') or 0}"


def drive_rows(app: App) -> list[dict[str, Any]]:
    """One row per configured drive, JSON-ready."""
    from pytp.catalog.devices import lock_holder
    from pytp.catalog.drive_matching import match_drive

    config = app.config
    barcodes: dict[str, dict[int, str | None] | None] = {lib.name: _library_barcodes(lib) for lib in config.libraries}
    rows = []
    for drive in config.drives:
        placed = config.library_of(drive.name)
        if placed is not None:
            library, element = placed
            known = barcodes[library.name]
            barcode = known.get(element) if known is not None else None
        else:
            library, element, barcode = None, None, _standalone_barcode(drive)
        match = match_drive(drive)  # by serial, else the configured order (issue 11)
        health = _health(replace(drive, device_path=match.device)).to_dict()
        pid = lock_holder(drive)
        rows.append(
            {
                "name": drive.name,
                "type": drive.type,
                "device": match.device,
                "configured_device": drive.device_path,
                "serial": match.serial,
                "configured_serial": drive.serial,
                "matched": match.how,
                "match_note": match.note,
                "library": library.name if library is not None else None,
                "element": element,
                "barcode": barcode,
                "busy": pid is not None,
                "busy_pid": pid,
                "health_available": health["available"],
                "needs_cleaning": health["needs_cleaning"],
                "cleaning_required": health["cleaning_required"],
                "tapealert": health["tapealert"],
                "write_errors": health["write_errors"],
                "read_errors": health["read_errors"],
                "volume": health["volume"],
            }
        )
    return rows


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    """A row for a table or CSV: flags by name with severity, counters as corrected/uncorrected."""
    flags = "; ".join(f"{f['number']} {f['name']} ({f['severity']})" for f in row["tapealert"])
    return {
        **row,
        "busy": f"yes (pid {row['busy_pid']})" if row["busy"] else "no",
        "needs_cleaning": "yes" if row["needs_cleaning"] else "no",
        "tapealert": flags if row["health_available"] else "unavailable",
        "write_errors": _counts(row["write_errors"]),
        "read_errors": _counts(row["read_errors"]),
    }


def _recorded(app: App, rows: list[dict[str, Any]]) -> None:
    """Add each drive's newest reading the catalog recorded (``health_log``): ``recorded``."""
    from sqlmodel import Session

    from pytp.catalog.health_log import newest_per_drive, reading_dict

    with Session(app.engine) as session:
        newest = {name: reading_dict(row) for name, row in newest_per_drive(session).items()}
    for row in rows:
        row["recorded"] = newest.get(row["name"])


def _recorded_text(reading: dict[str, Any] | None) -> str:
    """A recorded reading in one cell: when, phase, flags, read/write errors."""
    if reading is None:
        return ""
    if not reading["available"]:
        return f"{reading['taken_at']} {reading['phase']}: unavailable"
    flags = ",".join(str(f["number"]) for f in reading["tapealert"] or []) or "no flags"
    errors = f"{reading['read_errors']}/{reading['write_errors']}"
    return f"{reading['taken_at']} {reading['phase']}: {flags}, errors r/w {errors}"


@click.command()
@click.option("--recorded", is_flag=True, help="Also each drive's newest health reading recorded in the catalog.")
@output_option
@pass_app
def drives(app: App, recorded: bool, fmt: str) -> None:
    """List the configured drives: loaded tape, whether in use, TapeAlert flags and error counters.

    Error counters show as corrected/uncorrected (write and read).  A drive
    with TapeAlert 20 or 21 set, or whose Sequential access page asks for
    it, needs cleaning (`pytp clean DRIVE`).  On st
    drives the health comes from `sg_logs` on the drive's SCSI generic node;
    reading the TapeAlert page resets the drive's flags.

    \b
    Example:
        pytp drives --format json
    """
    rows = drive_rows(app)
    if recorded:
        _recorded(app, rows)
    if fmt == "json":
        emit(rows, fmt)
        return
    flat = [_flat(row) for row in rows]
    for row in flat:
        if recorded:
            row["recorded"] = _recorded_text(row["recorded"])
    emit(flat, fmt, COLUMNS + (["recorded"] if recorded else []), empty="No drives are configured.")
    if fmt == "table":
        for row in rows:
            if row["matched"] != "serial" or row["device"] != row["configured_device"]:
                click.echo(f"{row['name']}: {row['matched']}: {row['match_note']}")


@click.command()
@click.argument("drive")
@pass_app
def clean(app: App, drive: str) -> None:
    """Clean DRIVE with a cleaning cartridge (barcode CLN…) from its library, then put the cartridge back.

    A tape in the drive goes back to its home slot first.  The catalog
    counts each cartridge's uses; one that is used up (its uses reached its
    maximum, 50 by default, or the drive reported TapeAlert 22/23 with it)
    is not loaded again.

    \b
    Example:
        pytp clean lto9
    """
    from pytp.catalog.cleaning import NoCleaningCartridge, clean_drive
    from pytp.catalog.devices import drive_lock, open_changer
    from pytp.catalog.errors import ConfigError

    config = app.config
    selection = config.drive(drive)
    placed = config.library_of(selection.name)
    if placed is None:
        raise ConfigError(
            f"Drive {selection.name} is not in a library: insert a cleaning cartridge by hand "
            "(the drive cleans and ejects it)."
        )
    library, element = placed
    with drive_lock(selection):
        done = clean_drive(app.engine, open_changer(library), element, selection, config.cleaning_max_uses)
    if done.expired:
        raise NoCleaningCartridge(done.describe()[0].upper() + done.describe()[1:])
    click.echo(
        f"Cleaned drive {selection.name} with {done.barcode} from slot {done.slot} (use {done.uses} of that "
        f"cartridge).\nCleaning cartridge {done.barcode}: {done.uses} of {done.max_uses} uses."
    )


COMMANDS = [drives, clean]
