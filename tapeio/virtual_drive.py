"""A file-backed tape drive that behaves like the Linux ``st`` driver (``/dev/nst0``).

It is pytp's embedded default and its test double, so it copies the driver's
rules rather than inventing friendlier ones: code that works here must work on
a real drive (the system tests run the shared contract on both).

On disk
-------
A **drive** is a directory holding ``state.json`` (the loaded tape, the
position, the block size setting, counters, the pid that has it open) and
``lock``, which an open :class:`VirtualDrive` holds with ``flock``.  The tape
in it is a directory of its own, one file per tape file, each implicitly
followed by a filemark: see :mod:`.virtual_tape`.

Position model
--------------
The drive keeps two positions, as a real one does: where the head *is*
(``head``, always known to the simulation) and what the driver *reports*
(``file``/``block``, -1 when the ``st`` driver would not know).  Reported
numbers follow ``st``: -1/-1 after a changer load or a crash, block -1 after
``bsf``, after an I/O error, after ``bsr`` crossed a filemark, after ``fsf``
ran into end of data, and after the first empty read at end of data.
Operations that would silently go wrong at an unknown place -- ``write``,
``weof``, ``fsr``, ``bsr`` -- refuse with :class:`PositionUnknown` ("rewind
first"); ``st`` would run them, but pytp must never write where it cannot say.

Where this model differs from ``st`` (documented, deliberate):

* After a data write, ``st`` writes the closing filemark only before close,
  rewind, offline, ``bsf`` and ``bsfm``.  Here it is also written before
  ``fsf``, ``eod``, ``retension`` and ``read``: a tape file here always ends
  with a filemark, so "data without a filemark" cannot be represented.  The
  outcomes pytp sees (an error on ``fsf``/``read`` at end of data) are those
  of ``st``.
* ``eod()`` reports ``(files, 0)``; ``st`` reports block -1 after ``MTEOM``
  on most drives (and tgt's emulation a meaningless file number).
* ``offline()`` rewinds and ejects: the tape stays in the drive, not ready
  (``online`` False, ``door_open`` True) until the changer unloads it or
  :func:`load_tape` puts the same tape back (what ``mt load`` does).
* A write fault writes the blocks before the bad one; a read fault returns
  nothing and leaves the head after the bad block with the block unknown.

Early warning and end of medium
-------------------------------
As ``st`` (its ``STps->eof`` states ``ST_EOM_OK`` and ``ST_EOD_1``) with a
drive that writes a whole request before it reports early warning, as LTO
drives and tgt do:

* The write that carries the data past the early-warning point is written
  whole and succeeds; ``status().eom`` is then set (``EOT``).
* The next write fails with :class:`EndOfMedium` and writes nothing
  (``ENOSPC``); the one after it is allowed again ("to enable writing a
  trailer"), so in the early-warning zone writes alternate between written
  and refused.
* Any successful movement or filemark (``weof``, ``eod``, ``fsf``, ``bsf``,
  ``fsr``, ``bsr``, ``rewind``) clears the state: the next write is written,
  and reports early warning again if it ends past the point.  So spacing to
  end of data in the zone does not re-arm a refusal: the first write there
  succeeds (this is what ``st`` does after ``MTEOM``, issue 8).
* Filemarks are always written, also in the early-warning zone.
* At the physical end a write takes the whole blocks that still fit and
  fails with :class:`EndOfMedium`, its ``bytes_written`` saying how many
  bytes went to tape; past it every write fails and writes nothing.

tgt differs from real drives here: its "early warning" is the cartridge's
size and there is no physical end (writes past it all succeed, each
reporting EOM), and WRITE FILEMARKS never reports EOM.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .drive import UNKNOWN, DriveStatus
from .errors import (
    BlankTape,
    BlockSizeError,
    ChangerError,
    DriveBusy,
    DriveNotReady,
    EndOfMedium,
    MediumError,
    NoMedium,
    PositionUnknown,
    TapeIOError,
    WriteProtected,
)
from .health import CLEANING_FLAGS, DriveHealth, ErrorCounters
from .pidlock import holder, try_lock
from .pidlock import unlock as _unlock_drive
from .procinfo import describe_holder
from .virtual_tape import (
    FORMAT_VERSION,
    TAPE_META,
    LoadedTape,
    read_json,
    read_tape_meta,
    set_health_faults,
    tape_barcode,
    write_json,
)

DRIVE_STATE = "state.json"
LOCK_FILE = "lock"

# The read mark says what the last forward movement crossed, as st's
# ``STps->eof`` does: right after a filemark, a read at end of data returns
# b"" once (st's ST_FM -> ST_EOD_2); once end of data has been reported,
# reads fail (ST_EOD).
_MARK_NONE = "none"
_MARK_FILEMARK = "filemark"
_MARK_EOD = "eod"

# The early-warning state, as st's ``STps->eof`` after writes: the last write
# ended past the early-warning point (``ST_EOM_OK``: the next write gets
# ENOSPC), or a write was just refused (``ST_EOD_1``: the next one may go).
_EW_NONE = "none"
_EW_REPORTED = "reported"
_EW_ALLOW = "allow"


@dataclass
class DriveCounters:
    """What a drive has done, summed over its life (``state.json``).

    Movement counters count operations (one ``fsf(3)`` is one ``fsf``), not
    the filemarks or blocks spaced over; ``bsfm`` counts as one ``bsf`` and
    one ``fsf``, the two commands ``st`` sends for it.
    """

    blocks_read: int = 0
    bytes_read: int = 0
    blocks_written: int = 0
    bytes_written: int = 0
    filemarks_written: int = 0
    fsf: int = 0
    bsf: int = 0
    fsr: int = 0
    bsr: int = 0
    rewinds: int = 0
    retensions: int = 0
    loads: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> DriveCounters:
        """Build from ``state.json``'s ``counters``; unknown keys are ignored."""
        data = data or {}
        return cls(**{f.name: int(data.get(f.name, 0)) for f in fields(cls)})


# --------------------------------------------------------------------------
# creating and inspecting drives


def _initial_state() -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "tape": None,
        "ready": False,
        "file": UNKNOWN,
        "block": UNKNOWN,
        "head": [0, 0],
        "mark": _MARK_NONE,
        "block_size": 0,
        "counters": asdict(DriveCounters()),
        "open_pid": None,
    }


def create_virtual_drive(path: str | os.PathLike[str]) -> Path:
    """Create an empty virtual drive directory (no tape, variable-block mode).

    :param path: the drive directory; created if missing.
    :returns: the drive directory.
    """
    drive = Path(path)
    if (drive / DRIVE_STATE).exists():
        raise TapeIOError(f"A virtual drive already exists at {drive}: use it, or choose another path.")
    drive.mkdir(parents=True, exist_ok=True)
    write_json(drive / DRIVE_STATE, _initial_state())
    (drive / LOCK_FILE).touch()
    return drive


def _read_state(drive: Path) -> dict[str, Any]:
    state = read_json(drive / DRIVE_STATE, "virtual drive")
    for key, value in _initial_state().items():
        state.setdefault(key, value)
    return state


def _resolve_tape(drive: Path, stored: str | None) -> Path | None:
    """State stores the tape relative to the drive, so a library can be moved as a whole."""
    if stored is None:
        return None
    return (drive / stored).resolve()


def read_counters(drive_path: str | os.PathLike[str]) -> DriveCounters:
    """The counters of a drive, read without opening it.

    While another process has the drive open, the read and write counters
    lag behind until its next positioning operation or close.
    """
    return DriveCounters.from_dict(_read_state(Path(drive_path)).get("counters"))


def configure_drive(
    drive_path: str | os.PathLike[str],
    *,
    tapealert: list[int] | None = None,
    error_counters: dict[str, dict[str, int]] | None = None,
    not_ready_for: float | None = None,
    serial: str | None = None,
) -> None:
    """Inject the drive's own TapeAlert flags or error counts (``state.json`` ``faults``).

    ``not_ready_for``: after each load the drive reports "not ready" (``online``
    False, door closed) for this many seconds, as a real drive does while it
    threads and calibrates a cartridge (a new LTO-9 cartridge: up to two hours);
    0 turns it off.  pytp's wait for it is ``tapeio.ready.wait_until_ready``.
    ``serial``: the drive's serial number (``drive_serial``), as a real drive's
    Unit Serial Number page gives it; pytp matches drives to library elements by it.

    The keys are those of a tape's faults (:mod:`.virtual_tape`); these are
    the drive's, reported with or without a tape (20, Clean now, belongs here).
    An open drive keeps the state it read: configure it while it is closed.
    """
    drive = Path(drive_path)
    state = _read_state(drive)
    set_health_faults(state.setdefault("faults", {}), tapealert, error_counters)
    if not_ready_for is not None:
        state["faults"]["not_ready_for"] = float(not_ready_for)
    if serial is not None:
        state["serial"] = serial
    write_json(drive / DRIVE_STATE, state)


def drive_serial(drive_path: str | os.PathLike[str]) -> str | None:
    """The virtual drive's serial number (``configure_drive(serial=...)``), None if it has none."""
    try:
        serial = _read_state(Path(drive_path)).get("serial")
    except TapeIOError:
        return None
    return str(serial) if serial else None


def clear_cleaning_request(drive_path: str | os.PathLike[str]) -> None:
    """A cleaning cartridge was loaded: drop TapeAlert 20/21 (clean now/periodic) from the drive's faults."""
    drive = Path(drive_path)
    state = _read_state(drive)
    faults = state.get("faults") or {}
    flags = faults.get("tapealert") or []
    if any(n in CLEANING_FLAGS for n in flags):
        faults["tapealert"] = [n for n in flags if n not in CLEANING_FLAGS]
        write_json(drive / DRIVE_STATE, state)


def _health(state: dict[str, Any], tape: Path | None, counters: DriveCounters) -> DriveHealth:
    """The health the drive reports: its faults and the loaded tape's, with its byte counters."""
    blocks = [state.get("faults") or {}]
    if tape is not None:
        try:
            blocks.append(read_tape_meta(tape).get("faults") or {})
        except TapeIOError:
            pass  # a tape that cannot be read reports no health of its own
    flags = sorted({int(n) for block in blocks for n in block.get("tapealert") or ()})

    def direction(name: str, processed: int) -> ErrorCounters:
        counts = [(block.get("error_counters") or {}).get(name) or {} for block in blocks]
        return ErrorCounters(
            corrected=sum(int(c.get("corrected", 0)) for c in counts),
            uncorrected=sum(int(c.get("uncorrected", 0)) for c in counts),
            bytes_processed=processed,
        )

    return DriveHealth(
        tapealert=tuple(flags),
        write=direction("write", counters.bytes_written),
        read=direction("read", counters.bytes_read),
    )


def read_health(drive_path: str | os.PathLike[str]) -> DriveHealth:
    """The health of a drive, read without opening it (so also while another process uses it)."""
    drive = Path(drive_path)
    state = _read_state(drive)
    return _health(state, _resolve_tape(drive, state.get("tape")), DriveCounters.from_dict(state.get("counters")))


def loaded_tape(drive_path: str | os.PathLike[str]) -> Path | None:
    """The tape directory in a drive (loaded or ejected), None if it is empty."""
    drive = Path(drive_path)
    return _resolve_tape(drive, _read_state(drive).get("tape"))


# --------------------------------------------------------------------------
# the drive lock


def _busy_message(name: str, pid: int | None) -> str:
    if pid == os.getpid():
        return (
            f"Drive {name} is already open in this process ({describe_holder(pid)}): "
            "close it before opening it again or moving its tape."
        )
    return f"Drive {name} is in use by {describe_holder(pid)}: wait for it to finish or stop it."


def _lock_drive(drive: Path, name: str) -> int:
    """Take the drive's lock without waiting, or raise :class:`DriveBusy` naming the holder.

    ``flock`` belongs to the open file description, so a second open in the
    same process conflicts too, exactly like a second ``open("/dev/nst0")``
    that st refuses with EBUSY.
    """
    if not (drive / DRIVE_STATE).exists():
        raise TapeIOError(
            f"No virtual drive at {drive}: create one with create_virtual_drive() "
            "or check the drive's path in the configuration."
        )
    fd = try_lock(drive / LOCK_FILE)
    if fd is None:
        raise DriveBusy(_busy_message(name, holder(drive / LOCK_FILE)))
    return fd


def load_tape(drive_path: str | os.PathLike[str], tape_path: str | os.PathLike[str]) -> None:
    """Put a tape into a drive, as a changer's robot does.

    The drive then reports its position as unknown (-1/-1), as st does after a
    changer load: rewind before use.  Putting back the tape that ``offline``
    ejected makes it ready again, like ``mt load``.

    :raises DriveBusy: another process (or this one) has the drive open.
    :raises ChangerError: the drive already holds another tape.
    """
    drive = Path(drive_path)
    tape = Path(tape_path).resolve()
    if not (tape / TAPE_META).exists():
        raise TapeIOError(f"{tape} is not a virtual tape (no {TAPE_META}): create it with create_virtual_tape().")
    fd = _lock_drive(drive, str(drive))
    try:
        state = _read_state(drive)
        current = _resolve_tape(drive, state["tape"])
        if current is not None and not (current == tape and not state["ready"]):
            raise ChangerError(f"Drive {drive} already holds tape {_barcode_or_path(current)}: unload it first.")
        counters = DriveCounters.from_dict(state["counters"])
        counters.loads += 1
        delay = float((state.get("faults") or {}).get("not_ready_for") or 0)
        state.update(
            # wall-clock: another process (the one that opens the drive) compares it
            ready_at=time.time() + delay if delay > 0 else None,
            tape=os.path.relpath(tape, drive.resolve()),
            ready=True,
            file=UNKNOWN,
            block=UNKNOWN,
            head=[0, 0],  # a loaded cartridge sits at BOT; only the driver does not know
            mark=_MARK_NONE,
            counters=asdict(counters),
        )
        write_json(drive / DRIVE_STATE, state)
    finally:
        _unlock_drive(fd)


def unload_tape(drive_path: str | os.PathLike[str]) -> Path:
    """Take the tape out of a drive, as a changer's robot does.

    :returns: the tape directory that was in the drive.
    :raises DriveBusy: another process (or this one) has the drive open.
    :raises NoMedium: the drive is empty.
    """
    drive = Path(drive_path)
    fd = _lock_drive(drive, str(drive))
    try:
        state = _read_state(drive)
        tape = _resolve_tape(drive, state["tape"])
        if tape is None:
            raise NoMedium(f"Drive {drive} is empty: there is no tape to unload.")
        state.update(tape=None, ready=False, file=UNKNOWN, block=UNKNOWN, head=[0, 0], mark=_MARK_NONE)
        write_json(drive / DRIVE_STATE, state)
        return tape
    finally:
        _unlock_drive(fd)


def _barcode_or_path(tape: Path) -> str:
    try:
        return tape_barcode(tape)
    except TapeIOError:
        return str(tape)


# --------------------------------------------------------------------------
# the drive


class VirtualDrive:
    """An open virtual tape drive; see the module docstring for its rules.

    :param path: the drive directory (made by :func:`create_virtual_drive`).
    :param name: the name used in messages; defaults to the path.
    :raises DriveBusy: another process, or another open in this one, holds it.
    """

    def __init__(self, path: str | os.PathLike[str], name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or str(self.path)
        self._closed = True
        self._lock_fd = _lock_drive(self.path, self.name)
        try:
            self._open()
        except BaseException:
            _unlock_drive(self._lock_fd)
            raise
        self._closed = False

    def _open(self) -> None:
        state = _read_state(self.path)
        self._state = state
        self._block_size = int(state["block_size"])
        self._counters = DriveCounters.from_dict(state["counters"])
        self._file = int(state["file"])
        self._block = int(state["block"])
        self._head_file, self._head_block = (int(x) for x in state["head"])
        self._mark = str(state["mark"])
        self._pending_filemark = False
        self._ew = _EW_NONE
        self._eom_sticky = False  # as StDrive: eom shown after EndOfMedium until the tape moves
        self._tape_path = _resolve_tape(self.path, state["tape"])
        self._ready = bool(state["ready"]) and self._tape_path is not None
        self._tape: LoadedTape | None = None
        if self._ready:
            assert self._tape_path is not None
            self._tape = LoadedTape(self._tape_path)
        crashed = state.get("open_pid") is not None
        if crashed:
            # We got the lock, so whoever recorded open_pid is gone without
            # closing: its last blocks were never persisted as a position.
            self._file = self._block = UNKNOWN
            self._mark = _MARK_NONE
        self._clamp_head()
        state["open_pid"] = os.getpid()  # cleared by close; still set after a crash
        self._persist()

    # -- context manager and closing -------------------------------------

    def __enter__(self) -> VirtualDrive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Write the pending filemark (as nst does after a write), save the state, unlock.

        Closing twice is harmless.
        """
        if self._closed:
            return
        try:
            if self._tape is not None:
                self._flush_filemark()
        finally:
            self._closed = True
            self._state["open_pid"] = None
            try:
                self._persist()
            finally:
                if self._tape is not None:
                    self._tape.close()
                _unlock_drive(self._lock_fd)

    # -- state -------------------------------------------------------------

    def _clamp_head(self) -> None:
        """Keep a persisted head inside the tape (files may have been cut since)."""
        if self._tape is None:
            self._head_file = self._head_block = 0
            return
        files = self._tape.files
        if self._head_file >= files:
            self._head_file, self._head_block = files, 0
        else:
            self._head_block = min(max(self._head_block, 0), self._tape.blocks(self._head_file))

    def _persist(self) -> None:
        """Save position, settings and counters to ``state.json``."""
        self._state.update(
            ready=self._ready,
            file=self._file,
            block=self._block,
            head=[self._head_file, self._head_block],
            mark=self._mark,
            block_size=self._block_size,
            counters=asdict(self._counters),
        )
        write_json(self.path / DRIVE_STATE, self._state)

    def capacity(self) -> int | None:
        """The loaded tape's capacity from its ``tape.json``."""
        return self._tape.capacity if self._tape is not None else None

    def health(self) -> DriveHealth:
        """TapeAlert flags and error counters from the drive's and the loaded tape's fault configuration."""
        self._check_open()
        return _health(self._state, self._tape_path, self._counters)

    @property
    def counters(self) -> DriveCounters:
        """A snapshot of the counters, including unsaved reads and writes."""
        return DriveCounters(**asdict(self._counters))

    @property
    def tape_path(self) -> Path | None:
        """The loaded (or ejected) tape's directory."""
        return self._tape_path

    # -- preconditions -----------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise TapeIOError(f"Drive {self.name} is closed: open it again.")

    def _becoming_ready(self) -> bool:
        """Still "loading" after a load (the ``not_ready_for`` fault)."""
        ready_at = self._state.get("ready_at")
        return ready_at is not None and time.time() < float(ready_at)

    def _require_tape(self) -> LoadedTape:
        self._check_open()
        if self._tape is not None and self._becoming_ready():
            raise DriveNotReady(f"Drive {self.name} is not ready yet: the tape is still loading.")
        if self._tape is None:
            if self._tape_path is not None:
                raise NoMedium(
                    f"The tape in drive {self.name} is ejected (offline): unload it with "
                    "`pytp unload`, or load it again."
                )
            raise NoMedium(f"No tape in drive {self.name}: load one with `pytp load SLOT`.")
        return self._tape

    def _require_fixed(self) -> int:
        if self._block_size <= 0:
            raise BlockSizeError(
                f"Drive {self.name} is in variable-block mode; the virtual drive supports only "
                "fixed blocks: set a block size first (`pytp init`)."
            )
        return self._block_size

    def _require_position(self, operation: str) -> None:
        if self._file == UNKNOWN or self._block == UNKNOWN:
            raise PositionUnknown(
                f"Drive {self.name} does not know its position "
                f"(file {self._file}, block {self._block}), so it will not {operation}: "
                "rewind first (or go to end of data to append)."
            )

    def _require_writable(self, tape: LoadedTape) -> None:
        if tape.write_protected:
            raise WriteProtected(
                f"Tape {tape.barcode} in drive {self.name} is write-protected: use another "
                "tape, or clear its protection if it may be overwritten."
            )

    @staticmethod
    def _check_count(count: int) -> None:
        if count < 0:
            raise ValueError(f"Count must be 0 or more, not {count}.")

    # -- movement helpers --------------------------------------------------

    def _set(self, head_file: int, head_block: int, file_no: int, block_no: int, mark: str) -> None:
        self._head_file, self._head_block = head_file, head_block
        self._file, self._block = file_no, block_no
        self._mark = mark

    def _flush_filemark(self) -> bool:
        """Write the filemark owed after a data write; True if one was written."""
        if not self._pending_filemark:
            return False
        self._write_filemarks(1)
        return True

    def _write_filemarks(self, count: int) -> None:
        tape = self._tape
        assert tape is not None
        f, b = self._head_file, self._head_block
        tape.cut(f, b * (tape.block_size or 0))
        for extra in range(1, count):
            tape.create_empty(f + extra)
        self._set(
            f + count,
            0,
            self._file + count if self._file != UNKNOWN else UNKNOWN,
            0,
            _MARK_NONE,
        )
        self._counters.filemarks_written += count
        self._pending_filemark = False

    def _moved(self) -> None:
        """The tape moved: st's early-warning state is cleared (``chg_eof``)."""
        self._ew = _EW_NONE
        self._eom_sticky = False

    def _rewind(self) -> None:
        self._flush_filemark()
        self._set(0, 0, 0, 0, _MARK_NONE)
        self._moved()

    # -- Drive protocol ----------------------------------------------------

    def status(self) -> DriveStatus:
        """What ``MTIOCGET`` would say; flags follow st's rules (EOF = block 0 of a file > 0).

        ``eom`` is set after a write that ended past the early-warning point
        (st's ``EOT``), and after a refused write until the tape next moves
        (as :class:`~.st_drive.StDrive` reports it); ``eod`` is also set after
        a refused write, as st reports ``ST_EOD_1``.
        """
        self._check_open()
        tape = self._tape
        if tape is None:
            return DriveStatus(online=False, block_size=self._block_size, door_open=True)
        if self._becoming_ready():
            return DriveStatus(online=False, block_size=self._block_size)
        return DriveStatus(
            online=True,
            file_number=self._file,
            block_number=self._block,
            block_size=self._block_size,
            bot=self._file == 0 and self._block == 0,
            eof=self._block == 0 and self._file != 0,
            eod=self._mark == _MARK_EOD or self._ew == _EW_ALLOW,
            eom=self._ew == _EW_REPORTED or self._eom_sticky,
            write_protected=tape.write_protected,
        )

    def set_block_size(self, size: int) -> None:
        """Set the block size (0 = variable); it persists, like st's setting."""
        self._require_tape()
        if size < 0:
            raise BlockSizeError(f"Block size must be 0 (variable) or positive, not {size}.")
        self._block_size = size
        self._persist()

    def rewind(self) -> None:
        """Go to the beginning of tape (writing the filemark owed after a write)."""
        self._require_tape()
        self._rewind()
        self._counters.rewinds += 1
        self._persist()

    def retension(self) -> None:
        """Wind to the end and back; for a virtual tape, a rewind counted as a retension."""
        self._require_tape()
        self._rewind()
        self._counters.retensions += 1
        self._persist()

    def offline(self) -> None:
        """Rewind and eject: the tape stays in the drive but is not ready (``online`` False)."""
        self._require_tape()
        self._rewind()
        assert self._tape is not None
        self._tape.close()
        self._tape = None
        self._ready = False
        self._set(0, 0, UNKNOWN, UNKNOWN, _MARK_NONE)
        self._persist()

    def eod(self) -> None:
        """Go to end of data, where the next write appends file ``files``."""
        tape = self._require_tape()
        self._flush_filemark()
        self._moved()
        self._set(tape.files, 0, tape.files, 0, _MARK_EOD)
        self._persist()

    def fsf(self, count: int = 1) -> None:
        """Space forward over ``count`` filemarks to block 0 of file ``file + count``.

        :raises MediumError: end of data came first; the head is at end of data
            and the block number unknown, as st reports.
        """
        tape = self._require_tape()
        self._check_count(count)
        self._flush_filemark()
        if count == 0:
            return
        self._moved()
        self._counters.fsf += 1
        f = self._head_file
        known = self._file != UNKNOWN
        if f + count > tape.files:
            crossed = tape.files - f
            self._set(tape.files, 0, self._file + crossed if known else UNKNOWN, UNKNOWN, _MARK_EOD)
            self._persist()
            raise MediumError(
                f"Drive {self.name}: end of data after {crossed} of {count} filemarks "
                f"(the tape has {tape.files} files). Rewind or go to end of data."
            )
        self._set(f + count, 0, self._file + count if known else UNKNOWN, 0, _MARK_FILEMARK)
        self._persist()

    def bsf(self, count: int = 1) -> None:
        """Space back over ``count`` filemarks; ends before the last one, block unknown.

        :raises MediumError: the beginning of tape came first; the tape is at BOT.
        """
        tape = self._require_tape()
        self._check_count(count)
        # st writes the owed filemark and then spaces over it too (count + 1).
        if self._flush_filemark():
            count += 1
        if count == 0:
            return
        self._moved()
        self._counters.bsf += 1
        f = self._head_file
        known = self._file != UNKNOWN
        if count > f:
            self._set(0, 0, 0 if known else UNKNOWN, 0, _MARK_NONE)
            self._persist()
            raise MediumError(
                f"Drive {self.name}: beginning of tape after {f} of {count} filemarks; the tape is at BOT."
            )
        target = f - count
        self._set(target, tape.blocks(target), self._file - count if known else UNKNOWN, UNKNOWN, _MARK_NONE)
        self._persist()

    def bsfm(self, count: int = 1) -> None:
        """``bsf(count)`` then ``fsf(1)``: the start of file ``file - count + 1``."""
        self.bsf(count)
        self.fsf(1)

    def fsr(self, count: int = 1) -> None:
        """Space forward ``count`` blocks inside the current file.

        :raises MediumError: a filemark came first; the tape is after it, at
            block 0 of the next file.
        """
        tape = self._require_tape()
        self._check_count(count)
        self._require_position("space over blocks")
        self._pending_filemark = False  # st stops owing the filemark on any spacing
        self._moved()
        self._counters.fsr += 1
        f, b = self._head_file, self._head_block
        if f >= tape.files:
            self._mark = _MARK_EOD
            self._persist()
            raise MediumError(f"Drive {self.name}: end of data, there are no blocks to space over.")
        blocks = tape.blocks(f)
        if b + count <= blocks:
            self._set(f, b + count, self._file, self._block + count, _MARK_NONE)
            self._persist()
            return
        self._set(f + 1, 0, self._file + 1, 0, _MARK_FILEMARK)
        self._persist()
        raise MediumError(
            f"Drive {self.name}: filemark reached after {blocks - b} of {count} blocks; "
            f"the tape is at the start of file {f + 1}."
        )

    def bsr(self, count: int = 1) -> None:
        """Space back ``count`` blocks inside the current file.

        :raises MediumError: the start of the file came first; the tape is on
            the near side of the filemark before it (block unknown, as st
            reports), or at BOT in file 0.
        """
        tape = self._require_tape()
        self._check_count(count)
        self._require_position("space over blocks")
        self._pending_filemark = False
        self._moved()
        self._counters.bsr += 1
        f, b = self._head_file, self._head_block
        if count <= b:
            self._set(f, b - count, self._file, self._block - count, _MARK_NONE)
            self._persist()
            return
        if f == 0:
            self._set(0, 0, 0, 0, _MARK_NONE)
            self._persist()
            raise MediumError(f"Drive {self.name}: beginning of tape after {b} of {count} blocks.")
        self._set(f - 1, tape.blocks(f - 1), self._file - 1, UNKNOWN, _MARK_NONE)
        self._persist()
        raise MediumError(
            f"Drive {self.name}: filemark reached after {b} of {count} blocks; the tape is at the end of file {f - 1}."
        )

    def weof(self, count: int = 1) -> None:
        """Write ``count`` filemarks here; what followed on the tape is gone.

        Filemarks are allowed past the early-warning point, so a job that hit
        end of medium can still close its file.
        """
        tape = self._require_tape()
        self._check_count(count)
        self._require_writable(tape)
        if count == 0:
            self._pending_filemark = False  # st: WEOF 0 flushes, and close owes nothing
            return
        self._require_position("write filemarks")
        self._write_filemarks(count)
        self._ew = _EW_NONE  # st: a filemark written (also at EOM) clears ST_EOM_OK
        self._persist()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Write whole blocks at the current position, which becomes the end of data.

        :raises BlockSizeError: variable mode, a partial block, or a tape
            written at another block size.
        :raises EndOfMedium: the previous write reported early warning (st's
            ENOSPC; nothing was written, the next write may go), or the
            physical end came first (``bytes_written``: the whole blocks that
            fit were written).  A write that ends past the early-warning point
            succeeds and sets ``status().eom``; see the module docstring.
        :raises MediumError: an injected write fault; the blocks before it
            were written.
        """
        tape = self._require_tape()
        size = self._require_fixed()
        view = memoryview(data).cast("B")
        if len(view) == 0:
            return
        if len(view) % size:
            raise BlockSizeError(
                f"Drive {self.name}: a write of {len(view)} bytes is not a whole number of "
                f"{size}-byte blocks. Pad the data to the block size."
            )
        self._require_position("write")
        self._require_writable(tape)
        f, b = self._head_file, self._head_block
        offset = b * (tape.block_size or size)
        kept = tape.kept_bytes(f, offset)
        if kept and tape.block_size not in (None, size):
            raise BlockSizeError(
                f"Tape {tape.barcode} holds {tape.block_size}-byte blocks but drive {self.name} "
                f"is set to {size}: set the block size to {tape.block_size}, or rewrite the "
                "tape from its start."
            )
        if self._ew == _EW_REPORTED:
            # st_write: the write after the one that reported early warning
            # gets ENOSPC and writes nothing; the next one may go (ST_EOD_1).
            self._ew = _EW_ALLOW
            raise self._full(tape, kept, len(view), "early-warning point", 0)
        room = max(tape.physical_end - kept, 0) // size * size
        if room == 0:
            self._ew = _EW_REPORTED
            raise self._full(tape, kept, len(view), "physical end", 0)
        if room < len(view):
            # The physical end: the blocks that fit are written (a short count).
            self._write_at(tape, f, b, offset, view[:room], size)
            self._ew = _EW_REPORTED
            raise self._full(tape, kept, len(view), "physical end", room)
        self._write_at(tape, f, b, offset, view, size)
        # A drive reports early warning with the write that ends past the point.
        past = kept + len(view) > tape.threshold
        self._ew = _EW_REPORTED if past or self._ew == _EW_ALLOW else _EW_NONE

    def _full(self, tape: LoadedTape, kept: int, size: int, where: str, written: int) -> EndOfMedium:
        self._eom_sticky = True  # reported until the tape moves, as StDrive does
        return EndOfMedium(
            f"Tape {tape.barcode} is full: {size} more bytes would pass its {where} "
            f"({kept} of {tape.capacity} bytes used). Write a filemark and continue "
            "on another tape.",
            bytes_written=written,  # as StDrive: what reached tape
        )

    def _write_at(self, tape: LoadedTape, f: int, b: int, offset: int, view: memoryview, size: int) -> None:
        """Write ``view`` (whole blocks) at block ``b`` of file ``f``, honouring injected faults."""
        count = len(view) // size
        bad = tape.first_fault(tape.write_faults, f, b, count)
        tape.cut(f, offset)
        if tape.block_size != size:
            tape.set_block_size(size)  # the tape's first block: record its size
        good = count if bad is None else bad - b
        if good:
            tape.pwrite(f, offset, view[: good * size])
        self._head_block = b + good
        self._block += good
        self._mark = _MARK_NONE
        self._pending_filemark = True
        self._counters.blocks_written += good
        self._counters.bytes_written += good * size
        if bad is not None:
            self._block = UNKNOWN  # st: "Too cautious?" -- position lost after a write error
            raise MediumError(
                f"I/O error at file {f} block {bad} writing tape {tape.barcode} in drive "
                f"{self.name}: the tape may be damaged; continue on another tape."
            )

    def read(self, size: int) -> bytes:
        """Read up to ``size`` bytes (whole blocks) from the current tape file.

        Returns fewer bytes when the file ends first, ``b""`` at its filemark
        (and the tape is then at block 0 of the next file), and ``b""`` once at
        end of data right after a filemark.

        :raises BlankTape: at end of data (a second time, or not after a filemark).
        :raises BlockSizeError: the tape was written at another block size.
        :raises MediumError: an injected read fault in the blocks asked for.
        """
        tape = self._require_tape()
        block_size = self._require_fixed()
        if size < 0 or size % block_size:
            raise BlockSizeError(
                f"Drive {self.name}: a read of {size} bytes is not a whole number of {block_size}-byte blocks."
            )
        if size == 0:
            return b""
        self._flush_filemark()
        f, b = self._head_file, self._head_block
        if f >= tape.files:
            if self._mark == _MARK_FILEMARK:
                # st returns 0 once for the first blank check after a filemark
                # and forgets the block number.
                self._mark = _MARK_EOD
                self._block = UNKNOWN
                return b""
            self._block = UNKNOWN
            raise BlankTape(
                f"Drive {self.name}: no data at file {f} of tape {tape.barcode} (end of data). "
                "Rewind, or position on a data file."
            )
        blocks = tape.blocks(f)
        if b >= blocks:
            self._set(f + 1, 0, self._file + 1 if self._file != UNKNOWN else UNKNOWN, 0, _MARK_FILEMARK)
            return b""
        if tape.block_size != block_size:
            raise BlockSizeError(
                f"Tape {tape.barcode} was written with {tape.block_size}-byte blocks but drive "
                f"{self.name} is set to {block_size}: set the block size to {tape.block_size}."
            )
        count = min(size // block_size, blocks - b)
        bad = tape.first_fault(tape.read_faults, f, b, count)
        if bad is not None:
            good = bad - b
            self._counters.blocks_read += good
            self._counters.bytes_read += good * block_size
            self._set(f, bad + 1, self._file, UNKNOWN, _MARK_NONE)
            raise MediumError(
                f"I/O error at file {f} block {bad} reading tape {tape.barcode} in drive "
                f"{self.name}: the block is unreadable; try another copy of the data."
            )
        data = tape.pread(f, b * block_size, count * block_size)
        self._head_block = b + count
        if self._block != UNKNOWN:
            self._block += count
        self._mark = _MARK_NONE
        self._counters.blocks_read += count
        self._counters.bytes_read += count * block_size
        return data
