"""Reading what the catalog points at: mount each tape once, go to each tape file, read at offsets.

Restore, verify and the reader of members cut across tapes all walk tapes the
same way (issue 10): load the tape through the changer and check its label,
then for each tape file in tape order space to it by filemarks (``goto_file``)
and read members at their byte offsets, spacing over blocks (``fsr``) between
members far apart.  ``read_tape_files`` is that walk; what is done with the
bytes stays with each caller.  A catalog rebuild reads whole tapes without the
catalog's offsets and does not use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from sqlmodel import Session

from pytp.tapeio.blockio import TapeFileReader, blocks_per_transfer
from pytp.tapeio.drive import Drive, ensure_block_size
from pytp.tapeio.positioning import goto_file

from .media import Media
from .models import TapeFile, Volume

T = TypeVar("T")


class TapeFileAccess:
    """One tape file of the mounted tape, read at byte offsets.

    Offsets are best asked for in increasing order: a later offset is reached
    from where the head is (reading through a short gap, spacing over a long
    one); an earlier one, or any after ``lost``, from the start of the file.

    :param drive: the drive holding ``volume``, set to ``block_size``.
    :param tape_file: the tape file, on ``volume``.
    """

    def __init__(self, drive: Drive, block_size: int, volume: Volume, tape_file: TapeFile) -> None:
        self.drive = drive
        self.block_size = block_size
        self.volume = volume
        self.tape_file = tape_file
        self.file_number = tape_file.file_number
        self._reader: TapeFileReader | None = None

    def at(self, offset: int) -> TapeFileReader:
        """A reader whose next byte is byte ``offset`` of this tape file.

        :raises MediumError: the way there cannot be read or spaced.
        :raises BlankTape: the tape file ends before ``offset``.
        """
        if self._reader is None or self._reader.position > offset:
            self._reader = None  # until the head is where the new reader says
            goto_file(self.drive, self.file_number)
            block = offset // self.block_size
            if block:
                self.drive.fsr(block)
            self._reader = TapeFileReader(self.drive, self.block_size, start_block=block)
        self._reader.skip_to(offset)
        return self._reader

    def lost(self) -> None:
        """Forget the head's place (after an unreadable block): the next ``at`` starts from the file's start."""
        self._reader = None


def read_tape_files(
    media: Media,
    session: Session,
    wanted: Iterable[tuple[Volume, TapeFile, T]],
    on_mount: Callable[[Volume], None] | None = None,
) -> Iterator[tuple[T, TapeFileAccess]]:
    """Give access to each wanted tape file, mounting its tape when it is not the one just read.

    A tape is loaded (through the changer if there is one), its label checked
    against the catalog and the drive set to the block size once for a run of
    consecutive tape files on it: callers list tape files grouped by tape, in
    tape order.

    :param wanted: (tape, tape file, what the caller reads there), in reading order.
    :param on_mount: called with each tape before it is mounted (progress).
    :raises WrongTape: a tape is not in the library, or its label disagrees.
    """
    mounted: int | None = None
    for volume, tape_file, what in wanted:
        if mounted is None or volume.id != mounted:
            if on_mount is not None:
                on_mount(volume)
            mounted = None  # a failed mount leaves no tape known to be mounted
            media.mount(session, volume)
            ensure_block_size(media.drive, media.block_size)
            mounted = volume.id
        yield what, TapeFileAccess(media.drive, media.block_size, volume, tape_file)


class ChunkedReader:
    """Bytes of one tape file at increasing offsets, read in large chunks.

    Verify asks for every member of a tape file in offset order: the header
    and data of hundreds of small members sit in each chunk, so they are
    sliced out of it instead of each asking the drive reader (issue 9:
    verify in batches).  A gap larger than a chunk is spaced over by
    ``TapeFileAccess.at``.

    A chunk is one drive transfer by default: the reader then hands over
    the drive's own bytes object, and nothing is copied but a member that
    straddles two chunks (its bytes alone).

    :param chunk: bytes read at once (a whole number of blocks is read).
    """

    def __init__(self, access: TapeFileAccess, chunk: int | None = None) -> None:
        self._access = access
        self._chunk = max(chunk or blocks_per_transfer(access.block_size) * access.block_size, access.block_size)
        self._buf = b""
        #: offset in the tape file of ``_buf[0]``
        self._start = 0

    def window(self, offset: int, length: int) -> tuple[bytes, int]:
        """``(buf, index)``: ``buf[index : index + length]`` are the ``length``
        bytes at ``offset`` (fewer when the tape file ends first).

        ``buf`` is the whole chunk when the bytes lie in it, so that a caller
        slices members out of it without copying; the bytes of a member that
        straddles a chunk's end come in a buffer of their own.

        :raises MediumError, BlankTape: as ``TapeFileAccess.at`` and reading.
        """
        buf, start = self._buf, self._start
        index = offset - start
        if 0 <= index and index + length <= len(buf):
            return buf, index
        end = start + len(buf)
        if start <= offset < end:
            # Straddling: the next chunk goes on from the end of this one, and
            # only this member's bytes are joined.
            head = buf[index:]
            more = self._access.at(end).read(max(length - len(head), self._chunk))
            self._buf, self._start = more, end
            return head + more[: length - len(head)], 0
        self._buf = self._access.at(offset).read(max(length, self._chunk))
        self._start = offset
        return self._buf, 0

    def read_at(self, offset: int, length: int) -> memoryview:
        """The ``length`` bytes at ``offset``; fewer when the tape file ends first.

        :raises MediumError, BlankTape: as ``TapeFileAccess.at`` and reading.
        """
        buf, index = self.window(offset, length)
        return memoryview(buf)[index : index + length]

    def feed(self, offset: int, length: int, feed: Callable[[memoryview], None]) -> int:
        """Pass ``length`` bytes from ``offset`` to ``feed``, a chunk at a time.

        :returns: how many bytes are missing because the tape file ended early (0: none).
        """
        while length:
            # The rest of the chunk in hand first, then whole chunks: no piece straddles two.
            rest = self._start + len(self._buf) - offset
            piece = min(length, rest if self._start <= offset and rest > 0 else self._chunk)
            data = self.read_at(offset, piece)
            if not data:
                break
            feed(data)
            offset += len(data)
            length -= len(data)
        return length


def feed_bytes(reader: TapeFileReader, length: int, feed: Callable[[bytes], None]) -> int:
    """Pass the next ``length`` bytes of the tape file to ``feed``, a megabyte at a time.

    :returns: how many bytes are missing because the tape file ended early (0: none).
    """
    remaining = length
    while remaining:
        data = reader.read(min(remaining, 1 << 20))
        if not data:
            break
        feed(data)
        remaining -= len(data)
    return remaining
