"""The pure half of the ``st`` backend: <linux/mtio.h> in Python, and what its answers mean.

Nothing here touches a device, so all of it is tested without a tape drive
(tests/tapeio/test_st_ioctl.py):

* the ioctl request numbers (``MTIOCTOP``, ``MTIOCGET``, ``MTIOCPOS``), built
  as the kernel's ``_IOC`` macros build them on this architecture, with the
  ``mt_op`` codes and the ``mt_gstat`` status bits;
* packing and unpacking ``struct mtget`` (:class:`MtGet`) and decoding it into
  a :class:`DriveStatus`;
* telling the rewinding node (``/dev/stN``) from ``/dev/nstN`` by device number;
* mapping the driver's errno values to pytp errors (:func:`map_os_error`).

:class:`.st_drive.StDrive` does the I/O with them.
"""

from __future__ import annotations

import errno
import os
import platform
import struct
from collections.abc import Sequence
from dataclasses import dataclass

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
        return "another program (none visible in /proc to this user; 'fuser -v DEVICE' as root shows it)"
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
            f"{device} is not a SCSI tape device (it does not answer tape ioctls). Use the drive's /dev/nstN node."
        )
    if code == errno.ENOSPC:
        return EndOfMedium(
            f"The tape in {device} is full: end of medium reached during {operation}. "
            "Continue on another tape of the pool."
        )
    if code == errno.EROFS or (code == errno.EACCES and writing):
        return WriteProtected(
            f"The tape in {device} is write-protected. Move its write-protect tab to unlock it, or load another tape."
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
