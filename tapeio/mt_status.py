"""Pure parsers for what ``mt status`` prints (mt-st and GNU cpio's mt).

pytp itself reads the drive through ioctls (``st_drive``); these parsers exist
so the system tests can run the real ``mt`` in the guest and check that
``StDrive.status()`` agrees with it, and so that an ``mt`` error line can be
compared with the error pytp raised for the same condition.

mt-st (Debian's ``mt``)::

    SCSI 2 tape drive:
    File number=1, block number=0, partition=0.
    Tape block size 524288 bytes. Density code 0x5a (LTO-6).
    Soft error count since last status=0
    General status bits on (81010000):
     EOF ONLINE IM_REP_EN

GNU mt (from cpio) prints the raw ``struct mtget`` fields instead, without the
status bits::

    drive type = 114
    drive status = 1577058304      <- mt_dsreg: density << 24 | block size
    sense key error = 0
    residue count = 0
    file number = 1
    block number = 0
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass

from .drive import UNKNOWN, DriveStatus
from .errors import TapeIOError
from .st_ioctl import ENOMEDIUM, GSTAT_NAMES, MT_ST_BLKSIZE_MASK, MT_ST_DENSITY_SHIFT, map_os_error

MT_ST = "mt-st"
GNU = "gnu"

_TYPE = re.compile(r"^(?P<type>.+?) tape drive:\s*$", re.MULTILINE)
_POSITION = re.compile(
    r"File number\s*=\s*(?P<file>-?\d+),\s*block number\s*=\s*(?P<block>-?\d+)"
    r"(?:,\s*partition\s*=\s*(?P<partition>-?\d+))?",
    re.IGNORECASE,
)
_BLOCK = re.compile(
    r"Tape block size\s+(?P<size>\d+)\s+bytes\.\s*Density code\s+(?P<density>0x[0-9a-fA-F]+|\d+)"
    r"(?:\s*\((?P<name>[^)]*)\))?",
    re.IGNORECASE,
)
_SOFT = re.compile(r"Soft error count since last status\s*=\s*(?P<n>\d+)", re.IGNORECASE)
_GSTAT = re.compile(r"General status bits on \((?P<hex>[0-9a-fA-F]+)\):\s*\n(?P<names>[^\n]*)", re.IGNORECASE)
_GNU_FIELD = re.compile(r"^\s*(?P<key>[a-z ]+?)\s*=\s*(?P<value>-?\d+)\s*$", re.MULTILINE | re.IGNORECASE)

_KNOWN_FLAGS = {name for _, name in GSTAT_NAMES}


@dataclass(frozen=True)
class MtStatus:
    """What one ``mt status`` run showed.

    :param dialect: ``"mt-st"`` or ``"gnu"``.
    :param file_number: -1 when the driver does not know it.
    :param block_number: -1 when the driver does not know it.
    :param block_size: bytes, 0 for variable-block mode.
    :param density: the SCSI density code.
    :param density_name: mt-st's description ("LTO-6", "default", "no translation").
    :param partition: the active partition (mt-st only).
    :param soft_errors: mt-st's soft error count.
    :param gstat: the ``mt_gstat`` bits mt-st printed in hex; None for GNU mt.
    :param flags: the status bit names mt-st printed; None for GNU mt, which prints none.
    :param drive_type: "SCSI 2" (mt-st) or the numeric type (GNU).
    """

    dialect: str
    file_number: int
    block_number: int
    block_size: int
    density: int
    density_name: str | None = None
    partition: int | None = None
    soft_errors: int | None = None
    gstat: int | None = None
    flags: frozenset[str] | None = None
    drive_type: str | None = None

    @property
    def online(self) -> bool | None:
        """True when ``ONLINE`` is among the flags; None when mt did not print them."""
        return None if self.flags is None else "ONLINE" in self.flags

    def to_drive_status(self) -> DriveStatus:
        """The :class:`DriveStatus` ``StDrive.status()`` should report for the same drive.

        :raises ValueError: GNU mt output, which lacks the status bits.
        """
        if self.flags is None:
            raise ValueError("GNU mt does not print the status bits; compare with mt-st's 'mt status'.")
        flags = self.flags
        return DriveStatus(
            online="ONLINE" in flags,
            file_number=self.file_number if self.file_number >= 0 else UNKNOWN,
            block_number=self.block_number if self.block_number >= 0 else UNKNOWN,
            block_size=self.block_size,
            bot="BOT" in flags,
            eof="EOF" in flags,
            eod="EOD" in flags,
            eom="EOT" in flags,
            write_protected="WR_PROT" in flags,
            door_open="DR_OPEN" in flags,
        )


def _parse_mt_st(text: str) -> MtStatus:
    position = _POSITION.search(text)
    block = _BLOCK.search(text)
    if position is None or block is None:
        raise ValueError("not mt-st status output: no 'File number=' or 'Tape block size' line")
    gstat_match = _GSTAT.search(text)
    gstat: int | None = None
    flags: frozenset[str] = frozenset()
    if gstat_match:
        gstat = int(gstat_match["hex"], 16)
        names = gstat_match["names"].split()
        # The line after the header is the names; an empty bit set prints an
        # empty line, so a following non-flag line must not be taken for names.
        flags = frozenset(n for n in names if n in _KNOWN_FLAGS)
        expected = {name for bit, name in GSTAT_NAMES if gstat & bit}
        if flags != expected:
            raise ValueError(
                f"mt status bits disagree: hex {gstat_match['hex']} means {sorted(expected)}, "
                f"the names say {sorted(flags)}"
            )
    soft = _SOFT.search(text)
    drive_type = _TYPE.search(text)
    return MtStatus(
        dialect=MT_ST,
        file_number=int(position["file"]),
        block_number=int(position["block"]),
        block_size=int(block["size"]),
        density=int(block["density"], 0),
        density_name=block["name"].strip() if block["name"] else None,
        partition=int(position["partition"]) if position["partition"] is not None else None,
        soft_errors=int(soft["n"]) if soft else None,
        gstat=gstat,
        flags=flags,
        drive_type=drive_type["type"].strip() if drive_type else None,
    )


def _parse_gnu(text: str) -> MtStatus:
    fields = {m["key"].strip().lower(): int(m["value"]) for m in _GNU_FIELD.finditer(text)}
    try:
        dsreg = fields["drive status"] & 0xFFFFFFFF
        file_number = fields["file number"]
        block_number = fields["block number"]
    except KeyError as missing:
        raise ValueError(f"not GNU mt status output: no '{missing.args[0]}' line") from None
    return MtStatus(
        dialect=GNU,
        file_number=file_number,
        block_number=block_number,
        block_size=dsreg & MT_ST_BLKSIZE_MASK,
        density=dsreg >> MT_ST_DENSITY_SHIFT,
        drive_type=str(fields["drive type"]) if "drive type" in fields else None,
    )


def parse_mt_status(text: str) -> MtStatus:
    """Parse ``mt status`` output of either mt-st or GNU mt.

    :param text: what ``mt -f DEVICE status`` printed.
    :raises ValueError: the text is neither format (an error line, for example).
    """
    if _POSITION.search(text):
        return _parse_mt_st(text)
    if re.search(r"^\s*drive status\s*=", text, re.MULTILINE | re.IGNORECASE):
        return _parse_gnu(text)
    raise ValueError("not mt status output (neither mt-st nor GNU mt format)")


# --- errors -----------------------------------------------------------------------

# mt prints perror(device): "<device>: <strerror>".  Only the errors a tape
# drive gives are listed; their text is glibc's in the C locale.
_STRERROR: dict[str, int] = {
    "Device or resource busy": errno.EBUSY,
    "No medium found": ENOMEDIUM,
    "Input/output error": errno.EIO,
    "No space left on device": errno.ENOSPC,
    "Read-only file system": errno.EROFS,
    "Permission denied": errno.EACCES,
    "Invalid argument": errno.EINVAL,
    "No such file or directory": errno.ENOENT,
    "No such device or address": errno.ENXIO,
    "Inappropriate ioctl for device": errno.ENOTTY,
}
_ERROR_LINE = re.compile(r"^(?P<device>\S.*?): (?P<message>[^:\n]+?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class MtError:
    """An ``mt`` error line, ``/dev/nst0: No medium found``.

    :param device: the device mt named.
    :param message: the strerror text.
    :param errno: the matching errno, None when the text is not a known one.
    """

    device: str
    message: str
    errno: int | None

    def to_tape_error(self, operation: str = "status") -> TapeIOError:
        """The error ``StDrive`` raises for the same errno (for cross-checks).

        :param operation: what mt was doing, as ``StDrive`` names it.
        """
        code = self.errno if self.errno is not None else errno.EIO
        return map_os_error(OSError(code, self.message), device=self.device, operation=operation)


def parse_mt_error(text: str) -> MtError | None:
    """The first ``device: message`` error line in ``text``; None if there is none.

    :param text: mt's stderr.
    """
    for match in _ERROR_LINE.finditer(text):
        message = match["message"].strip()
        if message in _STRERROR or "/" in match["device"]:
            return MtError(match["device"], message, _STRERROR.get(message))
    return None
