"""The drive contract: what every :class:`~pytp.tapeio.drive.Drive` must do.

Each ``check_*`` function takes an open drive positioned at BOT of a blank,
writable tape whose fixed block size is already set, and fails with an
``AssertionError`` (or an unexpected exception) when the drive breaks the
rule.  Nothing here knows about the virtual drive: the same functions run
against the Linux ``st`` driver (``/dev/nst0``) in the QEMU system tests.

They assert only what ``st`` guarantees on both real drives and tgt's SSC
emulation, which differ in places (verified against ``drivers/scsi/st.c``
and tgt's ``usr/bs_ssc.c``):

* spacing over blocks across a filemark (tgt ignores filemarks in
  SPACE blocks), so ``fsr``/``bsr`` are checked inside a file only;
* what a read at end of data returns (real drives: ``b""`` once after a
  filemark, then an error; tgt: an error at once), so
  :func:`assert_no_more_data` accepts both;
* the numbers reported after an error or after ``eod`` (tgt sends no
  residual count), so those checks look at the data instead.

A block's bytes name its tape file and block number (:func:`block`), so a
read proves where the tape really is, not only what the driver reports.

``CHECKS`` lists the functions taking only the drive; ``REOPEN_CHECKS``
those that also close it and need a way to open it again.  ``drive.close()``
must be harmless when called a second time.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytp.tapeio.drive import UNKNOWN, Drive
from pytp.tapeio.errors import (
    BlankTape,
    BlockSizeError,
    EndOfMedium,
    MediumError,
)

#: Errors a read at end of data may raise: st maps BLANK CHECK and tgt's
#: MEDIUM ERROR to the same EIO.
END_OF_DATA_ERRORS = (BlankTape, MediumError)


# --------------------------------------------------------------------------
# helpers


def block(tag: int, index: int, size: int) -> bytes:
    """One recognisable block: which tape file (``tag``) and block it was written as."""
    head = f"pytp-contract file={tag} block={index};".encode()
    return (head * (size // len(head) + 1))[:size]


def blocks(tag: int, count: int, size: int, first: int = 0) -> bytes:
    """``count`` consecutive recognisable blocks."""
    return b"".join(block(tag, first + i, size) for i in range(count))


def block_size(drive: Drive) -> int:
    size = drive.status().block_size
    assert size > 0, "the contract needs a drive in fixed-block mode"
    return size


def position(drive: Drive) -> tuple[int, int]:
    """``(file, block)`` as the driver reports it."""
    status = drive.status()
    return status.file_number, status.block_number


def write_files(drive: Drive, *counts: int) -> None:
    """Write one tape file per count, ``counts[i]`` blocks each, each ended by a filemark.

    File ``i`` holds ``blocks(i, counts[i])``; the tape ends at end of data after them.
    """
    size = block_size(drive)
    for tag, count in enumerate(counts):
        if count:
            drive.write(blocks(tag, count, size))
        drive.weof(1)


def read_file(drive: Drive, chunk_blocks: int = 4) -> bytes:
    """Read to the next filemark (the empty read included) and return the data."""
    size = block_size(drive)
    parts = []
    while True:
        data = drive.read(chunk_blocks * size)
        if not data:
            return b"".join(parts)
        parts.append(data)


def assert_no_more_data(drive: Drive) -> None:
    """At end of data: reads give no data, ``b""`` at most once, then an error."""
    size = block_size(drive)
    try:
        first = drive.read(size)
    except END_OF_DATA_ERRORS:
        return
    assert first == b"", "a read at end of data returned data"
    with pytest.raises(END_OF_DATA_ERRORS):
        drive.read(size)


# --------------------------------------------------------------------------
# the checks


def check_bot_status(drive: Drive) -> None:
    """A freshly rewound tape is online at file 0, block 0 with BOT set."""
    status = drive.status()
    assert status.online
    assert (status.file_number, status.block_number) == (0, 0)
    assert status.bot and not status.eof
    assert status.block_size > 0
    assert not status.write_protected


def check_write_then_read_back(drive: Drive) -> None:
    """Blocks written in several calls come back in order; positions count blocks."""
    size = block_size(drive)
    drive.write(blocks(0, 3, size))
    assert position(drive) == (0, 3)
    drive.write(blocks(0, 2, size, first=3))
    assert position(drive) == (0, 5)
    drive.weof(1)
    assert position(drive) == (1, 0)
    drive.rewind()
    assert drive.status().bot
    assert read_file(drive) == blocks(0, 5, size)
    assert position(drive) == (1, 0)


def check_read_returns_empty_at_filemark(drive: Drive) -> None:
    """A read stops short at a filemark; the next read is ``b""`` and passes it."""
    size = block_size(drive)
    write_files(drive, 3, 2)
    drive.rewind()
    assert drive.read(8 * size) == blocks(0, 3, size)
    assert position(drive) == (0, 3), "a short read stays in its file"
    assert drive.read(8 * size) == b""
    assert position(drive) == (1, 0)
    assert drive.status().eof
    assert drive.read(8 * size) == blocks(1, 2, size)
    assert drive.read(8 * size) == b""
    assert position(drive) == (2, 0)


def check_read_through_end_of_data(drive: Drive) -> None:
    """After the last file's filemark no read returns data."""
    write_files(drive, 2)
    drive.rewind()
    assert read_file(drive) == blocks(0, 2, block_size(drive))
    assert_no_more_data(drive)


def check_eof_and_bot_flags(drive: Drive) -> None:
    """EOF is set at block 0 of a file after the first; BOT only at file 0, block 0."""
    write_files(drive, 1, 1)
    status = drive.status()
    assert status.eof and not status.bot
    drive.rewind()
    status = drive.status()
    assert status.bot and not status.eof
    drive.fsf(1)
    status = drive.status()
    assert (status.file_number, status.block_number) == (1, 0)
    assert status.eof and not status.bot


def check_fsf_positions(drive: Drive) -> None:
    """``fsf(n)`` lands on block 0 of file ``file + n``, also from inside a file."""
    size = block_size(drive)
    write_files(drive, 2, 2, 3)
    drive.rewind()
    drive.fsf(1)
    assert position(drive) == (1, 0)
    assert drive.read(size) == block(1, 0, size)
    drive.rewind()
    drive.fsf(2)
    assert position(drive) == (2, 0)
    assert drive.read(size) == block(2, 0, size)
    drive.rewind()
    assert drive.read(size) == block(0, 0, size)
    assert position(drive) == (0, 1)
    drive.fsf(1)
    assert position(drive) == (1, 0)
    assert drive.read(size) == block(1, 0, size)


def check_fsf_past_end_of_data(drive: Drive) -> None:
    """``fsf`` beyond the last filemark fails; rewinding recovers."""
    size = block_size(drive)
    write_files(drive, 1, 1)
    drive.rewind()
    with pytest.raises(MediumError):
        drive.fsf(3)
    drive.rewind()
    assert position(drive) == (0, 0)
    assert drive.read(size) == block(0, 0, size)


def check_bsf_unknown_block(drive: Drive) -> None:
    """``bsf(n)`` reports file ``file - n`` with the block number unknown."""
    size = block_size(drive)
    write_files(drive, 2, 2, 2)
    drive.rewind()
    drive.fsf(2)
    drive.bsf(1)
    assert position(drive) == (1, UNKNOWN)
    drive.rewind()
    drive.fsf(2)
    assert drive.read(size) == block(2, 0, size)
    drive.bsf(2)
    assert position(drive) == (0, UNKNOWN)


def check_bsf_past_bot(drive: Drive) -> None:
    """``bsf`` beyond the beginning of tape fails; rewinding recovers."""
    size = block_size(drive)
    write_files(drive, 1, 1)
    drive.rewind()
    drive.fsf(1)
    with pytest.raises(MediumError):
        drive.bsf(3)
    drive.rewind()
    assert drive.read(size) == block(0, 0, size)


def check_bsfm(drive: Drive) -> None:
    """``bsfm(n)`` goes to the start of file ``file - n + 1``."""
    size = block_size(drive)
    write_files(drive, 2, 2, 2)
    drive.rewind()
    drive.fsf(2)
    assert drive.read(size) == block(2, 0, size)
    drive.bsfm(1)
    assert position(drive) == (2, 0)
    assert drive.read(size) == block(2, 0, size)
    drive.bsfm(2)
    assert position(drive) == (1, 0)
    assert drive.read(size) == block(1, 0, size)


def check_eod(drive: Drive) -> None:
    """``eod`` goes past the last filemark: the next write becomes a new last file."""
    size = block_size(drive)
    write_files(drive, 1, 2)
    drive.rewind()
    drive.eod()
    assert drive.status().eod
    drive.write(blocks(2, 1, size))
    drive.weof(1)
    drive.rewind()
    drive.fsf(2)
    assert read_file(drive) == blocks(2, 1, size)
    assert_no_more_data(drive)


def check_fixed_block_enforced(drive: Drive) -> None:
    """Partial blocks are refused for writing and reading, and nothing moves."""
    size = block_size(drive)
    with pytest.raises(BlockSizeError):
        drive.write(b"x" * (size + 1))
    with pytest.raises(BlockSizeError):
        drive.write(b"x" * (size // 2 or 1))
    assert position(drive) == (0, 0)
    write_files(drive, 1)
    drive.rewind()
    with pytest.raises(BlockSizeError):
        drive.read(size + 1)
    assert position(drive) == (0, 0)
    assert drive.read(size) == block(0, 0, size)


def check_fsr_bsr(drive: Drive) -> None:
    """``fsr``/``bsr`` move by blocks inside a file; reads prove where the tape is."""
    size = block_size(drive)
    write_files(drive, 6)
    drive.rewind()
    drive.fsr(2)
    assert position(drive) == (0, 2)
    assert drive.read(size) == block(0, 2, size)
    drive.bsr(3)
    assert position(drive) == (0, 0)
    assert drive.read(size) == block(0, 0, size)
    drive.fsr(4)
    assert position(drive) == (0, 5)
    assert drive.read(size) == block(0, 5, size)
    drive.bsr(1)
    assert drive.read(2 * size) == block(0, 5, size)


def check_write_truncates_later_files(drive: Drive) -> None:
    """Writing in the middle of a tape makes everything after it unreachable."""
    size = block_size(drive)
    write_files(drive, 1, 1, 1)
    drive.rewind()
    drive.fsf(1)
    drive.write(block(9, 0, size))
    drive.weof(1)
    assert position(drive) == (2, 0)
    drive.rewind()
    assert read_file(drive) == block(0, 0, size)
    assert read_file(drive) == block(9, 0, size)
    assert_no_more_data(drive)
    drive.rewind()
    drive.fsf(2)  # exactly to end of data: allowed
    with pytest.raises(MediumError):
        drive.fsf(1)  # the old third file is gone


def check_write_inside_file_truncates_it(drive: Drive) -> None:
    """Writing after some blocks of a file replaces the rest of that file."""
    size = block_size(drive)
    write_files(drive, 4, 1)
    drive.rewind()
    drive.fsr(2)
    drive.write(block(7, 0, size))
    drive.weof(1)
    drive.rewind()
    assert read_file(drive) == blocks(0, 2, size) + block(7, 0, size)
    assert_no_more_data(drive)


def check_weof_many_makes_empty_files(drive: Drive) -> None:
    """``weof(2)`` after data leaves an empty file between the two filemarks."""
    size = block_size(drive)
    drive.write(blocks(0, 1, size))
    drive.weof(2)
    assert position(drive) == (2, 0)
    drive.write(blocks(2, 1, size))
    drive.weof(1)
    drive.rewind()
    assert read_file(drive) == blocks(0, 1, size)
    assert drive.read(size) == b"", "file 1 is empty"
    assert position(drive) == (2, 0)
    assert drive.read(size) == block(2, 0, size)


def check_rewind_after_write_ends_file(drive: Drive) -> None:
    """Rewinding right after a write writes the filemark first (as close does)."""
    size = block_size(drive)
    drive.write(blocks(0, 2, size))
    drive.rewind()
    assert read_file(drive) == blocks(0, 2, size)
    assert position(drive) == (1, 0)
    assert_no_more_data(drive)


def check_bsf_after_write_ends_file(drive: Drive) -> None:
    """``bsf`` right after a write closes the file first and counts from inside it."""
    size = block_size(drive)
    write_files(drive, 1)
    drive.write(blocks(1, 2, size))
    drive.bsf(1)
    assert position(drive) == (0, UNKNOWN)
    drive.rewind()
    drive.fsf(1)
    assert read_file(drive) == blocks(1, 2, size)
    assert_no_more_data(drive)


def check_filemark_on_close(drive: Drive, reopen: Callable[[], Drive]) -> None:
    """Closing after a write writes one filemark; closing after reading writes none.

    Closes ``drive``; opens and closes its own handles with ``reopen``.
    """
    size = block_size(drive)
    drive.write(blocks(0, 2, size))
    drive.close()
    second = reopen()
    try:
        assert position(second) == (1, 0), "the filemark written at close moved the tape"
        second.rewind()
        assert read_file(second) == blocks(0, 2, size)
        assert position(second) == (1, 0)
    finally:
        second.close()
    third = reopen()
    try:
        third.rewind()
        third.fsf(1)  # exactly to end of data
        with pytest.raises(MediumError):
            third.fsf(1)  # no second filemark was written by the read-only close
    finally:
        third.close()


def check_end_of_medium(drive: Drive, max_bytes: int, chunk_blocks: int = 16) -> None:
    """Writing until the tape is full raises :class:`EndOfMedium`, then filemarks still fit.

    :param max_bytes: a bound on what the tape takes before end of medium;
        the check fails if no end of medium came within it.
    """
    size = block_size(drive)
    chunk = blocks(0, chunk_blocks, size)
    written = 0
    with pytest.raises(EndOfMedium):
        while written <= max_bytes:
            drive.write(chunk)
            written += len(chunk)
    assert drive.status().eom
    drive.weof(1)
    drive.rewind()
    assert drive.read(size) == block(0, 0, size)


# --------------------------------------------------------------------------
# early warning (end of medium), as drivers/scsi/st.c handles it
#
# st's rules (``STps->eof``): the write that ends past the early-warning point
# is written whole and succeeds, and ``MTIOCGET`` then shows ``EOT``
# (``ST_EOM_OK``); the next write fails with ``ENOSPC`` and writes nothing
# (``ST_EOD_1``: "allow next write"); the one after it is written, and so on,
# alternating.  Any successful filemark or movement (``MTWEOF``, ``MTEOM``,
# ``MTFSF``, ``MTREW``...) clears the state, so the first write after it is
# written.  Real drives and tgt agree on all of this; they differ at the
# physical end (tgt has none), which is not checked here.  Each check starts
# writing at BOT, so they can run one after another on one small cartridge.


def write_to_early_warning(drive: Drive, max_bytes: int) -> int:
    """Write one block at a time until the status shows early warning; return the blocks.

    Asserts that no status before the write that passed the point shows it,
    and that the write that passed it succeeded whole.
    """
    size = block_size(drive)
    count = 0
    while count * size <= max_bytes:
        drive.write(block(0, count, size))  # the write that passes the point succeeds
        count += 1
        if drive.status().eom:
            return count
    raise AssertionError(f"no early warning within {max_bytes} bytes")


def assert_refused(drive: Drive, data: bytes) -> None:
    """``data`` is refused with end of medium and nothing of it reaches the tape."""
    with pytest.raises(EndOfMedium) as err:
        drive.write(data)
    assert getattr(err.value, "bytes_written", 0) == 0


def check_early_warning_alternates(drive: Drive, max_bytes: int) -> None:
    """Past early warning writes are refused and allowed in turn; filemarks always fit."""
    size = block_size(drive)
    count = write_to_early_warning(drive, max_bytes)
    assert_refused(drive, block(0, count, size))
    assert drive.status().eom
    drive.write(block(0, count, size))  # st allows the write after ENOSPC (a trailer)
    assert_refused(drive, block(0, count + 1, size))
    drive.weof(2)  # filemarks are written in the early-warning zone
    drive.write(block(2, 0, size))  # and the first write after them is too
    assert drive.status().eom
    assert_refused(drive, block(2, 1, size))
    drive.weof(1)
    drive.rewind()
    assert read_file(drive) == blocks(0, count + 1, size), "a refused write reached the tape"
    assert read_file(drive) == b"", "file 1 is the empty file between the two filemarks"
    assert read_file(drive) == block(2, 0, size)
    assert_no_more_data(drive)


def check_write_after_eod_in_early_warning_zone(drive: Drive, max_bytes: int) -> None:
    """Spacing to end of data past early warning clears the refusal: the next write is written.

    Issue 8: after end of medium a job writes a filemark, spaces to end of data
    (``MTEOM``) and appends its next tape file; st writes that file's first
    write, reports ``EOT`` with it, and refuses the second.
    """
    size = block_size(drive)
    count = write_to_early_warning(drive, max_bytes)
    assert_refused(drive, block(0, count, size))
    drive.weof(1)
    drive.rewind()
    drive.eod()
    assert drive.status().eod
    assert not drive.status().eom, "spacing to end of data clears early warning"
    drive.write(blocks(1, 2, size))  # the first write after MTEOM is written
    assert drive.status().eom
    assert_refused(drive, block(1, 2, size))
    drive.weof(1)
    drive.rewind()
    drive.fsf(1)
    assert read_file(drive) == blocks(1, 2, size)
    drive.rewind()
    assert read_file(drive) == blocks(0, count, size)


def check_withdraw_a_file_cut_by_end_of_medium(drive: Drive, max_bytes: int) -> None:
    """What a backup does with a manifest that end of medium cut short (``JobRecord.withdraw``).

    ``bsfm(2)`` after the refused write closes the cut file and comes back to
    the start of the file before it; spacing over that file's blocks and
    writing a filemark there makes the tape end right after it.
    """
    size = block_size(drive)
    write_files(drive, 1, 2)  # file 0 (a label), file 1 (data)
    count = 0
    with pytest.raises(EndOfMedium):
        while count * size <= max_bytes:
            drive.write(block(2, count, size))
            count += 1
    assert count > 0, "the cut file has no block"
    drive.bsfm(2)
    assert position(drive) == (1, 0)
    drive.fsr(2)
    drive.weof(1)
    assert position(drive) == (2, 0)
    drive.rewind()
    assert read_file(drive) == block(0, 0, size)
    assert read_file(drive) == blocks(1, 2, size)
    assert_no_more_data(drive)


#: Early-warning checks: ``check(drive, max_bytes)`` on a small cartridge,
#: ``max_bytes`` bounding what it takes before early warning.
EOM_CHECKS: list[Callable[[Drive, int], None]] = [
    check_early_warning_alternates,
    check_write_after_eod_in_early_warning_zone,
    check_withdraw_a_file_cut_by_end_of_medium,
]


#: Checks taking only the drive, in a stable order for parametrization.
CHECKS: list[Callable[[Drive], None]] = [
    check_bot_status,
    check_write_then_read_back,
    check_read_returns_empty_at_filemark,
    check_read_through_end_of_data,
    check_eof_and_bot_flags,
    check_fsf_positions,
    check_fsf_past_end_of_data,
    check_bsf_unknown_block,
    check_bsf_past_bot,
    check_bsfm,
    check_eod,
    check_fixed_block_enforced,
    check_fsr_bsr,
    check_write_truncates_later_files,
    check_write_inside_file_truncates_it,
    check_weof_many_makes_empty_files,
    check_rewind_after_write_ends_file,
    check_bsf_after_write_ends_file,
]

#: Checks that close the drive and reopen it: ``check(drive, reopen)``.
REOPEN_CHECKS: list[Callable[[Drive, Callable[[], Drive]], None]] = [
    check_filemark_on_close,
]

