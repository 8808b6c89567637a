"""Creating virtual libraries and adding them to the configuration."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from .config import Config, add_library, data_home
from .errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def known_barcodes(engine: Engine) -> set[str]:
    """The barcodes and labels of every tape the catalog knows, of any host and library."""
    from sqlmodel import Session, select

    from .models import Volume

    with Session(engine) as session:
        rows = session.exec(select(Volume.label, Volume.barcode)).all()
    return {value for row in rows for value in row if value}


def choose_barcode_prefix(
    config: Config, name: str, directory: Path, tapes: int, explicit: str | None, catalog: Collection[str]
) -> str:
    """The barcode prefix of a new virtual library: ``explicit``, or one derived for this host and directory.

    Barcodes name physical cartridges, so a new library's must differ from
    every barcode the catalog knows (``catalog``) and from the tapes of the
    other virtual libraries in the configuration: a clash is reported now,
    not by the first backup that tries to label a tape.

    :raises ConfigError: ``explicit`` is invalid or its barcodes are in use.
    """
    from pytp.tapeio.virtual_changer import (
        barcodes_in,
        check_barcode_prefix,
        derive_barcode_prefix,
        library_barcodes,
    )

    where = {barcode: "in the catalog" for barcode in catalog}
    for library in config.libraries:
        if library.type == "virtual":
            for barcode in barcodes_in(library.device_path):
                where.setdefault(barcode, f"in library {library.name}")
    if explicit is None:
        for attempt in range(100):
            prefix = derive_barcode_prefix(name, directory, attempt)
            if not any(barcode.startswith(prefix) for barcode in where):
                return prefix
        raise ConfigError(f"No free barcode prefix found for library '{name}': give one with --barcode-prefix.")
    try:
        prefix = check_barcode_prefix(explicit)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    clash = [b for b in library_barcodes(prefix, 1, tapes) if b in where]
    if clash:
        shown = ", ".join(f"{b} ({where[b]})" for b in clash[:3])
        shown += f" and {len(clash) - 3} more" if len(clash) > 3 else ""
        raise ConfigError(
            f"Barcode prefix {prefix} would create tapes that already exist: {shown}. A barcode names one "
            "physical cartridge: choose another --barcode-prefix, or leave it out to get one unique to this host."
        )
    return prefix


def add_virtual_library(
    config: Config,
    name: str,
    path: Path | None,
    *,
    drives: int = 2,
    slots: int = 8,
    tapes: int = 8,
    tape_size: int = 4 << 30,
    block_size: int = 524288,
    barcode_prefix: str | None = None,
    catalog_barcodes: Collection[str] = (),
) -> str:
    """Create a virtual library on disk and add it with its drives to the config.

    :param catalog_barcodes: barcodes the catalog knows (:func:`known_barcodes`),
        which the new library's must not repeat.
    :returns: a one-line summary for the user.
    :raises ConfigError: the name is taken, sizes are invalid, tapes > slots,
        or the barcodes are in use.
    """
    from pytp.tapeio.virtual_changer import create_virtual_library, library_barcodes

    if any(lib.name == name for lib in config.libraries):
        raise ConfigError(f"A library named '{name}' already exists in {config.path}.")
    if tapes > slots:
        raise ConfigError(f"{tapes} tapes do not fit into {slots} slots.")
    if block_size <= 0 or block_size % 512:
        raise ConfigError(f"Block size {block_size} must be a positive multiple of 512.")
    if tape_size < 4 * block_size:
        raise ConfigError(f"Tape size {tape_size} is too small for block size {block_size}.")
    directory = (path or data_home() / "libraries" / name).resolve()
    prefix = choose_barcode_prefix(config, name, directory, tapes, barcode_prefix, catalog_barcodes)
    create_virtual_library(
        directory, name, drives=drives, slots=slots, tapes=tapes, tape_size=tape_size, barcode_prefix=prefix
    )
    drive_entries = [
        {
            "name": f"{name}-drive{i}",
            "device_path": str(directory / "drives" / str(i)),
            "block_size": block_size,
            "type": "virtual",
        }
        for i in range(drives)
    ]
    add_library(
        config,
        {
            "name": name,
            "device_path": str(directory),
            "slots": slots,
            "drives": [d["name"] for d in drive_entries],
            "type": "virtual",
        },
        drive_entries,
    )
    barcodes = library_barcodes(prefix, 1, tapes)
    return (
        f"Created virtual library '{name}' at {directory}: {drives} drive(s) "
        f"({', '.join(d['name'] for d in drive_entries)}), {slots} slots, {tapes} tape(s) of {tape_size} bytes"
        + (f", barcodes {barcodes[0]} to {barcodes[-1]}." if barcodes else ".")
    )
