"""The tape drive interface shared by the st and virtual backends.

The operations are those of the Linux ``st`` driver (``MTIOCTOP``/``MTIOCGET``),
with the driver's position rules, so that code written against the virtual
drive behaves the same on ``/dev/nst0``:

* ``fsf(n)`` ends at block 0 of file ``file + n``; ``bsf(n)`` ends on the
  beginning-of-tape side of a filemark with the block number unknown (-1);
  ``bsfm(n)`` is ``bsf(n)`` then ``fsf(1)``: the start of file ``file - n + 1``.
* ``read`` at a filemark returns ``b""`` once and leaves the tape after it.
* Data moves in whole blocks of the fixed block size.
* ``close`` after a write writes one filemark, as the ``nst`` driver does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .errors import BlockSizeError
from .health import DriveHealth

#: Position numbers are -1 when the driver does not know them (after a load,
#: after ``bsf``, after an error), exactly as ``mt status`` shows.
UNKNOWN = -1


@dataclass(frozen=True)
class DriveStatus:
    """What ``MTIOCGET`` tells about a drive.

    :param online: a tape is loaded and ready.
    :param file_number: tape file the head is in (0 = first), -1 if unknown.
    :param block_number: block inside that file, -1 if unknown.
    :param block_size: fixed block size in bytes, 0 for variable-block mode.
    """

    online: bool
    file_number: int = UNKNOWN
    block_number: int = UNKNOWN
    block_size: int = 0
    bot: bool = False
    eof: bool = False
    eod: bool = False
    eom: bool = False
    write_protected: bool = False
    door_open: bool = False

    def flags(self) -> list[str]:
        """The status bits that are set, named as ``mt status`` names them."""
        names = {
            "BOT": self.bot,
            "EOF": self.eof,
            "EOD": self.eod,
            "EOT": self.eom,
            "WR_PROT": self.write_protected,
            "ONLINE": self.online,
            "DR_OPEN": self.door_open,
        }
        return [name for name, on in names.items() if on]


@runtime_checkable
class Drive(Protocol):
    """A tape drive.  Implementations: ``st_drive.StDrive``, ``virtual_drive.VirtualDrive``."""

    name: str

    def status(self) -> DriveStatus: ...

    def rewind(self) -> None: ...

    def fsf(self, count: int = 1) -> None: ...

    def bsf(self, count: int = 1) -> None: ...

    def bsfm(self, count: int = 1) -> None: ...

    def fsr(self, count: int = 1) -> None: ...

    def bsr(self, count: int = 1) -> None: ...

    def eod(self) -> None: ...

    def weof(self, count: int = 1) -> None: ...

    def set_block_size(self, size: int) -> None: ...

    def retension(self) -> None: ...

    def offline(self) -> None: ...

    def capacity(self) -> int | None:
        """Bytes the loaded tape holds, when the drive can tell (else None)."""
        ...

    def health(self) -> DriveHealth:
        """TapeAlert flags and error counters (log pages 0x2E, 0x02/0x03); see :mod:`.health`."""
        ...

    def read(self, size: int) -> bytes:
        """Read up to ``size`` bytes (a multiple of the block size) in whole blocks.

        Returns fewer bytes when a filemark or end of data follows, and
        ``b""`` at a filemark (the tape is then after it) or at end of data.
        """
        ...

    def write(self, data: bytes | memoryview) -> None:
        """Write ``data``, whose length is a multiple of the block size."""
        ...

    def close(self) -> None: ...


def ensure_block_size(drive: Drive, block_size: int) -> None:
    """Put the drive in fixed-block mode at ``block_size`` and check that it took.

    The original pytp did this (``mt setblk``) before every data operation, and
    so do we: a drive left in variable mode by another program would otherwise
    write blocks GNU tar cannot read back with ``-b``.
    """
    if drive.status().block_size != block_size:
        drive.set_block_size(block_size)
    actual = drive.status().block_size
    if actual != block_size:
        raise BlockSizeError(
            f"Drive {drive.name} is at block size {actual}, expected {block_size}. "
            "Check the drive's block_size in the configuration."
        )
