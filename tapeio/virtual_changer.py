"""A file-backed tape library (media changer) holding virtual tapes and drives.

A library is a directory::

    library.json   name, format, drives (paths relative to the library),
                   slots {"1": barcode or null, ...}, import_export [slot, ...],
                   drive_sources {"0": slot}, tape_size,
                   cleaning_uses {"CLN001L1": loads}
    tapes/<BARCODE>/   virtual tapes (see virtual_tape)
    drives/<n>/        virtual drives
    lock               flock'ed while the inventory changes

Numbering is mtx's: slots from 1, import/export slots numbered after the
storage slots, drives from 0.  What a drive holds is read from the drive's own
``state.json`` (one source of truth, shared with :mod:`.virtual_drive`); the
library remembers only the slots and which slot each loaded tape came from.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .changer import Changer, ChangerStatus, DriveElement, StorageElement, is_cleaning_barcode
from .errors import ChangerError, DriveBusy, TapeIOError
from .procinfo import host_name
from .virtual_drive import clear_cleaning_request, create_virtual_drive, load_tape, loaded_tape, unload_tape
from .virtual_tape import create_virtual_tape, tape_barcode, write_json

FORMAT_VERSION = 1
LIBRARY_FILE = "library.json"
LOCK_FILE = "lock"
GiB = 1024**3

#: An LTO barcode is 6 characters and the media type (``L9``); pytp's virtual
#: tapes use a prefix of up to 3 letters or digits and number the rest.
BARCODE_LENGTH = 6
MAX_PREFIX = 3
_PREFIX_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _read_library(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / LIBRARY_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ChangerError(
            f"No virtual library at {path}: create one with create_virtual_library(), "
            "or check the library's path in the configuration."
        ) from err
    except (OSError, ValueError) as err:
        raise ChangerError(f"Cannot read {path / LIBRARY_FILE}: {err}. Repair or recreate it.") from err


def host_identity() -> str:
    """What tells this host from others: its name and, where there is one, its machine id."""
    machine_id = ""
    for candidate in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            machine_id = Path(candidate).read_text(encoding="ascii").strip()
            break
        except (OSError, ValueError):
            continue
    return f"{host_name()}/{machine_id}"


def derive_barcode_prefix(name: str, path: str | os.PathLike[str], attempt: int = 0) -> str:
    """A 3-letter barcode prefix for a new virtual library: the name's first letter, then two
    letters drawn from this host and the library's directory.

    Barcodes stand for physical cartridges and must be unique wherever one
    catalog sees them: two hosts sharing a PostgreSQL catalog, or two
    libraries on one host, must not both create ``PYT001L9``.  A name alone
    does not do (``hosta`` and ``hostb``); the host and the directory do.
    ``attempt`` gives the next candidate when one is taken.
    """
    letter = next((c for c in name.upper() if c in _PREFIX_LETTERS), "V")
    seed = f"{host_identity()}\0{Path(path).resolve()}\0{attempt}".encode()
    value = int.from_bytes(hashlib.blake2b(seed, digest_size=8).digest(), "big")
    first, second = divmod(value % (26 * 26), 26)
    return letter + _PREFIX_LETTERS[first] + _PREFIX_LETTERS[second]


def check_barcode_prefix(prefix: str) -> str:
    """``prefix`` in upper case, or :class:`ValueError` if its barcodes would not be LTO-style."""
    upper = prefix.upper()
    if not (1 <= len(upper) <= MAX_PREFIX and upper.isascii() and upper.isalnum()):
        raise ValueError(
            f"Invalid barcode prefix {prefix!r}: use 1 to {MAX_PREFIX} letters or digits "
            f"(the rest of the {BARCODE_LENGTH} characters is the tape number, e.g. ABC001L9)."
        )
    return upper


def library_barcodes(prefix: str, first: int = 1, count: int = 1, suffix: str = "L9") -> list[str]:
    """The barcodes ``<prefix><number><suffix>`` of tapes ``first`` to ``first + count - 1``."""
    width = BARCODE_LENGTH - len(prefix)
    return [f"{prefix}{number:0{width}d}{suffix}" for number in range(first, first + count)]


def barcodes_in(library_path: str | os.PathLike[str]) -> set[str]:
    """Every barcode a virtual library holds (in slots, in drives or only on disk); none if it is gone."""
    tapes = Path(library_path) / "tapes"
    try:
        return {entry.name for entry in tapes.iterdir() if entry.is_dir()}
    except OSError:
        return set()


def create_virtual_library(
    path: str | os.PathLike[str],
    name: str,
    drives: int = 2,
    slots: int = 8,
    tapes: int = 8,
    tape_size: int = 4 * GiB,
    import_export: int = 1,
    barcode_prefix: str = "PYT",
    barcode_suffix: str = "L9",
) -> Path:
    """Create a virtual library with its drives and blank tapes.

    Tapes are sparse until written, so large ``tape_size`` values cost nothing.

    :param path: the library directory; created, or empty if it exists.
    :param name: the library's name, used in messages.
    :param drives: number of drives (numbered from 0).
    :param slots: number of storage slots (numbered from 1).
    :param tapes: blank tapes to create, put in slots 1..tapes, with barcodes
        ``<prefix><001..><suffix>`` (``PYT001L9``): 6 characters and the suffix.
    :param barcode_prefix: 1 to 3 letters or digits; give each library its own
        (:func:`derive_barcode_prefix`), as barcodes name physical cartridges.
    :param tape_size: capacity of each tape in bytes.
    :param import_export: number of import/export (mail) slots, numbered
        after the storage slots and left empty.
    :returns: the library directory.
    """
    if drives < 1 or slots < 1 or import_export < 0:
        raise ValueError("A library needs at least one drive and one slot.")
    if not 0 <= tapes <= slots:
        raise ValueError(f"{tapes} tapes do not fit into {slots} storage slots.")
    barcode_prefix = check_barcode_prefix(barcode_prefix)
    last = library_barcodes(barcode_prefix, first=max(tapes, 1), suffix=barcode_suffix)[0]
    if len(last) != BARCODE_LENGTH + len(barcode_suffix):
        raise ValueError(f"{tapes} tapes do not fit the barcode prefix {barcode_prefix}: choose a shorter one.")
    library = Path(path)
    if (library / LIBRARY_FILE).exists():
        raise ChangerError(f"A virtual library already exists at {library}: use it, or choose another path.")
    if library.exists() and any(library.iterdir()):
        raise ChangerError(
            f"Cannot create a virtual library at {library}: the directory is not empty. Choose another path."
        )
    library.mkdir(parents=True, exist_ok=True)
    (library / "tapes").mkdir()
    drive_dirs = []
    for index in range(drives):
        create_virtual_drive(library / "drives" / str(index))
        drive_dirs.append(f"drives/{index}")
    slot_map: dict[str, str | None] = {str(n): None for n in range(1, slots + import_export + 1)}
    for number, barcode in enumerate(library_barcodes(barcode_prefix, 1, tapes, barcode_suffix), 1):
        create_virtual_tape(library / "tapes" / barcode, barcode, tape_size)
        slot_map[str(number)] = barcode
    write_json(
        library / LIBRARY_FILE,
        {
            "name": name,
            "format": FORMAT_VERSION,
            "drives": drive_dirs,
            "slots": slot_map,
            "import_export": list(range(slots + 1, slots + import_export + 1)),
            "drive_sources": {},
            "tape_size": tape_size,
        },
    )
    (library / LOCK_FILE).touch()
    return library


def add_tape(
    library_path: str | os.PathLike[str],
    barcode: str,
    slot: int,
    capacity: int | None = None,
) -> Path:
    """Create a new blank tape in an empty slot (an operator inserting a cartridge).

    :param capacity: bytes; defaults to the library's ``tape_size``.
    :returns: the new tape's directory.
    """
    changer = VirtualChanger(library_path)
    with changer._locked() as lib:
        lib = changer._settled(lib)
        changer._check_slot(lib, slot)
        if lib["slots"][str(slot)] is not None:
            raise ChangerError(
                f"Slot {slot} of library {changer.name} already holds tape "
                f"{lib['slots'][str(slot)]}: choose an empty slot."
            )
        tape_dir = changer.path / "tapes" / barcode
        if tape_dir.exists():
            raise ChangerError(f"Library {changer.name} already has a tape {barcode}: barcodes must be unique.")
        create_virtual_tape(tape_dir, barcode, capacity or int(lib.get("tape_size", 4 * GiB)))
        lib["slots"][str(slot)] = barcode
        changer._save(lib)
    return tape_dir


class VirtualChanger(Changer):
    """The :class:`~pytp.tapeio.changer.Changer` of a virtual library directory.

    :param path: the library directory (made by :func:`create_virtual_library`).
    :param name: the name used in messages; defaults to the library's own name.
    """

    def __init__(self, path: str | os.PathLike[str], name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or str(_read_library(self.path).get("name") or self.path)

    # -- plumbing ------------------------------------------------------------

    @contextmanager
    def _locked(self, exclusive: bool = True) -> Iterator[dict[str, Any]]:
        """Hold the library lock and yield a fresh copy of its inventory.

        The lock is held only for the few file operations of one move, so
        waiting for it (rather than failing) is right.
        """
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield _read_library(self.path)
        finally:
            os.close(fd)

    def _save(self, lib: dict[str, Any]) -> None:
        write_json(self.path / LIBRARY_FILE, lib)

    def _settled(self, lib: dict[str, Any]) -> dict[str, Any]:
        """The inventory with a move that a crash cut short settled; the drives are the truth.

        A move changes two files, the drive's ``state.json`` and ``library.json``.
        Each move is ordered so that a process killed between the two leaves
        its tape listed in a slot while a drive holds it, never listed nowhere;
        such a slot is empty, and the tape came from it.
        """
        loaded: dict[str, int] = {}
        for index, rel in enumerate(lib["drives"]):
            tape = loaded_tape(self.path / rel)
            if tape is not None:
                loaded[self._barcode(tape) or tape.name] = index
        sources = lib.setdefault("drive_sources", {})
        for number, barcode in lib["slots"].items():
            if barcode is not None and barcode in loaded:
                lib["slots"][number] = None
                sources.setdefault(str(loaded[barcode]), int(number))
        return lib

    def _slot_range(self, lib: dict[str, Any]) -> str:
        total = len(lib["slots"])
        ie = lib.get("import_export") or []
        extra = f", import/export: {', '.join(map(str, ie))}" if ie else ""
        return f"slots are 1 to {total}{extra}"

    def _check_slot(self, lib: dict[str, Any], slot: int) -> None:
        if str(slot) not in lib["slots"]:
            raise ChangerError(f"Library {self.name} has no slot {slot}: {self._slot_range(lib)}.")

    def _drive_dir(self, lib: dict[str, Any], drive: int) -> Path:
        drives = lib["drives"]
        if not 0 <= drive < len(drives):
            raise ChangerError(f"Library {self.name} has no drive {drive}: drives are 0 to {len(drives) - 1}.")
        return self.path / drives[drive]

    def drive_path(self, drive: int) -> Path:
        """The directory of drive ``drive``, for :class:`VirtualDrive`."""
        return self._drive_dir(_read_library(self.path), drive)

    @staticmethod
    def _barcode(tape: Path) -> str | None:
        try:
            return tape_barcode(tape)
        except TapeIOError:
            return None  # the tape directory vanished; the drive is still full

    def _busy(self, drive: int, err: DriveBusy, action: str) -> ChangerError:
        return ChangerError(f"Cannot {action} drive {drive} of library {self.name}: {err}")

    # -- Changer protocol ------------------------------------------------------

    def status(self) -> ChangerStatus:
        """Drives with their tapes and source slots, and every slot with its barcode."""
        with self._locked(exclusive=False) as lib:
            lib = self._settled(lib)
            ie = set(lib.get("import_export") or [])
            sources = lib.get("drive_sources") or {}
            drives = []
            for index, rel in enumerate(lib["drives"]):
                tape = loaded_tape(self.path / rel)
                drives.append(
                    DriveElement(
                        index=index,
                        full=tape is not None,
                        barcode=self._barcode(tape) if tape is not None else None,
                        source_slot=sources.get(str(index)) if tape is not None else None,
                    )
                )
            slots = [
                StorageElement(
                    number=int(number),
                    full=barcode is not None,
                    barcode=barcode,
                    import_export=int(number) in ie,
                )
                for number, barcode in sorted(lib["slots"].items(), key=lambda kv: int(kv[0]))
            ]
        return ChangerStatus(drives=drives, slots=slots)

    def load(self, slot: int, drive: int) -> None:
        """Move the tape in ``slot`` into ``drive``; the drive's position is then unknown."""
        with self._locked() as lib:
            lib = self._settled(lib)
            self._check_slot(lib, slot)
            drive_dir = self._drive_dir(lib, drive)
            barcode = lib["slots"][str(slot)]
            if barcode is None:
                raise ChangerError(
                    f"Slot {slot} of library {self.name} is empty: choose a slot that holds "
                    "a tape (`pytp list` shows them)."
                )
            current = loaded_tape(drive_dir)
            if current is not None:
                source = (lib.get("drive_sources") or {}).get(str(drive))
                origin = f"from slot {source}" if source is not None else "source slot unknown"
                raise ChangerError(
                    f"Drive {drive} of library {self.name} already holds tape "
                    f"{self._barcode(current) or current} ({origin}): unload it first "
                    "(`pytp unload`)."
                )
            try:
                load_tape(drive_dir, self.path / "tapes" / barcode)
            except DriveBusy as err:
                raise self._busy(drive, err, "load") from err
            lib["slots"][str(slot)] = None
            lib.setdefault("drive_sources", {})[str(drive)] = slot
            if is_cleaning_barcode(barcode):
                # A cleaning cartridge cleans on load: its use is counted, and the
                # drive's "clean now/periodic" TapeAlert flags (20/21) are cleared.
                uses = lib.setdefault("cleaning_uses", {})
                uses[barcode] = int(uses.get(barcode, 0)) + 1
                clear_cleaning_request(drive_dir)
            self._save(lib)

    def cleaning_uses(self) -> dict[str, int]:
        """How often each cleaning cartridge (``CLN…``) was loaded, by barcode."""
        with self._locked(exclusive=False) as lib:
            return {str(k): int(v) for k, v in (lib.get("cleaning_uses") or {}).items()}

    def unload(self, slot: int | None, drive: int) -> None:
        """Move the tape in ``drive`` to ``slot``, or back to its source slot when None."""
        with self._locked() as lib:
            lib = self._settled(lib)
            drive_dir = self._drive_dir(lib, drive)
            current = loaded_tape(drive_dir)
            if current is None:
                raise ChangerError(f"Drive {drive} of library {self.name} is empty: there is no tape to unload.")
            sources = lib.setdefault("drive_sources", {})
            target = slot if slot is not None else sources.get(str(drive))
            if target is None:
                raise ChangerError(
                    f"The slot that tape {self._barcode(current) or current} in drive {drive} "
                    "came from is unknown: name an empty slot to unload it to."
                )
            self._check_slot(lib, target)
            occupant = lib["slots"][str(target)]
            if occupant is not None:
                raise ChangerError(
                    f"Slot {target} of library {self.name} already holds tape {occupant}: choose an empty slot."
                )
            # The slot first: killed before the drive lets go, the tape is
            # listed twice, which ``_settled`` resolves; never nowhere.
            lib["slots"][str(target)] = self._barcode(current) or current.name
            previous = sources.pop(str(drive), None)
            self._save(lib)
            try:
                unload_tape(drive_dir)
            except DriveBusy as err:
                lib["slots"][str(target)] = None
                if previous is not None:
                    sources[str(drive)] = previous
                self._save(lib)
                raise self._busy(drive, err, "unload") from err

    def transfer(self, source: int, destination: int) -> None:
        """Move a tape from slot ``source`` to the empty slot ``destination``."""
        with self._locked() as lib:
            lib = self._settled(lib)
            self._check_slot(lib, source)
            self._check_slot(lib, destination)
            if source == destination:
                raise ChangerError(f"Slot {source} is both source and destination: choose another destination.")
            barcode = lib["slots"][str(source)]
            if barcode is None:
                raise ChangerError(f"Slot {source} of library {self.name} is empty: there is no tape to move.")
            occupant = lib["slots"][str(destination)]
            if occupant is not None:
                raise ChangerError(
                    f"Slot {destination} of library {self.name} already holds tape {occupant}: choose an empty slot."
                )
            lib["slots"][str(source)] = None
            lib["slots"][str(destination)] = barcode
            self._save(lib)


def move_cartridge(source_path: str | os.PathLike[str], barcode: str, destination_path: str | os.PathLike[str]) -> int:
    """Move the virtual cartridge ``barcode`` from a slot of one virtual library into the
    first empty import/export slot of another (an operator carrying a cartridge over).

    Both libraries are locked, in path order so two opposite moves cannot deadlock.
    The tape directory is renamed first, then the destination's inventory lists
    it, then the source's forgets it: a crash in between leaves the cartridge
    listed in both (the destination holds it), never in neither.

    :returns: the destination import/export slot.
    :raises ChangerError: the cartridge is in a drive or not in the source, the
        destination has the barcode already or no empty import/export slot.
    """
    source, destination = VirtualChanger(source_path), VirtualChanger(destination_path)
    if source.path.resolve() == destination.path.resolve():
        raise ChangerError(f"Cartridge {barcode} is already in library {source.name}: use `pytp move` within it.")
    first, second = sorted([source, destination], key=lambda c: str(c.path.resolve()))
    with first._locked() as lib_first, second._locked() as lib_second:
        src = source._settled(lib_first if first is source else lib_second)
        dst = destination._settled(lib_second if first is source else lib_first)
        slots = [number for number, held in src["slots"].items() if held == barcode]
        if not slots:
            where = "in a drive" if barcode in barcodes_in(source.path) else "not in it"
            raise ChangerError(
                f"Cartridge {barcode} of library {source.name} is {where}: only a cartridge in a slot can be moved"
                + (" (unload it first)." if where == "in a drive" else ".")
            )
        if (destination.path / "tapes" / barcode).exists():
            raise ChangerError(f"Library {destination.name} already has a tape {barcode}: barcodes must be unique.")
        ie = sorted(int(n) for n in dst.get("import_export") or [])
        free = [n for n in ie if dst["slots"].get(str(n)) is None]
        if not free:
            raise ChangerError(f"Library {destination.name} has no empty import/export slot: empty one first.")
        (destination.path / "tapes").mkdir(exist_ok=True)
        shutil.move(str(source.path / "tapes" / barcode), str(destination.path / "tapes" / barcode))
        dst["slots"][str(free[0])] = barcode
        destination._save(dst)
        src["slots"][slots[0]] = None
        source._save(src)
    return free[0]


def take_out(library_path: str | os.PathLike[str], slot: int) -> str:
    """An operator taking the cartridge out of import/export ``slot`` (to carry it to a vault).

    The tape's directory stays under ``tapes/`` but no slot lists it: it is
    outside the library until :func:`put_in` inserts it again.

    :returns: its barcode.
    :raises ChangerError: ``slot`` is not an import/export slot, or it is empty.
    """
    changer = VirtualChanger(library_path)
    with changer._locked() as lib:
        lib = changer._settled(lib)
        changer._check_slot(lib, slot)
        if slot not in (lib.get("import_export") or []):
            raise ChangerError(f"Slot {slot} of library {changer.name} is not an import/export slot.")
        barcode = lib["slots"][str(slot)]
        if barcode is None:
            raise ChangerError(f"Import/export slot {slot} of library {changer.name} is empty.")
        lib["slots"][str(slot)] = None
        changer._save(lib)
    return str(barcode)


def put_in(library_path: str | os.PathLike[str], barcode: str) -> int:
    """An operator inserting the cartridge ``barcode`` (outside the library, see :func:`take_out`)
    into the first empty import/export slot.

    :returns: that slot.
    :raises ChangerError: no such tape outside the library, or every mail slot is full.
    """
    changer = VirtualChanger(library_path)
    with changer._locked() as lib:
        lib = changer._settled(lib)
        if not (changer.path / "tapes" / barcode).is_dir():
            raise ChangerError(f"Library {changer.name} has no tape {barcode} (create one with add_tape).")
        if barcode in lib["slots"].values() or any(
            changer._barcode(t) == barcode
            for t in (loaded_tape(changer.path / rel) for rel in lib["drives"])
            if t is not None
        ):
            raise ChangerError(f"Cartridge {barcode} is already in library {changer.name}.")
        free = [n for n in sorted(lib.get("import_export") or []) if lib["slots"].get(str(n)) is None]
        if not free:
            raise ChangerError(f"Library {changer.name} has no empty import/export slot: empty one first.")
        lib["slots"][str(free[0])] = barcode
        changer._save(lib)
    return int(free[0])
