"""Byte streams over fixed tape blocks.

The tar layer thinks in bytes and 512-byte records; the drive moves whole
blocks of ``block_size`` bytes.  ``BlockAssembler`` turns a byte stream into
block-sized chunks for writing, and ``TapeFileReader`` turns the blocks of one
tape file back into bytes, skipping whole blocks by spacing (``fsr``) instead
of reading them when that is cheaper.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from .drive import Drive
from .errors import BlankTape

#: Aim for this many bytes per drive write/read call: large enough that Python
#: overhead per call is negligible, small enough to keep the buffer responsive.
TRANSFER_BYTES = 1 << 20


def blocks_per_transfer(block_size: int) -> int:
    return max(1, TRANSFER_BYTES // block_size)


class ChunkPool:
    """Chunks handed back once they are on tape, for an assembler to fill again.

    A new chunk is a megabyte the kernel must fault in and Python must zero;
    one that has been written is neither (issue 9: ``bytearray()``'s memset and
    the page faults were a tenth of a large file's backup).  The drive writer
    gives chunks back (:meth:`give`, from its thread: a deque's append and pop
    are atomic); at most ``keep`` wait here, the rest go to the allocator.
    """

    def __init__(self, keep: int = 16) -> None:
        self.keep = keep
        self._free: deque[bytearray] = deque()

    def take(self, size: int) -> bytearray:
        """A chunk of ``size`` bytes (its content is whatever was there)."""
        try:
            chunk = self._free.pop()
        except IndexError:
            return bytearray(size)
        return chunk if len(chunk) == size else bytearray(size)

    def give(self, chunk: object) -> None:
        """``chunk`` is written and nothing refers to it any more."""
        if type(chunk) is bytearray and len(self._free) < self.keep:
            self._free.append(chunk)


class BlockAssembler:
    """Collects bytes and emits them as chunks of whole blocks.

    Bytes are gathered in a chunk of :func:`blocks_per_transfer` blocks,
    allocated once at its full size; a full chunk is handed to ``emit`` as it
    is (a ``bytearray`` the receiver keeps: the assembler starts a new one)
    instead of being copied out of a growing buffer.  Growing a buffer a file
    at a time made the kernel fault in its pages anew for every megabyte, about
    5 µs per small file (issue 9).  :meth:`room` and :meth:`commit` let a
    reader fill the chunk directly, with no copy at all.

    :param emit: called with each chunk; its length is a multiple of ``block_size``.
    :param block_size: the tape block size.
    :param pool: where new chunks come from: only when whoever receives the
        chunks gives each back once it is done with it.
    """

    def __init__(
        self, emit: Callable[[bytes | bytearray | memoryview], None], block_size: int, pool: ChunkPool | None = None
    ) -> None:
        self._emit = emit
        self.block_size = block_size
        self._size = blocks_per_transfer(block_size) * block_size
        self._new: Callable[[int], bytearray] = pool.take if pool is not None else bytearray
        self._chunk = self._new(self._size)
        #: bytes of the chunk filled so far
        self._fill = 0
        #: bytes accepted so far: the offset of the next byte in the tape file.
        self.offset = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        size = len(data)
        self.offset += size
        fill = self._fill
        end = fill + size
        if end < self._size:  # the usual case: it fits in the chunk
            self._chunk[fill:end] = data
            self._fill = end
            return
        view = memoryview(data)
        while view:
            take = min(len(view), self._size - self._fill)
            self._chunk[self._fill : self._fill + take] = view[:take]
            self._fill += take
            view = view[take:]
            if self._fill == self._size:
                self._hand_over()

    def room(self) -> memoryview:
        """The free part of the chunk, for a reader to fill (then :meth:`commit`).

        Valid until the next call on the assembler; never empty.
        """
        return memoryview(self._chunk)[self._fill :]

    def commit(self, count: int) -> None:
        """``count`` bytes were put at the start of :meth:`room`."""
        if not 0 <= count <= self._size - self._fill:
            raise ValueError(f"{count} bytes do not fit the {self._size - self._fill} left in the chunk")
        self._fill += count
        self.offset += count
        if self._fill == self._size:
            self._hand_over()

    def _hand_over(self) -> None:
        chunk, self._chunk, self._fill = self._chunk, self._new(self._size), 0
        self._emit(chunk)

    def finish(self) -> int:
        """Pad the last block with zeros, emit the rest; return the number of blocks."""
        if self._fill:
            end = -(-self._fill // self.block_size) * self.block_size
            chunk, self._chunk = self._chunk, self._new(self._size)
            # not zeros: a reader may have used room() past its count, or the chunk is a recycled one
            chunk[self._fill : end] = bytes(end - self._fill)
            self._fill = 0
            self._emit(memoryview(chunk)[:end])
        return (self.offset + self.block_size - 1) // self.block_size


class TapeFileReader:
    """Reads the bytes of the tape file under the head, in whole blocks.

    The drive must be positioned at a block boundary of the file; ``position``
    is the byte offset of that block inside the file.  Reading stops at the
    filemark (``read`` then returns ``b""``, and the drive is past the mark).

    :param drive: an open drive in fixed-block mode.
    :param block_size: its block size.
    :param start_block: the block number the drive is at inside this file
        (before ``prefetched`` was read).
    :param prefetched: whole blocks already read from there by the caller.
    """

    #: Skip by spacing only when at least this many whole blocks can be passed:
    #: a short gap is cheaper to read through than to stop and space over.
    SPACE_THRESHOLD_BLOCKS = 4

    def __init__(self, drive: Drive, block_size: int, start_block: int = 0, prefetched: bytes = b"") -> None:
        self.drive = drive
        self.block_size = block_size
        # Blocks the caller already read from the drive at ``start_block``.
        self._buf = prefetched
        self._buf_pos = 0
        #: byte offset in the tape file of the next byte read() returns
        self.position = start_block * block_size
        self.at_filemark = False

    def _fill(self, wanted: int) -> bool:
        if self.at_filemark:
            return False
        # Read no more blocks than the caller still wants: a restore of one
        # small member must not pull a megabyte of its neighbours off tape.
        blocks = min(blocks_per_transfer(self.block_size), -(-wanted // self.block_size))
        try:
            data = self.drive.read(max(1, blocks) * self.block_size)
        except BlankTape:
            data = b""
        if not data:
            self.at_filemark = True
            return False
        self._buf, self._buf_pos = data, 0
        return True

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; fewer only at the end of the tape file."""
        parts: list[bytes] = []
        want = size
        while want > 0:
            if self._buf_pos >= len(self._buf) and not self._fill(want):
                break
            take = self._buf[self._buf_pos : self._buf_pos + want]
            self._buf_pos += len(take)
            want -= len(take)
            parts.append(take)
        data = b"".join(parts)
        self.position += len(data)
        return data

    def skip_to(self, offset: int) -> None:
        """Advance to byte ``offset`` of the tape file, spacing over whole blocks."""
        if offset < self.position:
            raise ValueError(f"cannot skip backwards from {self.position} to {offset}")
        buffered = len(self._buf) - self._buf_pos
        gap = offset - self.position
        if gap <= buffered:
            self._buf_pos += gap
            self.position = offset
            return
        # Drop the buffer: it holds whole blocks, so the drive is now at the
        # block boundary right after it.
        self.position += buffered
        self._buf, self._buf_pos = b"", 0
        blocks = offset // self.block_size - self.position // self.block_size
        if blocks >= self.SPACE_THRESHOLD_BLOCKS:
            self.drive.fsr(blocks)
            self.position = offset // self.block_size * self.block_size
        while self.position < offset:
            if not self.read(min(offset - self.position, TRANSFER_BYTES)):
                raise BlankTape(f"tape file ended at byte {self.position}, before byte {offset}")

    def drain(self) -> int:
        """Read to the filemark; return how many bytes were passed."""
        passed = 0
        while chunk := self.read(TRANSFER_BYTES):
            passed += len(chunk)
        return passed
