"""The on-disk virtual tape that :mod:`.virtual_drive` reads and writes.

A **tape** is a directory::

    tape.json     barcode, capacity, early_warning, write_protected,
                  block_size (null until the first block is written), faults
    file-00000    the blocks of tape file 0, nothing else
    file-00001    ...

Every ``file-NNNNN`` is implicitly followed by a filemark; after the last one
is end of data (EOD).  Because a file holds exactly the blocks written to it,
GNU tar reads a data file directly: ``tar -tf TAPE/file-00001``.

Faults (``tape.json`` → ``faults``, set with :func:`configure_tape`) are
injected by configuration, never by mocks; the drive reads them when it is
opened:

``read_errors`` / ``write_errors``
    ``[[file, block], ...]``: reading or writing that block fails with
    :class:`MediumError` (a write writes the blocks before it).
``end_of_medium_at``
    a byte count: the tape's data ends there, whatever ``capacity`` says,
    and there is no early-warning zone before it -- the write that reaches it
    takes the whole blocks that fit and fails with :class:`EndOfMedium`.
    This is the drive whose early warning comes too late to matter, which
    spanning must survive (issue 8).
``tapealert``
    ``[4, ...]``: TapeAlert flags (1-64, see :mod:`.health`) the drive reports
    while this tape is loaded -- media flags such as 4 (Media) or 7 (Media
    life).  Drive flags such as 20 (Clean now) go in the drive's own
    ``state.json`` ``faults``, the same keys, set with
    :func:`.virtual_drive.configure_drive`; the drive reports both.
``error_counters``
    ``{"write": {"corrected": N, "uncorrected": N}, "read": {...}}``: added to
    the drive's error counter pages (0x02/0x03) while this tape is loaded;
    bytes processed are the drive's real byte counters.

Here tapes are created, inspected and configured (write protection, injected
faults), and :class:`LoadedTape` is the drive's handle on a loaded
tape: its files' sizes, reads and writes at byte offsets, cuts, and faults.
Positions, filemarks and the ``st`` driver's rules belong to the drive.
"""

from __future__ import annotations

import bisect
import json
import os
from pathlib import Path
from typing import Any

from .atomicfile import write_atomically
from .errors import MediumError, TapeIOError

FORMAT_VERSION = 1
TAPE_META = "tape.json"
MiB = 1024 * 1024


# --------------------------------------------------------------------------
# small file helpers


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically, so readers without the lock never see half a file."""
    write_atomically(path, json.dumps(data, indent=2) + "\n", durable=False)


def read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise TapeIOError(f"No {what} at {path.parent}: {path.name} is missing.") from err
    except (OSError, ValueError) as err:
        raise TapeIOError(f"Cannot read {path}: {err}. Repair or recreate the {what}.") from err
    if not isinstance(data, dict):
        raise TapeIOError(f"{path} is not a {what} description. Repair or recreate it.")
    return data


def tape_file_path(tape_path: str | os.PathLike[str], number: int) -> Path:
    """The file holding tape file ``number`` of a virtual tape (``file-00001``)."""
    return Path(tape_path) / f"file-{number:05d}"


def default_early_warning(capacity: int) -> int:
    """Early-warning zone for ``capacity`` bytes: 2 % up to 32 MiB.

    Tiny test tapes still get a zone of a few blocks (up to 64 KiB, at most a
    quarter of the tape), so "end of medium before the tape is full" holds.
    """
    zone = min(capacity // 50, 32 * MiB)
    return max(zone, min(capacity // 4, 64 * 1024))


# --------------------------------------------------------------------------
# creating and inspecting tapes


def create_virtual_tape(
    path: str | os.PathLike[str],
    barcode: str,
    capacity: int,
    early_warning: int | None = None,
) -> Path:
    """Create a blank virtual tape directory.

    :param path: the tape directory; created, or empty if it exists.
    :param barcode: the cartridge's barcode (its volume tag), e.g. ``PYT001L9``.
    :param capacity: data bytes the tape holds.
    :param early_warning: size of the early-warning zone before the end;
        writes that would end inside it fail with :class:`EndOfMedium`.
        Default: :func:`default_early_warning`.
    :returns: the tape directory.
    """
    if not barcode or "/" in barcode or barcode.strip() != barcode:
        raise ValueError(f"Invalid barcode {barcode!r}: use letters and digits, e.g. PYT001L9.")
    if capacity <= 0:
        raise ValueError(f"Tape capacity must be positive, not {capacity}.")
    if early_warning is None:
        early_warning = default_early_warning(capacity)
    if not 0 <= early_warning < capacity:
        raise ValueError(f"Early warning {early_warning} must be at least 0 and below the capacity {capacity}.")
    tape = Path(path)
    if tape.exists() and any(tape.iterdir()):
        raise TapeIOError(
            f"Cannot create a virtual tape at {tape}: the directory is not empty. Choose another path or remove it."
        )
    tape.mkdir(parents=True, exist_ok=True)
    write_json(
        tape / TAPE_META,
        {
            "format": FORMAT_VERSION,
            "barcode": barcode,
            "capacity": capacity,
            "early_warning": early_warning,
            "write_protected": False,
            "block_size": None,
            "faults": {"read_errors": [], "write_errors": []},
        },
    )
    return tape


def read_tape_meta(tape_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``tape.json`` of a virtual tape."""
    return read_json(Path(tape_path) / TAPE_META, "virtual tape")


def tape_barcode(tape_path: str | os.PathLike[str]) -> str:
    """The barcode of a virtual tape."""
    return str(read_tape_meta(tape_path)["barcode"])


def configure_tape(
    tape_path: str | os.PathLike[str],
    *,
    write_protected: bool | None = None,
    read_errors: list[tuple[int, int]] | None = None,
    write_errors: list[tuple[int, int]] | None = None,
    end_of_medium_at: int | None = None,
    tapealert: list[int] | None = None,
    error_counters: dict[str, dict[str, int]] | None = None,
) -> None:
    """Set a tape's write protection or injected faults (None leaves a setting alone).

    ``read_errors``/``write_errors`` are ``(file, block)`` pairs: reading or
    writing that block raises :class:`MediumError`.  ``end_of_medium_at`` is a
    byte count: the tape ends there, whatever its capacity, with no
    early-warning zone (0 removes the fault).  This is fault injection by
    configuration, like borg's failing chunker; a drive reads it when it is
    opened.
    """
    path = Path(tape_path) / TAPE_META
    meta = read_json(path, "virtual tape")
    if write_protected is not None:
        meta["write_protected"] = bool(write_protected)
    faults = meta.setdefault("faults", {})
    if read_errors is not None:
        faults["read_errors"] = [[int(f), int(b)] for f, b in read_errors]
    if write_errors is not None:
        faults["write_errors"] = [[int(f), int(b)] for f, b in write_errors]
    if end_of_medium_at is not None:
        if end_of_medium_at < 0:
            raise ValueError(f"end_of_medium_at must be 0 (none) or a byte count, not {end_of_medium_at}.")
        if end_of_medium_at:
            faults["end_of_medium_at"] = int(end_of_medium_at)
        else:
            faults.pop("end_of_medium_at", None)
    set_health_faults(faults, tapealert, error_counters)
    write_json(path, meta)


def set_health_faults(
    faults: dict[str, Any], tapealert: list[int] | None, error_counters: dict[str, dict[str, int]] | None
) -> None:
    """Check and store ``tapealert``/``error_counters`` in a ``faults`` block (tape or drive)."""
    if tapealert is not None:
        numbers = sorted({int(n) for n in tapealert})
        if any(not 1 <= n <= 64 for n in numbers):
            raise ValueError(f"TapeAlert flags are numbers from 1 to 64, not {tapealert}.")
        faults["tapealert"] = numbers
    if error_counters is not None:
        checked: dict[str, dict[str, int]] = {}
        for direction, counts in error_counters.items():
            if direction not in ("write", "read") or not set(counts) <= {"corrected", "uncorrected"}:
                raise ValueError(
                    'error_counters are {"write"|"read": {"corrected"|"uncorrected": N}}, '
                    f"not {error_counters}."
                )
            if any(int(v) < 0 for v in counts.values()):
                raise ValueError(f"Error counts cannot be negative: {error_counters}.")
            checked[direction] = {k: int(v) for k, v in counts.items()}
        faults["error_counters"] = checked


# --------------------------------------------------------------------------
# the tape as the drive sees it


class LoadedTape:
    """A loaded virtual tape: its metadata, its files' sizes, its faults.

    Sizes are kept in memory so that writes and reads cost one system call
    each; one descriptor for reading and one for writing stay open on the
    files in use (not one per file: a catalog rebuild visits thousands).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_dir():
            raise MediumError(f"Virtual tape {path} is missing: restore the directory, or unload the tape.")
        self.meta = read_tape_meta(path)
        self.barcode = str(self.meta.get("barcode", path.name))
        self.capacity = int(self.meta["capacity"])
        self.early_warning = int(self.meta.get("early_warning") or 0)
        self.write_protected = bool(self.meta.get("write_protected", False))
        faults = self.meta.get("faults") or {}
        self.read_faults = self._fault_index(faults.get("read_errors"))
        self.write_faults = self._fault_index(faults.get("write_errors"))
        # An injected end of medium: the tape ends at this byte of data, with
        # no early-warning zone before it (real zones are small and not
        # guaranteed), whatever its nominal capacity says.
        eom_at = faults.get("end_of_medium_at")
        self.physical_end = self.capacity if eom_at is None else min(self.capacity, int(eom_at))
        self.sizes = self._scan()
        self.used = sum(self.sizes)
        self._fds: dict[bool, tuple[int, int]] = {}  # writable -> (file number, fd)

    @staticmethod
    def _fault_index(pairs: list[list[int]] | None) -> dict[int, list[int]]:
        index: dict[int, list[int]] = {}
        for file_number, block in pairs or []:
            index.setdefault(int(file_number), []).append(int(block))
        return {f: sorted(blocks) for f, blocks in index.items()}

    def _scan(self) -> list[int]:
        numbers = sorted(
            int(p.name[5:]) for p in self.path.iterdir() if p.name.startswith("file-") and p.name[5:].isdigit()
        )
        if numbers != list(range(len(numbers))):
            missing = sorted(set(range(max(numbers) + 1)) - set(numbers))
            raise MediumError(
                f"Virtual tape {self.barcode} ({self.path}) is damaged: tape file(s) "
                f"{missing} are missing. Restore them, or rewrite the tape from its start."
            )
        return [tape_file_path(self.path, n).stat().st_size for n in numbers]

    @property
    def files(self) -> int:
        return len(self.sizes)

    @property
    def block_size(self) -> int | None:
        value = self.meta.get("block_size")
        return int(value) if value else None

    @property
    def threshold(self) -> int:
        """Bytes of data the tape takes before its early-warning point."""
        return min(self.capacity - self.early_warning, self.physical_end)

    def blocks(self, number: int) -> int:
        """Whole blocks in tape file ``number`` (a torn trailing block does not count)."""
        size = self.block_size
        return self.sizes[number] // size if size else 0

    def first_fault(self, faults: dict[int, list[int]], number: int, start: int, count: int) -> int | None:
        """The first faulty block in ``[start, start + count)`` of file ``number``."""
        blocks = faults.get(number)
        if not blocks:
            return None
        i = bisect.bisect_left(blocks, start)
        if i < len(blocks) and blocks[i] < start + count:
            return blocks[i]
        return None

    def kept_bytes(self, number: int, offset: int) -> int:
        """Bytes left on tape if everything from byte ``offset`` of file ``number`` on is cut."""
        if number >= self.files:
            return self.used
        return sum(self.sizes[:number]) + min(self.sizes[number], offset)

    def cut(self, number: int, offset: int) -> None:
        """Make file ``number`` end at byte ``offset`` and drop every later file.

        This is what writing does on a real tape: the new data (or filemark)
        becomes the new end of data, and what followed is unreachable.  At
        end of data it creates file ``number``.
        """
        if number == self.files - 1 and self.sizes[number] == offset:
            return  # appending to the last file: nothing to cut (the fast path)
        for later in range(self.files - 1, number, -1):
            self._forget(later)
            tape_file_path(self.path, later).unlink()
        del self.sizes[number + 1 :]
        if number < self.files:
            os.truncate(tape_file_path(self.path, number), offset)
            self.sizes[number] = offset
        else:
            tape_file_path(self.path, number).touch()
            self.sizes.append(0)
        self.used = sum(self.sizes)

    def create_empty(self, number: int) -> None:
        """Append an empty tape file (between two filemarks)."""
        assert number == self.files
        tape_file_path(self.path, number).touch()
        self.sizes.append(0)

    def set_block_size(self, size: int) -> None:
        self.meta["block_size"] = size
        write_json(self.path / TAPE_META, self.meta)

    def _fd(self, number: int, writable: bool) -> int:
        cached = self._fds.get(writable)
        if cached is not None:
            if cached[0] == number:
                return cached[1]
            os.close(cached[1])
            del self._fds[writable]
        flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC
        fd = os.open(tape_file_path(self.path, number), flags)
        self._fds[writable] = (number, fd)
        return fd

    def _forget(self, number: int) -> None:
        """Drop descriptors on file ``number``: after an unlink they name a dead inode."""
        for writable, (cached, fd) in list(self._fds.items()):
            if cached == number:
                os.close(fd)
                del self._fds[writable]

    def pwrite(self, number: int, offset: int, data: memoryview) -> None:
        fd = self._fd(number, writable=True)
        done = 0
        while done < len(data):  # os.pwrite may write less than asked
            done += os.pwrite(fd, data[done:], offset + done)
        self.sizes[number] = max(self.sizes[number], offset + len(data))
        self.used += len(data)

    def pread(self, number: int, offset: int, size: int) -> bytes:
        return os.pread(self._fd(number, writable=False), size, offset)

    def close(self) -> None:
        for _, fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
