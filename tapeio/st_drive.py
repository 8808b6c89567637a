"""The Linux SCSI tape (``st``) backend, through the driver's own ioctls.

``StDrive`` does what ``mt`` does — ``MTIOCTOP`` for motion and settings,
``MTIOCGET`` for status — without parsing any program's text.  Data moves
with plain ``read``/``write`` on the file descriptor, in whole blocks of the
drive's fixed block size.

The pure parts — ioctl request numbers, ``struct mtget`` decoding, the errno
mapping — are in :mod:`.st_ioctl`.

Behaviour of the driver this module relies on (drivers/scsi/st.c):

* Only one handle may be open at a time (``EBUSY`` otherwise), so the drive
  keeps one handle for all operations and ``status`` reuses it.
* Opening without ``O_NONBLOCK`` waits up to two minutes for the drive to get
  ready and then fails with ``ENOMEDIUM`` when there is no tape; opening with
  ``O_NONBLOCK`` always succeeds and ``MTIOCGET`` then reports ``DR_OPEN``.
  So ``status`` uses a non-blocking handle, and data handles are only opened
  after such a probe found a tape.
* A write-protected tape refuses a blocking ``O_RDWR`` open with ``EROFS``;
  the handle is then opened read-only.
* Closing a handle that wrote data writes a filemark (``st_flush``), and
  ``rewind``/``bsf``/``offline`` after a write do too: ``close`` only closes.
* Reading past the last filemark returns 0 once, then ``EIO`` with ``EOD`` in
  ``MTIOCGET``: ``read`` gives ``b""`` once, then raises :class:`BlankTape`.
* A write that reaches the early-warning zone returns a short count (or
  ``ENOSPC``) and the status shows ``EOT``; the driver then turns that state
  into "end of data" so that filemarks and a few more blocks still fit, and
  ``EOT`` disappears from ``MTIOCGET``.  ``StDrive`` keeps reporting ``eom``
  until the tape is repositioned, as the virtual drive does.
* tgt's emulated drives have no READ POSITION/LOCATE: ``tell`` answers None
  and nothing else in pytp depends on ``tell``/``seek``.
* tgt answers a fixed-block READ at end of data with MEDIUM ERROR (MEDIUM
  FORMAT CORRUPTED) where a real drive sends BLANK CHECK, so st reports no
  ``EOD`` and the error looks like damage; a blank cartridge fails the same
  way at BOT.  When a read fails with ``EIO`` and the status does not say
  why, ``read`` asks the tape with one variable-block read, which tgt answers
  with BLANK CHECK at end of data (st then reports ``EOD`` or ``EOT``), and
  restores the block size: end of data becomes :class:`BlankTape`, anything
  else stays a :class:`MediumError`.
* tgt sends no residual count when a SPACE stops at end of data, so after
  ``MTEOM`` (st spaces 0x7fffff filemarks) st reports file number
  ``start + 0x7fffff``.  ``eod`` then counts the filemarks from BOT one by
  one and spaces to the last of them, so the file number is true again.
* ``MTIOCGET`` right after a read that stopped short at a filemark makes st
  step back over that filemark (``flush_buffer`` → ``cross_eof``, a SPACE of
  -1 filemarks).  Real drives land just before the filemark; tgt 1.0.85 lands
  one block earlier, so on tgt the next read returns the last block again
  (plain ``mt fsf 1; mt bsf 1; dd`` shows the same).  Avoid ``status()``
  between a short read and the ``b""`` read that follows it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType
from typing import TypeVar

from . import procinfo
from .drive import DriveStatus
from .errors import (
    BlockSizeError,
    DriveError,
    EndOfMedium,
    MediumError,
    NoMedium,
    TapeIOError,
    WriteProtected,
)
from .health import DriveHealth
from .st_ioctl import (
    ENOMEDIUM,
    MT_ST_BLKSIZE_MASK,
    MTBSF,
    MTBSFM,
    MTBSR,
    MTEOM,
    MTFSF,
    MTFSR,
    MTGET_SIZE,
    MTIOCGET,
    MTIOCTOP,
    MTOFFL,
    MTOP_FORMAT,
    MTRETEN,
    MTREW,
    MTSETBLK,
    MTWEOF,
    drive_status_from_mtget,
    is_rewinding_node,
    map_os_error,
    unpack_mtget,
)

_T = TypeVar("_T")

#: The SPACE and WRITE FILEMARKS commands carry a 24-bit signed count.
MAX_COUNT = 0x7FFFFF


# --- the drive ----------------------------------------------------------------------


def _held_by_this_process(path: str) -> bool:
    """True when one of our own descriptors is open on ``path`` (procinfo skips our pid)."""
    try:
        target = os.stat(path)
        for name in os.listdir("/proc/self/fd"):
            try:
                st = os.stat(f"/proc/self/fd/{name}")
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == target.st_rdev:
                return True
    except OSError:
        pass
    return False


def sg_device(device_path: str | os.PathLike[str], sysfs: str = "/sys/class/scsi_tape") -> str | None:
    """The ``/dev/sgN`` node of the drive at ``device_path`` (``/dev/nst0`` or a by-id link), or None.

    sysfs links each st device to its SCSI generic sibling:
    ``/sys/class/scsi_tape/nst0/device/scsi_generic/sg1``.
    """
    name = os.path.basename(os.path.realpath(device_path))
    try:
        generic = sorted(os.listdir(os.path.join(sysfs, name, "device", "scsi_generic")))
    except OSError:
        return None
    return f"/dev/{generic[0]}" if generic else None


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


class StDrive:
    """A tape drive on the Linux ``st`` driver.

    The device is opened on first use and kept open until :meth:`close` (or
    :meth:`offline`), so that no other program slips in between operations.

    :param device_path: the non-rewinding node, e.g. ``/dev/nst0``.
    :param name: the drive's name in the configuration, used in messages.
    """

    def __init__(self, device_path: str | os.PathLike[str], name: str) -> None:
        self.device_path = os.fspath(device_path)
        self.name = name
        self._fd: int | None = None
        #: errno that forced a read-only handle (EROFS: write-protected tape,
        #: EACCES: no write permission on the node), None for a read-write one.
        self._read_only: int | None = None
        #: Block size seen at the last status; None when unknown.
        self._block_size: int | None = None
        #: A write met end of medium and the tape has not moved since (see module doc).
        self._eom = False
        #: ``eod`` had to find end of data by counting filemarks; st does not know it is there.
        self._eod = False

    def __repr__(self) -> str:
        return f"StDrive({self.device_path!r}, {self.name!r})"

    def __enter__(self) -> StDrive:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def _label(self) -> str:
        return f"drive {self.name} ({self.device_path})"

    # -- opening -------------------------------------------------------------------

    def _check_node(self) -> None:
        """Refuse the rewinding node: every close would rewind and lose pytp's position."""
        try:
            info = os.stat(self.device_path)
        except OSError as err:
            raise map_os_error(err, device=self._label, operation="open") from err
        if stat.S_ISCHR(info.st_mode) and is_rewinding_node(info.st_rdev):
            raise DriveError(
                f"{self._label} is a rewinding node: the tape would rewind whenever it is closed. "
                "Use the non-rewinding node instead (/dev/nstN rather than /dev/stN)."
            )

    def _open_raw(self, flags: int, operation: str) -> int:
        self._check_node()
        try:
            return os.open(self.device_path, flags)
        except OSError as err:
            raise self._error(err, operation) from err

    def _probe(self) -> DriveStatus:
        """Status through a short-lived non-blocking handle, which answers with no tape."""
        fd = self._open_raw(os.O_RDONLY | os.O_NONBLOCK, "status")
        try:
            return self._mtget(fd)
        finally:
            _close_quietly(fd)

    def _ensure_open(self) -> int:
        """The data handle, opened read-write (read-only on a write-protected tape)."""
        if self._fd is not None:
            return self._fd
        probe = self._probe()
        if probe.door_open:
            # The driver already knows there is no tape; a blocking open would
            # wait two minutes for it before failing the same way.
            raise NoMedium(f"No tape in {self._label}. Load one (pytp load SLOT, or insert it by hand) and retry.")
        try:
            fd = os.open(self.device_path, os.O_RDWR)
            read_only = None
        except OSError as err:
            if err.errno not in (errno.EROFS, errno.EACCES):
                raise self._error(err, "open") from err
            try:
                fd = os.open(self.device_path, os.O_RDONLY)
            except OSError as err2:
                raise self._error(err2, "open") from err2
            read_only = err.errno
        self._fd, self._read_only = fd, read_only
        try:
            self._block_size = self._mtget(fd).block_size
        except TapeIOError:
            self._block_size = None
        return fd

    def _drop_fd(self) -> None:
        fd, self._fd = self._fd, None
        self._read_only = None
        if fd is not None:
            _close_quietly(fd)

    def _call(self, action: Callable[[int], _T]) -> _T:
        """Run ``action(fd)`` on the data handle.

        A handle opened before a changer load or unload keeps the driver's old
        view (``ENOMEDIUM``); it is reopened once before giving up.  OSErrors
        are left to the caller, which knows what it was doing.
        """
        held = self._fd is not None
        fd = self._ensure_open()
        try:
            return action(fd)
        except OSError as err:
            if not (held and err.errno == ENOMEDIUM):
                raise
        self._drop_fd()
        return action(self._ensure_open())

    # -- errors ----------------------------------------------------------------------

    def _context(self) -> DriveStatus | None:
        """The status right after an error, or None when it cannot be read."""
        try:
            if self._fd is not None:
                buf = bytearray(MTGET_SIZE)
                fcntl.ioctl(self._fd, MTIOCGET, buf, True)
                return drive_status_from_mtget(unpack_mtget(buf))
            fd = os.open(self.device_path, os.O_RDONLY | os.O_NONBLOCK)
            try:
                buf = bytearray(MTGET_SIZE)
                fcntl.ioctl(fd, MTIOCGET, buf, True)
                return drive_status_from_mtget(unpack_mtget(buf))
            finally:
                _close_quietly(fd)
        except OSError:
            return None

    def _error(
        self, err: OSError, operation: str, *, transfer: bool = False, argument: int | None = None
    ) -> TapeIOError:
        status = self._context() if err.errno == errno.EIO else None
        holders: list[tuple[int, str | None]] = []
        if err.errno == errno.EBUSY:
            holders = procinfo.find_holders(self.device_path)
            if not holders and _held_by_this_process(self.device_path):
                holders = [(os.getpid(), None)]
        return map_os_error(
            err,
            device=self._label,
            operation=operation,
            status=status,
            transfer=transfer,
            holders=holders,
            argument=argument,
        )

    # -- ioctls ------------------------------------------------------------------------

    def _mtget(self, fd: int) -> DriveStatus:
        buf = bytearray(MTGET_SIZE)
        try:
            fcntl.ioctl(fd, MTIOCGET, buf, True)
        except OSError as err:
            raise self._error(err, "status") from err
        return drive_status_from_mtget(unpack_mtget(buf))

    def _op(self, op: int, count: int, operation: str, *, limit: int = MAX_COUNT) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= limit:
            raise ValueError(f"{operation}: count must be an integer from 0 to {limit}, not {count!r}")
        if op not in (MTWEOF, MTSETBLK):
            self._eom = False  # the tape moves away from where end of medium was met
        if op != MTSETBLK:
            self._eod = False
        request = struct.pack(MTOP_FORMAT, op, count)
        try:
            self._call(lambda fd: fcntl.ioctl(fd, MTIOCTOP, request))
        except OSError as err:
            raise self._error(err, operation, argument=count) from err

    # -- the Drive protocol ----------------------------------------------------------

    def status(self) -> DriveStatus:
        """``MTIOCGET``: position, block size and status bits; works with no tape."""
        if self._fd is not None:
            status = self._mtget(self._fd)
            if status.online:
                self._block_size = status.block_size
                if self._eod:
                    status = replace(status, eod=True)
                return replace(status, eom=True) if self._eom else status
            # This handle may predate a load or unload; a fresh one re-reads the drive.
            self._drop_fd()
        status = self._probe()
        self._block_size = status.block_size if status.online else None
        return status

    def health(self) -> DriveHealth:
        """TapeAlert flags and error counters through ``sg_logs`` on the drive's SCSI generic node.

        The sg node (found in sysfs) answers while this or another program
        holds the st node; without one, the st node itself is asked, which
        the st driver refuses while it is held (then ``available`` is False).
        """
        from .sg_logs import read_drive_health

        generic = sg_device(self.device_path)
        if generic is None:
            self._check_node()  # sg_logs closing a rewinding node would rewind the tape
        return read_drive_health(generic or self.device_path)

    def capacity(self) -> int | None:
        """Unknown: the st ioctls do not report it (the MAM attributes would; later)."""
        return None

    def rewind(self) -> None:
        """Rewind to the beginning of tape (after a write, the driver first writes a filemark)."""
        self._op(MTREW, 1, "rewind")

    def fsf(self, count: int = 1) -> None:
        """Space forward over ``count`` filemarks: block 0 of file ``file + count``."""
        if count:
            self._op(MTFSF, count, "fsf")

    def bsf(self, count: int = 1) -> None:
        """Space back over ``count`` filemarks; ends before the filemark, block unknown."""
        if count:
            self._op(MTBSF, count, "bsf")

    def bsfm(self, count: int = 1) -> None:
        """``bsf(count)`` then ``fsf(1)``: the start of file ``file - count + 1``."""
        if count:
            self._op(MTBSFM, count, "bsfm")

    def fsr(self, count: int = 1) -> None:
        """Space forward ``count`` blocks within the current file."""
        if count:
            self._op(MTFSR, count, "fsr")

    def bsr(self, count: int = 1) -> None:
        """Space back ``count`` blocks within the current file."""
        if count:
            self._op(MTBSR, count, "bsr")

    def eod(self) -> None:
        """Go to end of data, ready to append a file."""
        self._op(MTEOM, 1, "eod")
        status = self.status()
        if status.file_number < MAX_COUNT:
            return
        # No residual count came back (tgt): st added the whole 0x7fffff it
        # asked for to the file number.  Count the filemarks from BOT instead.
        self._op(MTREW, 1, "eod")
        files = 0
        while files < MAX_COUNT:
            try:
                self._op(MTFSF, 1, "eod")
            except MediumError:
                break  # no further filemark: end of data
            files += 1
        self._op(MTREW, 1, "eod")
        if files:
            self._op(MTFSF, files, "eod")
        self._eod = True

    def weof(self, count: int = 1) -> None:
        """Write ``count`` filemarks."""
        if count:
            self._ensure_writable()
            self._op(MTWEOF, count, "weof")

    def set_block_size(self, size: int) -> None:
        """Fixed-block mode at ``size`` bytes (0 = variable), as ``mt setblk`` does."""
        self._op(MTSETBLK, size, "set_block_size", limit=MT_ST_BLKSIZE_MASK)
        self._block_size = None
        if self._fd is not None:
            self._block_size = self._mtget(self._fd).block_size

    def retension(self) -> None:
        """Wind the tape to the end and back (the original pytp's ``retension``)."""
        self._op(MTRETEN, 1, "retension")

    def offline(self) -> None:
        """Rewind and eject (``mt offline``), then let the handle go."""
        self._op(MTOFFL, 1, "offline")
        self._drop_fd()

    def read(self, size: int) -> bytes:
        """Read up to ``size`` bytes in whole blocks.

        Fewer bytes come back when a filemark follows, ``b""`` at the filemark
        itself (the tape is then after it) and once at end of data; reading on
        raises :class:`BlankTape` (tgt's drives raise it at once, without the
        ``b""``: their SSC emulation answers MEDIUM ERROR at end of data).

        :param size: a positive multiple of the block size.
        """
        self._check_size(size, "read")
        self._eod = False
        try:
            return self._call(lambda fd: os.read(fd, size))
        except OSError as err:
            if err.errno == errno.EIO and self._ask_for_end_of_data():
                raise map_os_error(
                    err,
                    device=self._label,
                    operation="read",
                    status=DriveStatus(online=True, eod=True),
                    transfer=True,
                    argument=size,
                ) from err
            raise self._error(err, "read", transfer=True, argument=size) from err

    def _ask_for_end_of_data(self) -> bool:
        """After a read failed with ``EIO`` for no reason st reports: is this end of data?

        tgt answers a fixed-block READ at end of data with MEDIUM ERROR; a
        variable-block READ there gets BLANK CHECK with the EOM bit, after
        which st reports ``EOD`` (right after a filemark) or ``EOT`` (see the
        module doc).  The block size is restored afterwards.  Where a block
        is read instead, the head is one block further on and the answer is
        no: the caller reports the original error.
        """
        fd = self._fd
        if fd is None:
            return False
        try:
            status = self._mtget(fd)
        except TapeIOError:
            return False
        block = status.block_size
        if not status.online or status.eod or status.bot or status.eom or not block:
            return False  # st knows what happened; map_os_error says it
        try:
            fcntl.ioctl(fd, MTIOCTOP, struct.pack(MTOP_FORMAT, MTSETBLK, 0))
        except OSError:
            return False
        answer = False
        try:
            try:
                os.read(fd, block)
            except OSError:
                pass
            # What came back does not tell: at end of data tgt sends no residual
            # count, so st may return a whole buffer of nothing.  The state does.
            try:
                after = self._mtget(fd)
            except TapeIOError:
                after = None
            answer = after is not None and not after.eof and (after.eod or after.eom)
        finally:
            try:
                fcntl.ioctl(fd, MTIOCTOP, struct.pack(MTOP_FORMAT, MTSETBLK, block))
            except OSError:
                self._block_size = None
        return answer

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` in whole blocks.

        At end of medium :class:`EndOfMedium` is raised; its ``bytes_written``
        attribute says how much of ``data`` reached the tape before it.

        :param data: a multiple of the block size.
        """
        view = memoryview(data).cast("B")
        total = len(view)
        if not total:
            return
        self._check_size(total, "write")
        self._ensure_writable()
        self._eod = False
        try:
            written = self._call(lambda fd: os.write(fd, view))
        except OSError as err:
            exc = self._error(err, "write", transfer=True, argument=total)
            if isinstance(exc, EndOfMedium):
                self._eom = True  # and nothing of this write reached the tape: bytes_written 0
            raise exc from err
        if written < total:
            # st_write returns a short count only when the early-warning zone cut
            # the request ("EOM within current request"); the rest is not on tape.
            self._eom = True
            raise EndOfMedium(
                f"The tape in {self._label} is full: end of medium reached after {written} of "
                f"{total} bytes of this write. Continue on another tape of the pool.",
                bytes_written=written,
            )

    def close(self) -> None:
        """Close the handle; after a write the driver itself writes the filemark."""
        fd, self._fd = self._fd, None
        self._read_only = None
        self._block_size = None
        self._eom = False
        self._eod = False
        if fd is None:
            return
        try:
            os.close(fd)  # the descriptor is released even when this fails
        except OSError as err:
            raise self._error(err, "close") from err

    # -- helpers ------------------------------------------------------------------------

    def _check_size(self, size: int, operation: str) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValueError(f"{operation}: size must be a positive number of bytes, not {size!r}")
        if self._block_size is None:
            self._ensure_open()  # learns the block size, so a partial block never reaches the tape
        block = self._block_size
        if block and size % block:
            raise BlockSizeError(
                f"A {operation} of {size} bytes on {self._label} is not a whole number of "
                f"{block}-byte blocks. Transfer whole blocks."
            )

    def _ensure_writable(self) -> None:
        self._ensure_open()
        if self._read_only == errno.EROFS:
            raise WriteProtected(
                f"The tape in {self._label} is write-protected. Move its write-protect tab to "
                "unlock it, or load another tape."
            )
        if self._read_only is not None:
            raise DriveError(
                f"{self._label} was opened read-only because this user may not write to the device. "
                "Run as root or add your user to the group that owns it (usually 'tape')."
            )
