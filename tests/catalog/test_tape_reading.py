"""The tape-file access that restore, verify and the cut-member reader share (``catalog.tape_reading``).

Real virtual drive and tape; the read fault is injected by the tape's fault
configuration.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytp.catalog.models import TapeFile, Volume
from pytp.catalog.tape_reading import ChunkedReader, TapeFileAccess, feed_bytes
from pytp.tapeio.errors import MediumError
from pytp.tapeio.virtual_drive import VirtualDrive, create_virtual_drive, load_tape
from pytp.tapeio.virtual_tape import configure_tape, create_virtual_tape

BS = 4096


@pytest.mark.parametrize("block_size", [BS, 512 * 1024], ids=["4KiB", "512KiB"])
def test_access_reads_at_offsets_forward_backward_and_past_a_bad_block(tmp_path: Path, block_size: int) -> None:
    drive_dir = create_virtual_drive(tmp_path / "drive")
    tape = create_virtual_tape(tmp_path / "tape", "RDA001L9", 256 << 20)
    load_tape(drive_dir, tape)
    first = os.urandom(3 * block_size)
    data = os.urandom(40 * block_size)
    with VirtualDrive(drive_dir) as drive:
        drive.set_block_size(block_size)
        drive.rewind()
        drive.write(first)
        drive.weof(1)
        drive.write(data)
        drive.weof(1)
    configure_tape(tape, read_errors=[(1, 10)])
    with VirtualDrive(drive_dir) as drive:
        drive.set_block_size(block_size)
        drive.rewind()
        access = TapeFileAccess(drive, block_size, Volume(label="RDA001L9"), TapeFile(file_number=1))
        at = 5 * block_size + 17
        assert access.at(at).read(100) == data[at : at + 100]
        # Backwards: reached again from the start of the tape file, by spacing.
        assert access.at(2 * block_size).read(block_size) == data[2 * block_size : 3 * block_size]
        with pytest.raises(MediumError):
            access.at(10 * block_size).read(block_size)
        access.lost()
        far = 20 * block_size + 3
        assert access.at(far).read(block_size) == data[far : far + block_size]
        assert drive.status().file_number == 1  # never strayed into another tape file
        # The last bytes, then a tape file that ends early.
        got: list[bytes] = []
        last = 39 * block_size
        assert feed_bytes(access.at(last), 2 * block_size, got.append) == block_size
        assert b"".join(got) == data[last:]


@pytest.mark.parametrize("block_size", [BS, 512 * 1024], ids=["4KiB", "512KiB"])
def test_chunked_reader_slices_members_out_of_large_reads(tmp_path: Path, block_size: int) -> None:
    """Verify's reader (issue 9): offsets in increasing order, members straddling a
    chunk's end, a gap spaced over, one offset backwards, a feed longer than a chunk,
    and a short answer where the tape file ends."""
    drive_dir = create_virtual_drive(tmp_path / "drive")
    tape = create_virtual_tape(tmp_path / "tape", "RDB001L9", 256 << 20)
    load_tape(drive_dir, tape)
    data = os.urandom(24 * block_size)
    with VirtualDrive(drive_dir) as drive:
        drive.set_block_size(block_size)
        drive.rewind()
        drive.write(b"L" * block_size)
        drive.weof(1)
        drive.write(data)
        drive.weof(1)
    with VirtualDrive(drive_dir) as drive:
        drive.set_block_size(block_size)
        drive.rewind()
        access = TapeFileAccess(drive, block_size, Volume(label="RDB001L9"), TapeFile(file_number=1))
        chunks = ChunkedReader(access, chunk=2 * block_size)
        offset = 0
        for length in (512, 1536, block_size, 3 * block_size + 5, 700, 2 * block_size, 1):
            assert bytes(chunks.read_at(offset, length)) == data[offset : offset + length]
            offset += length + 123
        far = 20 * block_size + 9  # a gap of several chunks
        assert bytes(chunks.read_at(far, 100)) == data[far : far + 100]
        assert bytes(chunks.read_at(7, 50)) == data[7:57]  # backwards: from the start of the tape file
        got: list[bytes] = []
        assert chunks.feed(block_size, 5 * block_size, lambda piece: got.append(bytes(piece))) == 0
        assert b"".join(got) == data[block_size : 6 * block_size] and len(got) >= 3
        end = len(data) - 10
        assert bytes(chunks.read_at(end, 100)) == data[end:]  # the tape file ends: fewer bytes
        assert drive.status().file_number in (1, 2)  # never read into another tape file's data
