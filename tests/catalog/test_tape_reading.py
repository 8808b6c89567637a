"""The tape-file access that restore, verify and the cut-member reader share (``catalog.tape_reading``).

Real virtual drive and tape; the read fault is injected by the tape's fault
configuration.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytp.catalog.models import TapeFile, Volume
from pytp.catalog.tape_reading import TapeFileAccess, feed_bytes
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
