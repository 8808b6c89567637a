"""The Linux SCSI tape (``st``) backend, through the driver's own ioctls.

``StDrive`` does what ``mt`` does — ``MTIOCTOP`` for motion and settings,
``MTIOCGET`` for status, ``MTIOCPOS`` for ``tell`` — without parsing any
program's text.  Data moves with plain ``read``/``write`` on the file
descriptor, in whole blocks of the drive's fixed block size.

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
import platform
import stat
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TypeVar

from . import procinfo
from .drive import UNKNOWN, DriveStatus
from .errors import (
    BlankTape,
    BlockSizeError,
    DriveBusy,
    DriveError,
    EndOfMedium,
    MediumError,
    NoMedium,
    TapeIOError,
    WriteProtected,
)

_T = TypeVar("_T")

#: Linux's "No medium found"; other platforms' errno modules lack it.
ENOMEDIUM: int = getattr(errno, "ENOMEDIUM", 123)

# --- ioctl request numbers ------------------------------------------------------
#
# Python has no binding for <linux/mtio.h>, so the request numbers are built the
# way the kernel's _IOW/_IOR macros build them: direction, argument size, type
# character and number packed into one integer.  The size is sizeof(struct …)
# on *this* ABI — struct mtget is 48 bytes on 64-bit Linux and 28 on 32-bit,
# because it is made of C longs — so it is taken from struct.calcsize of the
# native ("@") layout rather than hard-coded.  tests/tapeio/test_st_ioctl.py
# compiles a C program against the real headers and compares.


@dataclass(frozen=True)
class IocLayout:
    """How an architecture packs ``_IOC(dir, type, nr, size)`` (asm/ioctl.h)."""

    size_bits: int
    dir_bits: int
    none: int
    write: int
    read: int
    nr_bits: int = 8
    type_bits: int = 8


#: asm-generic/ioctl.h: x86, arm, arm64, riscv, s390, loongarch ...
GENERIC_IOC = IocLayout(size_bits=14, dir_bits=2, none=0, write=1, read=2)
#: arch/{powerpc,mips,sparc,alpha}/include/uapi/asm/ioctl.h
THREE_BIT_DIR_IOC = IocLayout(size_bits=13, dir_bits=3, none=1, write=4, read=2)
#: arch/parisc/include/uapi/asm/ioctl.h swaps the read and write bits.
PARISC_IOC = IocLayout(size_bits=14, dir_bits=2, none=0, write=2, read=1)


def ioc_layout(machine: str | None = None) -> IocLayout:
    """The ioctl encoding of ``machine`` (``platform.machine()`` by default)."""
    machine = (machine or platform.machine()).lower()
    if machine.startswith(("ppc", "powerpc", "mips", "sparc", "alpha")):
        return THREE_BIT_DIR_IOC
    if machine.startswith("parisc"):
        return PARISC_IOC
    return GENERIC_IOC


def ioc(direction: int, type_char: str, number: int, size: int, layout: IocLayout | None = None) -> int:
    """``_IOC(dir, type, nr, size)`` from the kernel headers.

    :param direction: ``layout.write``, ``layout.read`` or ``layout.none``.
    :param type_char: the ioctl family character (``"m"`` for magnetic tape).
    :param number: the request number within the family.
    :param size: sizeof the argument structure.
    """
    lay = layout or ioc_layout()
    if size >= 1 << lay.size_bits:
        raise ValueError(f"ioctl argument of {size} bytes does not fit {lay.size_bits} size bits")
    nr_shift = 0
    type_shift = nr_shift + lay.nr_bits
    size_shift = type_shift + lay.type_bits
    dir_shift = size_shift + lay.size_bits
    return (direction << dir_shift) | (size << size_shift) | (ord(type_char) << type_shift) | (number << nr_shift)


#: struct mtop { short mt_op; int mt_count; }
MTOP_FORMAT = "@hi"
#: struct mtget { long mt_type, mt_resid, mt_dsreg, mt_gstat, mt_erreg;
#:                __kernel_daddr_t mt_fileno, mt_blkno; }  (daddr_t is int)
MTGET_FORMAT = "@lllllii"
#: struct mtpos { long mt_blkno; }
MTPOS_FORMAT = "@l"

MTOP_SIZE = struct.calcsize(MTOP_FORMAT)
MTGET_SIZE = struct.calcsize(MTGET_FORMAT)
MTPOS_SIZE = struct.calcsize(MTPOS_FORMAT)

_LAYOUT = ioc_layout()
MTIOCTOP = ioc(_LAYOUT.write, "m", 1, MTOP_SIZE, _LAYOUT)
MTIOCGET = ioc(_LAYOUT.read, "m", 2, MTGET_SIZE, _LAYOUT)
MTIOCPOS = ioc(_LAYOUT.read, "m", 3, MTPOS_SIZE, _LAYOUT)

# mt_op values (linux/mtio.h)
MTFSF = 1
MTBSF = 2
MTFSR = 3
MTBSR = 4
MTWEOF = 5
MTREW = 6
MTOFFL = 7
MTNOP = 8
MTRETEN = 9
MTBSFM = 10
MTEOM = 12
MTSETBLK = 20
MTSEEK = 22

# mt_gstat bits (GMT_* in linux/mtio.h), named as mt-st prints them.
GMT_EOF = 0x80000000
GMT_BOT = 0x40000000
GMT_EOT = 0x20000000
GMT_SM = 0x10000000
GMT_EOD = 0x08000000
GMT_WR_PROT = 0x04000000
GMT_ONLINE = 0x01000000
GMT_D_6250 = 0x00800000
GMT_D_1600 = 0x00400000
GMT_D_800 = 0x00200000
GMT_DR_OPEN = 0x00040000
GMT_IM_REP_EN = 0x00010000
GMT_CLN = 0x00008000

#: In mt-st's order, which is also the order of the bits.
GSTAT_NAMES: tuple[tuple[int, str], ...] = (
    (GMT_EOF, "EOF"),
    (GMT_BOT, "BOT"),
    (GMT_EOT, "EOT"),
    (GMT_SM, "SM"),
    (GMT_EOD, "EOD"),
    (GMT_WR_PROT, "WR_PROT"),
    (GMT_ONLINE, "ONLINE"),
    (GMT_D_6250, "D_6250"),
    (GMT_D_1600, "D_1600"),
    (GMT_D_800, "D_800"),
    (GMT_DR_OPEN, "DR_OPEN"),
    (GMT_IM_REP_EN, "IM_REP_EN"),
    (GMT_CLN, "CLN"),
)

MT_ST_BLKSIZE_MASK = 0xFFFFFF
MT_ST_DENSITY_SHIFT = 24
MT_ST_SOFTERR_MASK = 0xFFFF

#: The SPACE and WRITE FILEMARKS commands carry a 24-bit signed count.
MAX_COUNT = 0x7FFFFF

#: drivers/scsi/st.c: minor bit 0x80 selects the non-rewinding node (nst).
SCSI_TAPE_MAJOR = 9
_NO_REWIND_BIT = 0x80


# --- pure decoding ----------------------------------------------------------------


@dataclass(frozen=True)
class MtGet:
    """The raw ``struct mtget`` (values as the kernel filled them)."""

    type: int
    resid: int
    dsreg: int
    gstat: int
    erreg: int
    fileno: int
    blkno: int

    @property
    def block_size(self) -> int:
        """Fixed block size in bytes, 0 for variable-block mode (from ``mt_dsreg``)."""
        return self.dsreg & MT_ST_BLKSIZE_MASK

    @property
    def density(self) -> int:
        """The SCSI density code (``mt_dsreg`` top byte)."""
        return (self.dsreg & 0xFFFFFFFF) >> MT_ST_DENSITY_SHIFT

    @property
    def soft_errors(self) -> int:
        """Recovered errors since the last status call (``mt_erreg`` low 16 bits)."""
        return self.erreg & MT_ST_SOFTERR_MASK

    @property
    def partition(self) -> int:
        """st reports the active partition in ``mt_resid``."""
        return self.resid


def pack_mtget(value: MtGet) -> bytes:
    """The bytes the kernel would write for ``value`` (for tests and fakes)."""
    gstat = value.gstat
    if MTGET_SIZE == 28 and gstat & 0x80000000:  # 32-bit long: the EOF bit is the sign
        gstat -= 1 << 32
    return struct.pack(
        MTGET_FORMAT, value.type, value.resid, value.dsreg, gstat, value.erreg, value.fileno, value.blkno
    )


def unpack_mtget(raw: bytes | bytearray | memoryview) -> MtGet:
    """Decode the buffer ``MTIOCGET`` filled.

    :param raw: exactly ``MTGET_SIZE`` bytes.
    """
    mt_type, resid, dsreg, gstat, erreg, fileno, blkno = struct.unpack(MTGET_FORMAT, bytes(raw))
    # A C long holding bit 31 is negative on 32-bit Linux; the bits are what matter.
    return MtGet(mt_type, resid, dsreg & 0xFFFFFFFF, gstat & 0xFFFFFFFF, erreg, fileno, blkno)


def gstat_flags(gstat: int) -> list[str]:
    """The names of the bits set in ``mt_gstat``, as ``mt status`` lists them."""
    return [name for bit, name in GSTAT_NAMES if gstat & bit]


def drive_status_from_mtget(value: MtGet) -> DriveStatus:
    """The :class:`DriveStatus` an ``MTIOCGET`` result describes.

    File and block numbers stay -1 when the driver does not know them (after
    a changer load, after ``bsf``, after an error).
    """
    gstat = value.gstat
    return DriveStatus(
        online=bool(gstat & GMT_ONLINE),
        file_number=value.fileno if value.fileno >= 0 else UNKNOWN,
        block_number=value.blkno if value.blkno >= 0 else UNKNOWN,
        block_size=value.block_size,
        bot=bool(gstat & GMT_BOT),
        eof=bool(gstat & GMT_EOF),
        eod=bool(gstat & GMT_EOD),
        eom=bool(gstat & GMT_EOT),
        write_protected=bool(gstat & GMT_WR_PROT),
        door_open=bool(gstat & GMT_DR_OPEN),
    )


def is_rewinding_node(rdev: int) -> bool | None:
    """True for an auto-rewinding st node (``/dev/st0``), False for ``/dev/nst0``.

    None when ``rdev`` is not a SCSI tape device number at all.

    :param rdev: ``os.stat(path).st_rdev``.
    """
    if os.major(rdev) != SCSI_TAPE_MAJOR:
        return None
    return (os.minor(rdev) & _NO_REWIND_BIT) == 0


# --- errno mapping ----------------------------------------------------------------

#: Operations that move the tape by filemarks or blocks.
POSITIONING = frozenset({"fsf", "bsf", "bsfm", "fsr", "bsr", "eod"})
#: Operations that put something on the tape.
WRITING = frozenset({"write", "weof", "close"})


def _holders_text(holders: Sequence[tuple[int, str | None]]) -> str:
    if not holders:
        return ("another program (none visible in /proc to this user; "
                "'fuser -v DEVICE' as root shows it)")
    return ", ".join(f"pid {pid} ({cmd})" if cmd else f"pid {pid}" for pid, cmd in holders)


def map_os_error(
    err: OSError,
    *,
    device: str,
    operation: str,
    status: DriveStatus | None = None,
    transfer: bool = False,
    holders: Sequence[tuple[int, str | None]] = (),
    argument: int | None = None,
) -> TapeIOError:
    """The pytp error for an ``OSError`` the st driver returned.

    :param err: the error from ``open``/``ioctl``/``read``/``write``/``close``.
    :param device: how to name the drive in the message (``"drive lto1 (/dev/nst0)"``).
    :param operation: what was attempted: ``"open"``, ``"read"``, ``"write"``,
        ``"fsf"``, ``"set_block_size"``, ... (see ``POSITIONING``, ``WRITING``).
    :param status: the drive's status right after the error, when it could be read;
        it tells an empty drive from a medium error and end of data from damage.
    :param transfer: the error came from a data ``read`` or ``write``.
    :param holders: the processes holding the device, for ``EBUSY``.
    :param argument: the operation's count or size, for the message.
    """
    code = err.errno
    writing = operation in WRITING
    what = f"{operation} {argument}" if argument is not None else operation

    if code == errno.EBUSY:
        if any(pid == os.getpid() for pid, _ in holders):
            return DriveBusy(
                f"{device} is busy: this program (pid {os.getpid()}) already has it open through "
                "another handle. Close that handle first; st admits one opener at a time."
            )
        return DriveBusy(
            f"{device} is busy: it is held by {_holders_text(holders)}. "
            "Wait for that program to finish (or stop it), then retry."
        )
    if code == ENOMEDIUM:
        return NoMedium(f"No tape in {device}. Load one (pytp load SLOT, or insert it by hand) and retry.")
    if code == errno.ENOENT:
        return DriveError(
            f"{device} does not exist. Check PYTP_DEV or the drive's device in the configuration "
            "('lsscsi -g' lists tape drives as 'tape'; use the non-rewinding /dev/nstN node)."
        )
    if code in (errno.ENXIO, errno.ENODEV):
        return DriveError(
            f"{device} is not available (no such device or address): the st driver is not "
            "attached or the drive went away. Check 'lsscsi -g' and 'dmesg', then retry."
        )
    if code == errno.ENOTTY:
        return DriveError(
            f"{device} is not a SCSI tape device (it does not answer tape ioctls). "
            "Use the drive's /dev/nstN node."
        )
    if code == errno.ENOSPC:
        return EndOfMedium(
            f"The tape in {device} is full: end of medium reached during {operation}. "
            "Continue on another tape of the pool."
        )
    if code == errno.EROFS or (code == errno.EACCES and writing):
        return WriteProtected(
            f"The tape in {device} is write-protected. Move its write-protect tab to unlock it, "
            "or load another tape."
        )
    if code in (errno.EACCES, errno.EPERM):
        return DriveError(
            f"No permission to use {device}. Run as root or add your user to the group that "
            "owns the device (usually 'tape')."
        )
    if transfer and code == errno.EINVAL:
        return BlockSizeError(
            f"{device} refused a {operation} of {argument if argument is not None else 'this many'} bytes: "
            "it is not a whole number of blocks of the drive's block size. Set the drive to the "
            "configured block size (pytp does this before each job; by hand: mt setblk N) and retry."
        )
    if transfer and code == errno.ENOMEM:
        return BlockSizeError(
            f"A block on the tape in {device} is larger than the {argument or ''} bytes read: the tape "
            "was written with a larger block size. Read it with its own block size."
        )
    if code == errno.EINVAL and operation == "set_block_size":
        return BlockSizeError(
            f"{device} refused block size {argument}: outside the drive's limits "
            "('tapeinfo' shows MinBlock/MaxBlock). Configure a block size the drive accepts."
        )
    if code == errno.EIO:
        if status is not None and not status.online:
            return NoMedium(
                f"{device} is not ready: no tape, or the tape is still loading. "
                "Load a tape (or wait for it to finish loading) and retry."
            )
        if operation == "seek":
            return DriveError(
                f"{device} could not seek to block {argument}: the drive may not support LOCATE "
                "(tgt's emulated drives do not). Position with rewind and fsf instead."
            )
        if operation in POSITIONING and status is not None and status.eod:
            # A MediumError like any failed SPACE: tgt answers the same command
            # with MEDIUM ERROR instead of BLANK CHECK, and both become EIO.
            return MediumError(
                f"{what} on {device} ran into the end of data: the tape holds fewer "
                "files or blocks than asked for. Check the position against the catalog."
            )
        if operation in ("fsr", "bsr") and status is not None and status.eof:
            return DriveError(
                f"{what} on {device} stopped at a filemark: the tape file has fewer blocks than asked for."
            )
        if transfer and not writing and status is not None and status.eod:
            return BlankTape(
                f"No more data on the tape in {device}: end of data reached. "
                "Check the tape file number against the catalog."
            )
        if transfer and not writing and status is not None and status.bot:
            return BlankTape(
                f"The tape in {device} has no data at its beginning (blank tape?). "
                "Label it first (pytp label) or load the right tape."
            )
        if writing:
            return MediumError(
                f"Write error on {device} during {operation}. The tape may be damaged or the drive "
                "may need cleaning: clean it, then retry with another tape ('dmesg' shows the SCSI sense)."
            )
        return MediumError(
            f"I/O error on {device} during {what}. The tape may be damaged or the drive may need "
            "cleaning; 'dmesg' shows the SCSI sense. Clean the drive and retry."
        )
    if code == errno.EINVAL:
        return DriveError(f"{device} rejected {what} as invalid.")
    if code in (errno.ENOSYS, errno.EOPNOTSUPP):
        return DriveError(f"{device} does not support {operation}.")
    name = errno.errorcode.get(code or 0, str(code))
    return DriveError(f"{what} on {device} failed: {err.strerror or err} ({name}).")


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
                self._eom = True
                exc.bytes_written = 0  # type: ignore[attr-defined]
            raise exc from err
        if written < total:
            # st_write returns a short count only when the early-warning zone cut
            # the request ("EOM within current request"); the rest is not on tape.
            self._eom = True
            exc = EndOfMedium(
                f"The tape in {self._label} is full: end of medium reached after {written} of "
                f"{total} bytes of this write. Continue on another tape of the pool."
            )
            exc.bytes_written = written  # type: ignore[attr-defined]
            raise exc

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

    # -- position (where the drive supports it) -------------------------------------

    def tell(self) -> int | None:
        """The drive's block address (``MTIOCPOS``, READ POSITION), None if unsupported."""
        buf = bytearray(MTPOS_SIZE)
        try:
            self._call(lambda fd: fcntl.ioctl(fd, MTIOCPOS, buf, True))
        except OSError as err:
            if err.errno in (errno.EIO, errno.EINVAL, errno.ENOSYS, errno.ENOTTY, errno.EOPNOTSUPP):
                return None
            raise self._error(err, "tell") from err
        (block,) = struct.unpack(MTPOS_FORMAT, bytes(buf))
        return int(block) & 0xFFFFFFFF

    def seek(self, block: int) -> None:
        """Locate to block address ``block`` (``MTSEEK``); file and block numbers become unknown."""
        self._op(MTSEEK, block, "seek", limit=0x7FFFFFFF)

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
