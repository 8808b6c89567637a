"""Errors raised by pytp.tapeio.

Each class carries its exit code; the docstring is the default message.  The
message says what happened and what to do next.  Low-level ``OSError``s are
wrapped where they are seen, keeping the cause (``raise X(...) from err``).
"""

from __future__ import annotations

from . import exitcodes


class TapeIOError(Exception):
    """A tape operation failed."""

    exit_code: int = exitcodes.EXIT_DRIVE

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class DriveError(TapeIOError):
    """The tape drive reported an error."""


class DriveBusy(DriveError):
    """The drive is in use by another process."""


class NoMedium(DriveError):
    """No tape is loaded in the drive."""


class DriveNotReady(DriveError):
    """The drive holds a tape but is not ready (still loading or calibrating)."""


class MediumError(DriveError):
    """The drive could not read or write the tape (I/O error)."""


class BlankTape(DriveError):
    """The tape holds no data at this position (blank or end of data)."""


class WriteProtected(DriveError):
    """The tape is write-protected."""


class BlockSizeError(DriveError):
    """The drive is not in the expected fixed-block mode, or a transfer is not a whole block."""


class PositionUnknown(DriveError):
    """The drive does not know its position; rewind first."""


class EndOfMedium(TapeIOError):
    """The tape is full (end of medium)."""

    exit_code = exitcodes.EXIT_TAPE_FULL
    #: of the failed write, the bytes (whole blocks) that reached the tape all
    #: the same, so that a spanning writer continues on the next tape after them
    bytes_written: int = 0

    def __init__(self, message: str | None = None, bytes_written: int = 0) -> None:
        super().__init__(message)
        self.bytes_written = bytes_written


class ChangerError(TapeIOError):
    """The media changer failed."""

    exit_code = exitcodes.EXIT_CHANGER


class TarFormatError(TapeIOError):
    """The data on tape is not the tar archive pytp expected."""

    exit_code = exitcodes.EXIT_VERIFY_FAILED


class BufferAborted(TapeIOError):
    """The transfer was stopped because the other side of the buffer failed."""

    exit_code = exitcodes.EXIT_ERROR


class NothingHere(TapeIOError):
    """No tape file data at the head: an empty tape file, or the end of the recorded data."""

    exit_code = exitcodes.EXIT_NOT_FOUND


class TargetError(TapeIOError):
    """A restore target that cannot be made a directory (a file is in its path): a bad argument."""

    exit_code = exitcodes.EXIT_USAGE


class ForeignTape(TapeIOError):
    """The tape holds data but no pytp volume label."""

    exit_code = exitcodes.EXIT_WRONG_TAPE
