"""The virtual library: inventory, moves, every refusal, and creation."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from pytp.tapeio import exitcodes
from pytp.tapeio.changer import Changer, ChangerStatus
from pytp.tapeio.drive import UNKNOWN
from pytp.tapeio.errors import ChangerError
from pytp.tapeio.virtual_changer import (
    VirtualChanger,
    add_tape,
    barcodes_in,
    check_barcode_prefix,
    create_virtual_library,
    derive_barcode_prefix,
)
from pytp.tapeio.virtual_drive import VirtualDrive, load_tape, loaded_tape
from pytp.tapeio.virtual_tape import create_virtual_tape

MiB = 1024 * 1024
BS = 4096


@pytest.fixture
def library(tmp_path: Path) -> Path:
    # 6 storage slots (1-6), 4 tapes in 1-4, 2 import/export slots (7, 8).
    return create_virtual_library(
        tmp_path / "lib", "testlib", drives=2, slots=6, tapes=4, tape_size=16 * MiB, import_export=2
    )


@pytest.fixture
def changer(library: Path) -> VirtualChanger:
    return VirtualChanger(library)


def slot_barcodes(status: ChangerStatus) -> dict[int, str | None]:
    return {s.number: s.barcode for s in status.slots}


def test_created_library_inventory(changer: VirtualChanger, library: Path) -> None:
    assert isinstance(changer, Changer)
    assert changer.name == "testlib"
    status = changer.status()
    assert [(d.index, d.full) for d in status.drives] == [(0, False), (1, False)]
    assert slot_barcodes(status) == {
        1: "PYT001L9", 2: "PYT002L9", 3: "PYT003L9", 4: "PYT004L9",
        5: None, 6: None, 7: None, 8: None,
    }
    assert [s.number for s in status.slots if s.import_export] == [7, 8]
    assert all((library / "tapes" / f"PYT00{n}L9" / "tape.json").exists() for n in range(1, 5))
    meta = json.loads((library / "tapes" / "PYT001L9" / "tape.json").read_text())
    assert meta["capacity"] == 16 * MiB and meta["barcode"] == "PYT001L9"
    assert [changer.drive_path(i) for i in (0, 1)] == [library / "drives" / "0", library / "drives" / "1"]
    assert all((changer.drive_path(i) / "state.json").exists() for i in (0, 1))


def test_creation_options(tmp_path: Path) -> None:
    lib = create_virtual_library(
        tmp_path / "x", "x", drives=1, slots=3, tapes=2, import_export=0,
        barcode_prefix="ABC", barcode_suffix="L8",
    )
    status = VirtualChanger(lib, name="other").status()
    assert slot_barcodes(status) == {1: "ABC001L8", 2: "ABC002L8", 3: None}
    assert not any(s.import_export for s in status.slots)
    assert len(status.drives) == 1
    with pytest.raises(ValueError):
        create_virtual_library(tmp_path / "y", "y", slots=2, tapes=3)


def test_barcodes_stay_lto_style_whatever_the_prefix_length(tmp_path: Path) -> None:
    """6 characters and the media type: a shorter prefix leaves more digits for the number."""
    lib = create_virtual_library(tmp_path / "a", "a", slots=2, tapes=2, barcode_prefix="ab")
    assert slot_barcodes(VirtualChanger(lib).status()) == {1: "AB0001L9", 2: "AB0002L9", 3: None}
    assert barcodes_in(lib) == {"AB0001L9", "AB0002L9"}
    assert barcodes_in(tmp_path / "gone") == set()
    for bad in ("ABCD", "", "A-B", "É"):
        with pytest.raises(ValueError, match="Invalid barcode prefix"):
            check_barcode_prefix(bad)
    with pytest.raises(ValueError, match="Invalid barcode prefix"):
        create_virtual_library(tmp_path / "b", "b", barcode_prefix="TOOLONG")
    assert not (tmp_path / "b").exists()


def test_derived_prefixes_differ_per_library_and_per_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """hosta and hostb no longer both get HOS: the name gives one letter, host and directory the rest."""
    paths = [tmp_path / f"lib{i}" for i in range(40)]
    here = [derive_barcode_prefix("hosta", p) for p in paths]
    assert all(re.fullmatch(r"H[A-Z]{2}", prefix) for prefix in here)
    assert here == [derive_barcode_prefix("hosta", p) for p in paths]  # stable for one library
    assert len(set(here)) >= 30  # 676 choices per letter: 40 libraries rarely share one
    assert len({derive_barcode_prefix("hosta", paths[0], attempt) for attempt in range(10)}) >= 7
    assert derive_barcode_prefix("42", paths[0])[0] == "V"  # no letter in the name
    monkeypatch.setattr(socket, "gethostname", lambda: "another-host")
    there = [derive_barcode_prefix("hosta", p) for p in paths]
    assert sum(a != b for a, b in zip(here, there, strict=True)) >= 30  # the same paths on another host


def test_creation_refuses_an_existing_library(library: Path, tmp_path: Path) -> None:
    with pytest.raises(ChangerError, match="already exists"):
        create_virtual_library(library, "again")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(ChangerError, match="not empty"):
        create_virtual_library(tmp_path / "busy", "busy")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"


def test_no_library_at_path(tmp_path: Path) -> None:
    with pytest.raises(ChangerError, match="No virtual library") as err:
        VirtualChanger(tmp_path)
    assert err.value.exit_code == exitcodes.EXIT_CHANGER


def test_load_and_unload_to_the_source_slot(changer: VirtualChanger, library: Path) -> None:
    changer.load(2, 0)
    status = changer.status()
    drive = status.drive(0)
    assert drive is not None and drive.full
    assert (drive.barcode, drive.source_slot) == ("PYT002L9", 2)
    assert slot_barcodes(status)[2] is None
    assert status.find_barcode("PYT002L9") == drive
    with VirtualDrive(changer.drive_path(0)) as d:
        s = d.status()
        assert s.online and (s.file_number, s.block_number) == (UNKNOWN, UNKNOWN)
    changer.unload(None, 0)
    status = changer.status()
    assert not status.drives[0].full and status.drives[0].source_slot is None
    assert slot_barcodes(status)[2] == "PYT002L9"
    assert loaded_tape(changer.drive_path(0)) is None


def test_unload_to_a_named_slot_and_data_travels(changer: VirtualChanger, library: Path) -> None:
    changer.load(1, 1)
    with VirtualDrive(changer.drive_path(1)) as d:
        d.set_block_size(BS)
        d.rewind()
        d.write(b"t" * BS)
    changer.unload(7, 1)  # into an import/export slot
    status = changer.status()
    assert slot_barcodes(status)[7] == "PYT001L9" and slot_barcodes(status)[1] is None
    changer.load(7, 0)
    assert changer.status().drives[0].source_slot == 7
    with VirtualDrive(changer.drive_path(0)) as d:
        d.set_block_size(BS)
        d.rewind()
        assert d.read(BS) == b"t" * BS


def test_transfer(changer: VirtualChanger) -> None:
    changer.transfer(3, 8)
    status = changer.status()
    assert slot_barcodes(status)[3] is None
    moved = status.slot(8)
    assert moved is not None and moved.barcode == "PYT003L9" and moved.import_export


def test_load_refusals(changer: VirtualChanger) -> None:
    with pytest.raises(ChangerError, match=r"Slot 5 of library testlib is empty"):
        changer.load(5, 0)
    with pytest.raises(ChangerError, match=r"no slot 99: slots are 1 to 8, import/export: 7, 8"):
        changer.load(99, 0)
    with pytest.raises(ChangerError, match=r"no drive 2: drives are 0 to 1"):
        changer.load(1, 2)
    changer.load(1, 0)
    with pytest.raises(ChangerError, match=r"already holds tape PYT001L9 \(from slot 1\): unload it first"):
        changer.load(2, 0)
    assert slot_barcodes(changer.status())[2] == "PYT002L9"  # nothing moved


def test_unload_refusals(changer: VirtualChanger, library: Path) -> None:
    with pytest.raises(ChangerError, match="Drive 0 of library testlib is empty"):
        changer.unload(None, 0)
    changer.load(1, 0)
    with pytest.raises(ChangerError, match="Slot 2 of library testlib already holds tape PYT002L9"):
        changer.unload(2, 0)
    with pytest.raises(ChangerError, match="no slot 0"):
        changer.unload(0, 0)
    with pytest.raises(ChangerError, match="no drive 7"):
        changer.unload(None, 7)
    assert changer.status().drives[0].barcode == "PYT001L9"


def test_unload_with_unknown_source_needs_a_slot(changer: VirtualChanger, library: Path) -> None:
    # A cartridge put into the drive by hand, never in a slot of this library.
    tape = create_virtual_tape(library / "tapes" / "HND001L9", "HND001L9", capacity=MiB)
    load_tape(changer.drive_path(1), tape)
    assert changer.status().drives[1].barcode == "HND001L9"
    with pytest.raises(ChangerError, match="came from is unknown: name an empty slot"):
        changer.unload(None, 1)
    changer.unload(6, 1)
    assert slot_barcodes(changer.status())[6] == "HND001L9"
    changer.load(6, 0)  # from now on the library knows it
    assert changer.status().drives[0].source_slot == 6


def test_transfer_refusals(changer: VirtualChanger) -> None:
    with pytest.raises(ChangerError, match="Slot 5 of library testlib is empty"):
        changer.transfer(5, 6)
    with pytest.raises(ChangerError, match="Slot 2 of library testlib already holds tape PYT002L9"):
        changer.transfer(1, 2)
    with pytest.raises(ChangerError, match="both source and destination"):
        changer.transfer(1, 1)
    with pytest.raises(ChangerError, match="no slot 42"):
        changer.transfer(1, 42)
    assert slot_barcodes(changer.status())[1] == "PYT001L9"


def test_busy_drive_blocks_moves(changer: VirtualChanger, library: Path) -> None:
    with VirtualDrive(changer.drive_path(0)):  # open, as a running backup would hold it
        with pytest.raises(ChangerError, match=r"Cannot load drive 0 of library testlib: .*close it"):
            changer.load(1, 0)
        assert slot_barcodes(changer.status())[1] == "PYT001L9"
    changer.load(1, 0)
    with VirtualDrive(changer.drive_path(0)):
        with pytest.raises(ChangerError, match="Cannot unload drive 0"):
            changer.unload(None, 0)
        assert changer.status().drives[0].full
    changer.unload(None, 0)


def test_add_tape(changer: VirtualChanger, library: Path) -> None:
    tape = add_tape(library, "NEW001L9", 7)
    assert tape == library / "tapes" / "NEW001L9"
    assert json.loads((tape / "tape.json").read_text())["capacity"] == 16 * MiB
    assert slot_barcodes(changer.status())[7] == "NEW001L9"
    with pytest.raises(ChangerError, match="already holds tape NEW001L9"):
        add_tape(library, "NEW002L9", 7)
    with pytest.raises(ChangerError, match="already has a tape PYT001L9"):
        add_tape(library, "PYT001L9", 8)
    changer.load(7, 0)
    assert changer.status().drives[0].barcode == "NEW001L9"
