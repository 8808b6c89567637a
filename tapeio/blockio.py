"""Byte streams over fixed tape blocks.

The tar layer thinks in bytes and 512-byte records; the drive moves whole
blocks of ``block_size`` bytes.  ``BlockAssembler`` turns a byte stream into
block-sized chunks for writing, and ``TapeFileReader`` turns the blocks of one
tape file back into bytes, skipping whole blocks by spacing (``fsr``) instead
of reading them when that is cheaper.
"""

from __future__ import annotations

from collections.abc import Callable

from .drive import Drive
from .errors import BlankTape

#: Aim for this many bytes per drive write/read call: large enough that Python
#: overhead per call is negligible, small enough to keep the buffer responsive.
TRANSFER_BYTES = 1 << 20


def blocks_per_transfer(block_size: int) -> int:
    return max(1, TRANSFER_BYTES // block_size)


class BlockAssembler:
    """Collects bytes and emits them as chunks of whole blocks.

    :param emit: called with each chunk; its length is a multiple of ``block_size``.
    :param block_size: the tape block size.
    """

    def __init__(self, emit: Callable[[bytes], None], block_size: int) -> None:
        self._emit = emit
        self.block_size = block_size
        self._chunk = blocks_per_transfer(block_size) * block_size
        self._pending = bytearray()
        #: bytes accepted so far: the offset of the next byte in the tape file.
        self.offset = 0

    def write(self, data: bytes | memoryview) -> None:
        self.offset += len(data)
        view = memoryview(data)
        if len(self._pending) + len(view) < self._chunk:
            self._pending += view
            return
        # Complete the pending bytes to a whole block, then hand over the
        # block-aligned middle of ``data`` with a single copy (the caller may
        # reuse its buffer), and keep the unaligned tail.
        head = -len(self._pending) % self.block_size
        self._pending += view[:head]
        view = view[head:]
        if self._pending:
            self._emit(bytes(self._pending))
            self._pending.clear()
        aligned = len(view) - len(view) % self.block_size
        if aligned:
            self._emit(bytes(view[:aligned]))
        self._pending += view[aligned:]

    def finish(self) -> int:
        """Pad the last block with zeros, emit the rest; return the number of blocks."""
        remainder = len(self._pending) % self.block_size
        if remainder:
            self._pending += b"\0" * (self.block_size - remainder)
        if self._pending:
            self._emit(bytes(self._pending))
            self._pending.clear()
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
