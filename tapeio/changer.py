"""The media changer interface shared by the mtx and virtual backends.

Numbering follows ``mtx``: storage elements (slots, including import/export
slots) are numbered from 1, data transfer elements (drives) from 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class DriveElement:
    """A drive as the changer sees it.

    :param index: data transfer element number (0 = first drive).
    :param source_slot: the slot the loaded tape came from, None if unknown.
    """

    index: int
    full: bool
    barcode: str | None = None
    source_slot: int | None = None
    alternate_barcode: str | None = None


@dataclass(frozen=True)
class StorageElement:
    """A storage slot; ``import_export`` marks a mail slot."""

    number: int
    full: bool
    barcode: str | None = None
    import_export: bool = False
    alternate_barcode: str | None = None

    @property
    def is_cleaning(self) -> bool:
        """Cleaning cartridges carry barcodes starting with ``CLN`` (LTO convention)."""
        return bool(self.barcode and self.barcode.upper().startswith("CLN"))


@dataclass(frozen=True)
class ChangerStatus:
    """The inventory of a library: its drives and its slots."""

    drives: list[DriveElement] = field(default_factory=list)
    slots: list[StorageElement] = field(default_factory=list)

    def slot(self, number: int) -> StorageElement | None:
        return next((s for s in self.slots if s.number == number), None)

    def drive(self, index: int) -> DriveElement | None:
        return next((d for d in self.drives if d.index == index), None)

    def find_barcode(self, barcode: str) -> DriveElement | StorageElement | None:
        """The element holding the tape with ``barcode``, drives first."""
        for element in [*self.drives, *self.slots]:
            if element.full and element.barcode == barcode:
                return element
        return None


@runtime_checkable
class Changer(Protocol):
    """A tape library robot.  Implementations: ``mtx.MtxChanger``, ``virtual_changer.VirtualChanger``."""

    name: str

    def status(self) -> ChangerStatus: ...

    def load(self, slot: int, drive: int) -> None: ...

    def unload(self, slot: int | None, drive: int) -> None:
        """Put the tape in ``drive`` into ``slot``, or back where it came from when None."""
        ...

    def transfer(self, source: int, destination: int) -> None: ...
