"""Where tapes go: the changer policy every backend inherits (``tapeio.changer``).

The pure ``home_slot`` on hand-made inventories, and the inherited methods on
the virtual library (the DESIGN.md-named fake).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytp.tapeio.changer import ChangerStatus, DriveElement, StorageElement, home_slot
from pytp.tapeio.errors import ChangerError
from pytp.tapeio.mtx import MtxChanger
from pytp.tapeio.virtual_changer import VirtualChanger, create_virtual_library

MiB = 1024 * 1024


def _status(source: int | None, full_slots: set[int]) -> ChangerStatus:
    return ChangerStatus(
        drives=[DriveElement(0, True, "PYT001L9", source), DriveElement(1, False)],
        slots=[StorageElement(n, n in full_slots, import_export=n == 4) for n in range(1, 5)],
    )


def test_home_is_the_source_slot_while_it_is_empty() -> None:
    assert home_slot(_status(2, {1}), 0) == 2


@pytest.mark.parametrize("source", [None, 1], ids=["source-unknown", "source-taken"])
def test_otherwise_the_first_empty_storage_slot_never_import_export(source: int | None) -> None:
    assert home_slot(_status(source, {1}), 0) == 2
    assert home_slot(_status(source, {1, 2}), 0) == 3
    with pytest.raises(ChangerError, match="No empty slot in library lib1 to unload drive element 0"):
        home_slot(_status(source, {1, 2, 3}), 0, "lib1")  # slot 4 is import/export: not used


def test_an_empty_drive_has_no_home() -> None:
    assert home_slot(_status(None, set()), 1) is None


def test_both_backends_inherit_the_policy() -> None:
    for backend in (MtxChanger, VirtualChanger):
        assert backend.return_to_home is not None and backend.load_media is not None
        assert "home_slot" not in vars(backend) and "load_media" not in vars(backend)


@pytest.fixture
def changer(tmp_path: Path) -> VirtualChanger:
    library = create_virtual_library(
        tmp_path / "lib", "testlib", drives=2, slots=4, tapes=3, tape_size=16 * MiB, import_export=1
    )
    return VirtualChanger(library)


def test_load_media_returns_the_drive_tape_home_then_loads(changer: VirtualChanger) -> None:
    first, second = changer.status().slot(1).barcode, changer.status().slot(2).barcode  # type: ignore[union-attr]
    assert first and second
    assert changer.load_media(first, 0) == 1
    assert changer.load_media(first, 0) is None  # already there: nothing moves
    changer.transfer(3, 1)  # the operator fills the tape's home slot meanwhile: 3 and 4 are empty
    assert changer.load_media(second, 0) == 2
    status = changer.status()
    assert status.slot(3).barcode == first  # type: ignore[union-attr]  # the first empty storage slot
    assert status.drive(0).barcode == second  # type: ignore[union-attr]
    with pytest.raises(ChangerError, match="another drive"):
        changer.load_media(second, 1)
    with pytest.raises(ChangerError, match="No cartridge with barcode NOPE01L9"):
        changer.load_media("NOPE01L9", 1)
    assert changer.return_to_home(0) == 2
    assert changer.return_to_home(0) is None
