"""Drive-level operations that need configuration but no catalog: status, retension."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pytp.tapeio.drive import Drive
from pytp.tapeio.errors import TapeIOError

from .config import Config
from .devices import Selection, drive_lock, open_changer, open_drive


def drive_report(config: Config, selection: Selection, drive: Drive, statistics: bool = False) -> dict[str, Any]:
    """What ``pytp status`` shows: position, block size, bits, and the tape's place.

    :param statistics: also read the volume statistics log page (st drives with
        sg_logs installed); absent statistics are reported as None.
    """
    status = drive.status()
    report: dict[str, Any] = {
        "drive": selection.drive.name,
        "device": selection.drive.device_path,
        "online": status.online,
        "file_number": status.file_number,
        "block_number": status.block_number,
        "block_size": status.block_size,
        "configured_block_size": selection.drive.block_size,
        "flags": " ".join(status.flags()),
    }
    if selection.library is not None and selection.element is not None:
        report["library"] = selection.library.name
        try:
            element = open_changer(selection.library).status().drive(selection.element)
        except TapeIOError as err:
            report["barcode"] = f"(library did not answer: {err})"
        else:
            report["barcode"] = element.barcode if element and element.full else None
            report["source_slot"] = element.source_slot if element and element.full else None
    if statistics:
        report["statistics"] = _statistics(selection)
    return report


def _statistics(selection: Selection) -> dict[str, Any] | None:
    if selection.drive.type != "st":
        return None
    from pytp.tapeio.sg_logs import read_volume_statistics

    return read_volume_statistics(selection.drive.device_path)


def retension(config: Config, selection: Selection, slot: int | None = None) -> Iterator[str]:
    """Retension the tape in the drive, or the one in ``slot`` (returned there after).

    Yields a line per step for verbose output.
    """
    with drive_lock(selection.drive):
        changer = None
        if slot is not None:
            if selection.library is None or selection.element is None:
                from .errors import ConfigError

                raise ConfigError(f"Drive {selection.drive.name} is not in a library; --slot needs one.")
            changer = open_changer(selection.library)
            home = changer.home_slot(selection.element)
            if home is not None:
                yield f"unloading drive {selection.drive.name} to slot {home}"
                changer.unload(home, selection.element)
            yield f"loading slot {slot} into drive {selection.drive.name}"
            changer.load(slot, selection.element)
        drive = open_drive(selection.drive)
        try:
            yield "rewinding"
            drive.rewind()
            yield "retensioning"
            drive.retension()
            drive.rewind()
        finally:
            drive.close()
        if changer is not None and selection.element is not None:
            yield f"returning the tape to slot {slot}"
            changer.unload(slot, selection.element)
