"""The block assembler hands over whole chunks it does not copy, and a large
file's data is read straight into them (issue 9: large files at tape speed)."""

from __future__ import annotations

import os
from pathlib import Path

from pytp.tapeio.blockio import BlockAssembler, ChunkPool, blocks_per_transfer
from pytp.tapeio.buffer import DriveWriter
from pytp.tapeio.tarwriter import SMALL_FILE, ArchiveWriter

BLOCK = 512 << 10  # the default block size
CHUNK = blocks_per_transfer(BLOCK) * BLOCK


def test_a_reader_fills_the_chunk_itself_and_the_same_buffer_is_handed_over() -> None:
    chunks: list[bytes | bytearray | memoryview] = []
    out = BlockAssembler(chunks.append, BLOCK)
    out.write(b"h" * 1000)
    room = out.room()
    assert len(room) == CHUNK - 1000
    room[:] = b"d" * len(room)
    out.commit(len(room))
    assert len(chunks) == 1 and chunks[0] is room.obj  # the buffer the reader filled, not a copy of it
    assert bytes(chunks[0]) == b"h" * 1000 + b"d" * (CHUNK - 1000)
    assert out.offset == CHUNK and len(out.room()) == CHUNK


def test_every_chunk_but_the_last_is_the_transfer_size_and_the_last_is_padded_with_zeros() -> None:
    chunks: list[bytes | bytearray | memoryview] = []
    out = BlockAssembler(chunks.append, BLOCK)
    pieces = [os.urandom(n) for n in (5632, 3 * CHUNK + 17, 1, 512, CHUNK)]
    for piece in pieces:
        out.write(piece)
    room = out.room()
    room[:10] = b"r" * 10
    out.commit(4)  # the six bytes past the count were written but not committed: not on tape
    blocks = out.finish()
    data = b"".join(pieces) + b"rrrr"
    assert [len(c) for c in chunks[:-1]] == [CHUNK] * (len(chunks) - 1)
    joined = b"".join(bytes(c) for c in chunks)
    assert joined[: len(data)] == data and joined[len(data) :] == bytes(len(joined) - len(data))
    assert len(joined) == blocks * BLOCK == -(-len(data) // BLOCK) * BLOCK


class Counting(BlockAssembler):
    """Counts the bytes that came through write() (a copy) rather than room() and commit()."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        super().__init__(lambda chunk: self.received.append(bytes(chunk)), BLOCK)
        self.written = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)
        super().write(data)


def test_a_large_files_data_goes_into_the_chunks_without_passing_through_write(tmp_path: Path) -> None:
    content = os.urandom(3 * SMALL_FILE + 12345)
    (tmp_path / "big.bin").write_bytes(content)
    out = Counting()
    records = []
    ArchiveWriter(out, records.append, lambda problem: None).add(
        os.fsencode(tmp_path / "big.bin"), os.lstat(tmp_path / "big.bin")
    )
    out.finish()
    (record,) = records
    assert out.written < 4096  # the headers and the padding only
    archive = b"".join(out.received)
    assert archive[record.header_size : record.header_size + len(content)] == content


class CountingPool(ChunkPool):
    def __init__(self) -> None:
        super().__init__()
        self.new = 0

    def take(self, size: int) -> bytearray:
        before = len(self._free)
        chunk = super().take(size)
        self.new += before == 0
        return chunk


def test_chunks_the_drive_writer_has_written_are_filled_again_and_old_bytes_never_reach_tape() -> None:
    received = bytearray()
    pool = CountingPool()
    writer = DriveWriter(received.extend, capacity=4 * CHUNK, start_percent=0, written=pool.give)
    out = BlockAssembler(writer.put, BLOCK, pool)
    data = b"\xff" * (40 * CHUNK)
    for n in range(0, len(data), 5632):
        out.write(data[n : n + 5632])
    out.write(b"end")  # the last chunk is a recycled one full of 0xff: its padding must still be zeros
    blocks = out.finish()
    writer.close()
    assert bytes(received) == data + b"end" + bytes(blocks * BLOCK - len(data) - 3)
    assert pool.new <= 4 + 2  # the buffer's capacity in chunks, and the one being filled: not one per megabyte
