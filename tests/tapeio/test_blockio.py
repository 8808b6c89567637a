"""Block assembly, the drive write buffer and the tape file reader."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from pytp.tapeio.blockio import BlockAssembler, TapeFileReader
from pytp.tapeio.buffer import DriveWriter
from pytp.tapeio.errors import BufferAborted, EndOfMedium
from pytp.tapeio.virtual_drive import VirtualDrive, create_virtual_drive, load_tape
from pytp.tapeio.virtual_tape import create_virtual_tape

BS = 4096


def test_assembler_emits_the_same_bytes_in_whole_blocks() -> None:
    rng = random.Random(7)
    chunks: list[bytes] = []
    out = BlockAssembler(chunks.append, BS)
    written = bytearray()
    for _ in range(300):
        piece = rng.randbytes(rng.choice([1, 511, 512, 4096, 70000, 1 << 20]))
        out.write(memoryview(piece))
        written += piece
    blocks = out.finish()
    assert all(len(c) % BS == 0 and c for c in chunks)
    joined = b"".join(chunks)
    assert joined[: len(written)] == written and set(joined[len(written) :]) <= {0}
    assert blocks * BS == len(joined) and out.offset == len(written)


def test_buffer_passes_chunks_in_order_and_counts_underruns() -> None:
    received: list[bytes] = []
    writer = DriveWriter(received.append, capacity=8 * BS, start_percent=50)
    chunks = [bytes([i]) * BS for i in range(40)]
    for chunk in chunks:
        writer.put(chunk)
    writer.close()
    assert received == chunks
    stats = writer.stats()
    assert stats.bytes_written == 40 * BS and stats.high_water <= 8 * BS


def test_buffer_hands_the_drive_error_to_the_producer() -> None:
    def fail(chunk: bytes) -> None:
        raise EndOfMedium("tape full")

    writer = DriveWriter(fail, capacity=2 * BS, start_percent=0)
    with pytest.raises(BufferAborted) as err:
        for _ in range(100):
            writer.put(b"x" * BS)
        writer.close()
    assert isinstance(err.value.__cause__, EndOfMedium)


def test_reader_spaces_over_far_blocks_and_reads_near_ones(tmp_path: Path) -> None:
    drive_dir = create_virtual_drive(tmp_path / "drive")
    load_tape(drive_dir, create_virtual_tape(tmp_path / "tape", "RDR001L9", 64 << 20))
    data = os.urandom(100 * BS)
    with VirtualDrive(drive_dir) as drive:
        drive.set_block_size(BS)
        drive.rewind()
        drive.write(data)
        drive.weof(1)
        drive.rewind()
        reader = TapeFileReader(drive, BS)
        reader.skip_to(50 * BS + 10)  # far: spaced with fsr, not read
        assert reader.read(100) == data[50 * BS + 10 : 50 * BS + 110]
        reader.skip_to(52 * BS)  # near: read through
        assert reader.read(BS) == data[52 * BS : 53 * BS]
        assert drive.counters.fsr == 1
        assert drive.counters.blocks_read <= 4
        assert reader.drain() == 47 * BS
        assert drive.status().file_number == 1  # past the filemark
