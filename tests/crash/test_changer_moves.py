"""A changer move cut short by a crash loses no tape (virtual library).

A move of the virtual changer writes two files: the drive's ``state.json``
and the library's ``library.json``.  The crash harness found that a process
killed between the two during an unload left the tape in neither a slot nor
a drive, so no command could find it again.  Moves are now ordered so the cut
state lists the tape twice (in its slot and in the drive), and the changer
settles that from the drive.  The cut states are written here as a crash
leaves them.
"""

from __future__ import annotations

import json
from pathlib import Path

from pytp.tapeio.virtual_changer import LIBRARY_FILE, VirtualChanger, add_tape, create_virtual_library


def _library(tmp_path: Path) -> tuple[VirtualChanger, Path]:
    path = create_virtual_library(tmp_path / "lib", "lib", drives=2, slots=4, tapes=2, tape_size=64 << 20)
    return VirtualChanger(path), path / LIBRARY_FILE


def _edit(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_a_load_cut_before_the_slot_was_emptied(tmp_path: Path) -> None:
    changer, inventory = _library(tmp_path)
    changer.load(1, 0)

    def cut(lib):  # type: ignore[no-untyped-def]
        lib["slots"]["1"] = "PYT001L9"  # the drive holds the tape; the slot was not saved yet
        lib["drive_sources"] = {}

    _edit(inventory, cut)
    status = changer.status()
    assert status.drive(0).full and status.drive(0).barcode == "PYT001L9" and status.drive(0).source_slot == 1
    assert not status.slot(1).full
    add_tape(tmp_path / "lib", "NEW001L9", 1)  # the operator fills the slot that looks empty
    assert changer.status().slot(1).barcode == "NEW001L9"
    changer.unload(3, 0)  # its own slot is taken now
    status = changer.status()
    assert status.slot(3).barcode == "PYT001L9" and not status.drive(0).full


def test_an_unload_cut_before_the_drive_let_go(tmp_path: Path) -> None:
    changer, inventory = _library(tmp_path)
    changer.load(2, 1)

    def cut(lib):  # type: ignore[no-untyped-def]
        lib["slots"]["2"] = "PYT002L9"  # the slot was saved first; the drive still holds the tape
        lib["drive_sources"] = {}

    _edit(inventory, cut)
    status = changer.status()
    assert [s.barcode for s in status.slots if s.full] == ["PYT001L9"]  # PYT002L9 only in the drive
    assert status.drive(1).barcode == "PYT002L9" and status.drive(1).source_slot == 2
    changer.load(1, 0)  # other moves work on the settled inventory
    changer.unload(None, 1)
    changer.unload(None, 0)
    assert [s.barcode for s in changer.status().slots if s.full] == ["PYT001L9", "PYT002L9"]
