"""The media changer interface shared by the mtx and virtual backends.

Numbering follows ``mtx``: storage elements (slots, including import/export
slots) are numbered from 1, data transfer elements (drives) from 0.

Backends implement the moves (``status``, ``load``, ``unload``,
``transfer``); where a tape goes is decided once, here, by the policy
methods every backend inherits (``home_slot``, ``return_to_home``,
``load_media``), the way Proxmox Backup Server's ``MediaChange`` trait keeps
``load_media`` and ``export_media`` above each changer's primitives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from .errors import ChangerError


def is_cleaning_barcode(barcode: str | None) -> bool:
    """Cleaning cartridges carry barcodes starting with ``CLN`` (LTO convention)."""
    return bool(barcode and barcode.upper().startswith("CLN"))


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
        return is_cleaning_barcode(self.barcode)


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


def home_slot(status: ChangerStatus, drive: int, library: str = "the library") -> int | None:
    """The slot the tape in ``drive`` goes back to; None when the drive is empty.

    The slot it came from while that slot is still empty; otherwise (the
    library does not know it, or another tape took it) the first empty
    storage slot.  Never an import/export slot: those are the operator's.

    :param library: the library's name, for the message.
    :raises ChangerError: no storage slot is empty.
    """
    element = status.drive(drive)
    if element is None or not element.full:
        return None
    source = status.slot(element.source_slot) if element.source_slot is not None else None
    if source is not None and not source.full:
        return source.number
    empty = [s.number for s in status.slots if not s.full and not s.import_export]
    if not empty:
        raise ChangerError(
            f"No empty slot in library {library} to unload drive element {drive} into. Free a slot with `pytp move`."
        )
    return empty[0]


def free_mail_slot(status: ChangerStatus) -> int | None:
    """The first empty import/export (mail) slot, or None when every one is full (or there is none)."""
    return next((s.number for s in status.slots if s.import_export and not s.full), None)


def free_storage_slot(status: ChangerStatus) -> int | None:
    """The first empty storage slot (never a mail slot), or None when the library is full.

    A slot a loaded tape came from is taken last: that tape goes home to it.
    """
    homes = {d.source_slot for d in status.drives if d.full and d.source_slot is not None}
    empty = [s.number for s in status.slots if not s.import_export and not s.full]
    return min(empty, key=lambda n: (n in homes, n), default=None)


@runtime_checkable
class Changer(Protocol):
    """A tape library robot.  Implementations: ``mtx.MtxChanger``, ``virtual_changer.VirtualChanger``.

    They subclass this protocol to inherit the policy methods below.
    """

    name: str

    def status(self) -> ChangerStatus: ...

    def load(self, slot: int, drive: int) -> None: ...

    def unload(self, slot: int | None, drive: int) -> None:
        """Put the tape in ``drive`` into ``slot``, or back where it came from when None."""
        ...

    def transfer(self, source: int, destination: int) -> None: ...

    # -- policy: where tapes go, decided here for every backend ---------------

    def home_slot(self, drive: int, status: ChangerStatus | None = None) -> int | None:
        """Where the tape in ``drive`` goes back to (:func:`home_slot`); None if the drive is empty.

        :param status: the inventory just read, if the caller has it (``mtx status`` is slow).
        """
        return home_slot(status or self.status(), drive, self.name)

    def return_to_home(self, drive: int, status: ChangerStatus | None = None) -> int | None:
        """Put the tape in ``drive`` back into its home slot; return that slot (None: the drive was empty).

        :param status: the inventory just read, if the caller has it.
        :raises ChangerError: no slot is empty, or the move failed.
        """
        slot = self.home_slot(drive, status)
        if slot is not None:
            self.unload(slot, drive)
        return slot

    def load_media(self, barcode: str, drive: int) -> int | None:
        """Put the cartridge ``barcode`` into ``drive``, returning the tape there to its home first.

        :returns: the slot it was loaded from; None when it was in ``drive`` already.
        :raises ChangerError: it is in another drive (return it first), or not in the library.
        """
        status = self.status()
        place = status.find_barcode(barcode)
        if isinstance(place, DriveElement):
            if place.index == drive:
                return None
            raise ChangerError(
                f"Cartridge {barcode} is in another drive (element {place.index}) of library {self.name}; "
                "unload it first."
            )
        if place is None:
            raise ChangerError(f"No cartridge with barcode {barcode} in library {self.name}.")
        self.return_to_home(drive, status)
        self.load(place.number, drive)
        return place.number

    def export_media(self, barcode: str, status: ChangerStatus | None = None) -> int:
        """Move the cartridge ``barcode`` from a storage slot into the first empty mail slot.

        Proxmox Backup Server's ``MediaChange::export_media`` does the same; a
        tape in a drive must be returned to a slot first (the caller holds
        that drive's lock, so no job is using it).  A cartridge already in a
        mail slot stays where it is (an export cut short by a crash, run again).

        :returns: the mail slot the operator takes it from.
        :raises ChangerError: it is not in a slot of this library, or no mail slot is empty.
        """
        status = status or self.status()
        place = status.find_barcode(barcode)
        if isinstance(place, StorageElement) and place.import_export:
            return place.number
        # Checked first, so a caller may ask before it unloads a drive: no mail slot, nothing moves.
        target = free_mail_slot(status)
        if target is None and not any(s.import_export for s in status.slots):
            raise ChangerError(
                f"Library {self.name} has no import/export slots: pytp cannot hand {barcode} out. "
                "Take it out through the library's door or magazine instead."
            )
        if target is None:
            raise ChangerError(
                f"Library {self.name} has no empty import/export slot for {barcode}: "
                "empty the mail slots (or run `pytp vault import`) and export again."
            )
        if not isinstance(place, StorageElement):
            where = f"in drive element {place.index}" if place is not None else "not in it"
            raise ChangerError(f"Cartridge {barcode} of library {self.name} is {where}: only a tape in a slot moves.")
        self.transfer(place.number, target)
        return target

    def clean(self, drive: int) -> tuple[str, int]:
        """Clean ``drive``: load a cleaning cartridge (``CLN…``), then put it back into its slot.

        A drive cleans as soon as a cleaning cartridge is loaded and ejects it
        when done; the unload waits for that.  A tape in the drive goes back to
        its home slot first.

        :returns: the cleaning cartridge's barcode and slot.
        :raises ChangerError: the library holds no cleaning cartridge in a slot.
        """
        status = self.status()
        cleaners = [s for s in status.slots if s.full and s.is_cleaning]
        if not cleaners:
            raise ChangerError(
                f"Library {self.name} holds no cleaning cartridge (barcode CLN…) in a slot: insert one and retry."
            )
        # A storage slot before a mail slot: an operator may be about to take the latter.
        cartridge = min(cleaners, key=lambda s: (s.import_export, s.number))
        assert cartridge.barcode is not None
        self.return_to_home(drive, status)
        self.load(cartridge.number, drive)
        self.unload(cartridge.number, drive)
        return cartridge.barcode, cartridge.number
