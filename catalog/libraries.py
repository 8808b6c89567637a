"""Creating virtual libraries and adding them to the configuration."""

from __future__ import annotations

from pathlib import Path

from .config import Config, add_library, data_home
from .errors import ConfigError


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
) -> str:
    """Create a virtual library on disk and add it with its drives to the config.

    :returns: a one-line summary for the user.
    :raises ConfigError: the name is taken, sizes are invalid, or tapes > slots.
    """
    from pytp.tapeio.virtual_changer import create_virtual_library

    if any(lib.name == name for lib in config.libraries):
        raise ConfigError(f"A library named '{name}' already exists in {config.path}.")
    if tapes > slots:
        raise ConfigError(f"{tapes} tapes do not fit into {slots} slots.")
    if block_size <= 0 or block_size % 512:
        raise ConfigError(f"Block size {block_size} must be a positive multiple of 512.")
    if tape_size < 4 * block_size:
        raise ConfigError(f"Tape size {tape_size} is too small for block size {block_size}.")
    directory = (path or data_home() / "libraries" / name).resolve()
    prefix = barcode_prefix or "".join(c for c in name.upper() if c.isalnum())[:3].ljust(3, "X")
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
    return (
        f"Created virtual library '{name}' at {directory}: {drives} drive(s) "
        f"({', '.join(d['name'] for d in drive_entries)}), {slots} slots, {tapes} tape(s) of {tape_size} bytes."
    )
