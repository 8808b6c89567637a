"""The virtual drive: the shared drive contract, then what only a virtual drive can show."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytp.tapeio import exitcodes
from pytp.tapeio.drive import UNKNOWN, Drive, ensure_block_size
from pytp.tapeio.errors import (
    BlankTape,
    BlockSizeError,
    ChangerError,
    DriveBusy,
    EndOfMedium,
    MediumError,
    NoMedium,
    PositionUnknown,
    TapeIOError,
    WriteProtected,
)
from pytp.tapeio.virtual_drive import (
    DriveCounters,
    VirtualDrive,
    create_virtual_drive,
    load_tape,
    loaded_tape,
    read_counters,
    unload_tape,
)
from pytp.tapeio.virtual_tape import (
    configure_tape,
    create_virtual_tape,
    default_early_warning,
    read_tape_meta,
    tape_file_path,
)

from . import contract
from .contract import block, blocks, position, read_file, write_files

BS = 4096
MiB = 1024 * 1024


@pytest.fixture
def drive_dir(tmp_path: Path) -> Path:
    return create_virtual_drive(tmp_path / "drive")


@pytest.fixture
def tape_dir(tmp_path: Path) -> Path:
    return create_virtual_tape(tmp_path / "tape", "TST001L9", capacity=256 * MiB)


@pytest.fixture
def loaded(drive_dir: Path, tape_dir: Path) -> Path:
    load_tape(drive_dir, tape_dir)
    return drive_dir


def open_at_bot(path: Path) -> VirtualDrive:
    drive = VirtualDrive(path, name="vd0")
    ensure_block_size(drive, BS)
    drive.rewind()
    return drive


@pytest.fixture
def drive(loaded: Path) -> Iterator[VirtualDrive]:
    d = open_at_bot(loaded)
    yield d
    d.close()


def run_python(code: str, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------
# the shared contract


@pytest.mark.parametrize("check", contract.CHECKS, ids=lambda c: c.__name__)
def test_contract(drive: VirtualDrive, check: Callable[[Drive], None]) -> None:
    check(drive)


@pytest.mark.parametrize("check", contract.REOPEN_CHECKS, ids=lambda c: c.__name__)
def test_contract_reopen(
    drive: VirtualDrive, loaded: Path, check: Callable[[Drive, Callable[[], Drive]], None]
) -> None:
    check(drive, lambda: VirtualDrive(loaded))


@pytest.mark.parametrize(
    "check", [contract.check_end_of_medium, *contract.EOM_CHECKS], ids=lambda c: c.__name__
)
def test_contract_end_of_medium(tmp_path: Path, drive_dir: Path, check: Callable[[Drive, int], None]) -> None:
    tape = create_virtual_tape(tmp_path / "small", "SML001L9", capacity=MiB)
    load_tape(drive_dir, tape)
    with open_at_bot(drive_dir) as d:
        check(d, MiB)


def test_is_a_drive(drive: VirtualDrive) -> None:
    assert isinstance(drive, Drive)


# --------------------------------------------------------------------------
# GNU tar reads the tape files directly


def _tar_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = buffer.getvalue()
    return raw + b"\0" * (-len(raw) % BS)


def test_gnu_tar_lists_and_extracts_a_tape_file(drive: VirtualDrive, tape_dir: Path, tmp_path: Path) -> None:
    label = _tar_bytes({"PYTP-LABEL.json": b'{"label": "TST001"}\n'})
    payload = {"docs/a.txt": b"alpha\n" * 1000, "b.bin": os.urandom(3 * BS + 17)}
    archive = _tar_bytes(payload)
    drive.write(label)
    drive.weof(1)
    for start in range(0, len(archive), 2 * BS):  # streamed in several writes
        drive.write(archive[start : start + 2 * BS])
    drive.close()  # the closing filemark ends file 1

    listing = subprocess.run(
        ["/usr/bin/tar", "-tf", str(tape_file_path(tape_dir, 1))],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    assert sorted(listing) == sorted(payload)
    label_listing = subprocess.run(
        ["/usr/bin/tar", "-tf", str(tape_dir / "file-00000")], capture_output=True, text=True, check=True
    ).stdout.split()
    assert label_listing == ["PYTP-LABEL.json"]
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        ["/usr/bin/tar", "-b", str(BS // 512), "-xf", str(tape_dir / "file-00001"), "-C", str(out)],
        check=True,
    )
    for name, data in payload.items():
        assert (out / name).read_bytes() == data


# --------------------------------------------------------------------------
# busy drives and crashes


def test_second_open_in_same_process_is_busy(drive: VirtualDrive, loaded: Path) -> None:
    with pytest.raises(DriveBusy) as err:
        VirtualDrive(loaded)
    assert f"pid {os.getpid()}" in str(err.value)
    assert "close it" in str(err.value)
    assert err.value.exit_code == exitcodes.EXIT_DRIVE


HOLD_DRIVE = """
import sys
from pytp.tapeio.virtual_drive import VirtualDrive
drive = VirtualDrive(sys.argv[1])
print("ready", flush=True)
sys.stdin.read()
drive.close()
"""


def test_drive_held_by_another_process_is_busy(loaded: Path) -> None:
    holder = run_python(HOLD_DRIVE, str(loaded))
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(DriveBusy) as err:
            VirtualDrive(loaded, name="vd0")
        message = str(err.value)
        assert f"pid {holder.pid}" in message
        assert "-c" in message  # the holder's command line, from /proc
        assert "wait for it to finish or stop it" in message
        with pytest.raises(DriveBusy):
            unload_tape(loaded)  # the robot cannot take a tape from an open drive
    finally:
        holder.communicate("")
    assert holder.returncode == 0
    VirtualDrive(loaded).close()  # free again once the holder closed it


CRASH_WHILE_WRITING = """
import os, sys
from pytp.tapeio.virtual_drive import VirtualDrive
drive = VirtualDrive(sys.argv[1])
drive.set_block_size(4096)
drive.rewind()
drive.write(b"c" * 4096 * 2)
os._exit(0)  # no close: the kernel drops the flock, state.json keeps open_pid
"""


def test_crash_leaves_position_unknown(loaded: Path, tape_dir: Path) -> None:
    crashed = run_python(CRASH_WHILE_WRITING, str(loaded))
    crashed.communicate("")
    assert crashed.returncode == 0
    state = json.loads((loaded / "state.json").read_text())
    assert state["open_pid"] == crashed.pid
    with VirtualDrive(loaded) as d:
        assert position(d) == (UNKNOWN, UNKNOWN)
        with pytest.raises(PositionUnknown, match="rewind first"):
            d.write(b"x" * BS)
        d.rewind()
        assert d.read(4 * BS) == b"c" * 2 * BS  # what reached the tape before the crash
    assert json.loads((loaded / "state.json").read_text())["open_pid"] is None


def test_state_persists_across_close(loaded: Path) -> None:
    with open_at_bot(loaded) as d:
        write_files(d, 1, 1)
        d.rewind()
        d.fsf(1)
    with VirtualDrive(loaded) as d:
        assert d.status().block_size == BS
        assert position(d) == (1, 0)
        assert d.read(BS) == block(1, 0, BS)


def test_open_refuses_a_missing_drive(tmp_path: Path) -> None:
    with pytest.raises(TapeIOError, match="No virtual drive"):
        VirtualDrive(tmp_path / "nowhere")


# --------------------------------------------------------------------------
# loading, unloading, no tape, offline


def test_after_load_position_is_unknown(loaded: Path) -> None:
    with VirtualDrive(loaded) as d:
        d.set_block_size(BS)
        status = d.status()
        assert status.online and not status.bot
        assert (status.file_number, status.block_number) == (UNKNOWN, UNKNOWN)
        for operation in (lambda: d.write(b"x" * BS), lambda: d.fsr(1), lambda: d.bsr(1), lambda: d.weof(1)):
            with pytest.raises(PositionUnknown):
                operation()
        d.eod()  # allowed from anywhere, like rewind
        assert position(d) == (0, 0)


def test_no_tape(drive_dir: Path) -> None:
    with VirtualDrive(drive_dir, name="vd0") as d:
        status = d.status()
        assert not status.online and status.door_open
        assert "DR_OPEN" in status.flags()
        with pytest.raises(NoMedium, match=r"No tape in drive vd0: load one with `pytp load SLOT`"):
            d.rewind()
        with pytest.raises(NoMedium):
            d.read(BS)
        with pytest.raises(NoMedium):
            d.set_block_size(BS)


def test_offline_ejects_but_keeps_the_tape(drive: VirtualDrive, loaded: Path, tape_dir: Path) -> None:
    drive.write(blocks(0, 1, BS))
    drive.offline()  # writes the owed filemark and rewinds first
    assert not drive.status().online
    with pytest.raises(NoMedium, match="ejected"):
        drive.rewind()
    drive.close()
    assert loaded_tape(loaded) == tape_dir.resolve()
    load_tape(loaded, tape_dir)  # pushing the same cartridge back in, like `mt load`
    with open_at_bot(loaded) as d:
        assert read_file(d) == blocks(0, 1, BS)
    assert unload_tape(loaded) == tape_dir.resolve()
    assert loaded_tape(loaded) is None
    with pytest.raises(NoMedium, match="empty"):
        unload_tape(loaded)


def test_load_refuses_a_full_drive_and_a_non_tape(loaded: Path, tmp_path: Path) -> None:
    other = create_virtual_tape(tmp_path / "other", "TST002L9", capacity=MiB)
    with pytest.raises(ChangerError, match="already holds tape TST001L9"):
        load_tape(loaded, other)
    with pytest.raises(TapeIOError, match="not a virtual tape"):
        load_tape(loaded, tmp_path)


def test_missing_tape_directory_is_reported_and_unlocks(loaded: Path, tape_dir: Path) -> None:
    tape_dir.rename(tape_dir.with_name("moved"))
    with pytest.raises(MediumError, match="missing"):
        VirtualDrive(loaded)
    unload_tape(loaded)  # the lock was released, so the robot can still take it
    VirtualDrive(loaded).close()


def test_damaged_tape_is_reported(drive: VirtualDrive, loaded: Path, tape_dir: Path) -> None:
    write_files(drive, 1, 1, 1)
    drive.close()
    tape_file_path(tape_dir, 1).unlink()
    with pytest.raises(MediumError, match=r"damaged.*\[1\]"):
        VirtualDrive(loaded)


# --------------------------------------------------------------------------
# positioning details that st reports and the contract cannot check on tgt


def test_fsr_across_a_filemark(drive: VirtualDrive) -> None:
    write_files(drive, 3, 2)
    drive.rewind()
    with pytest.raises(MediumError, match="filemark reached after 3 of 5 blocks"):
        drive.fsr(5)
    assert position(drive) == (1, 0)
    assert drive.read(BS) == block(1, 0, BS)


def test_bsr_across_the_start_of_a_file(drive: VirtualDrive) -> None:
    write_files(drive, 3, 2)
    drive.rewind()
    drive.fsf(1)
    drive.read(BS)
    with pytest.raises(MediumError, match="filemark reached"):
        drive.bsr(3)
    assert position(drive) == (0, UNKNOWN)  # on the near side of file 0's filemark
    assert drive.read(BS) == b""
    drive.rewind()
    drive.fsr(1)
    with pytest.raises(MediumError, match="beginning of tape"):
        drive.bsr(2)
    assert position(drive) == (0, 0)


def test_fsf_past_end_of_data_positions_at_eod(drive: VirtualDrive) -> None:
    write_files(drive, 1, 1)
    drive.rewind()
    with pytest.raises(MediumError, match="after 2 of 5 filemarks"):
        drive.fsf(5)
    status = drive.status()
    assert (status.file_number, status.block_number) == (2, UNKNOWN)
    assert status.eod
    with pytest.raises(PositionUnknown):
        drive.write(block(2, 0, BS))
    drive.eod()
    assert position(drive) == (2, 0)
    drive.write(block(2, 0, BS))


def test_bsf_past_bot_ends_at_bot(drive: VirtualDrive) -> None:
    write_files(drive, 1, 1)
    with pytest.raises(MediumError, match="beginning of tape"):
        drive.bsf(5)
    assert position(drive) == (0, 0) and drive.status().bot


def test_bsf_lands_before_the_filemark(drive: VirtualDrive) -> None:
    write_files(drive, 2, 1)
    drive.bsf(2)
    assert position(drive) == (0, UNKNOWN)
    with pytest.raises(PositionUnknown):
        drive.write(block(0, 9, BS))
    assert drive.read(BS) == b""  # the filemark that ends file 0 comes next
    assert position(drive) == (1, 0)


def test_reads_at_end_of_data(drive: VirtualDrive, tmp_path: Path) -> None:
    with pytest.raises(BlankTape, match="end of data"):
        drive.read(BS)  # a blank tape: st gets BLANK CHECK at once
    assert position(drive) == (0, UNKNOWN)  # and forgets the block number
    drive.rewind()
    write_files(drive, 1)
    drive.rewind()
    drive.fsf(1)
    assert drive.read(BS) == b""  # first blank check after a filemark reads as empty
    assert drive.status().eod
    assert position(drive) == (1, UNKNOWN)
    with pytest.raises(BlankTape):
        drive.read(BS)
    drive.eod()
    with pytest.raises(BlankTape):
        drive.read(BS)  # after MTEOM st fails the read at once


def test_write_in_the_middle_removes_later_files(drive: VirtualDrive, tape_dir: Path) -> None:
    write_files(drive, 2, 2, 2)
    drive.rewind()
    drive.fsf(1)
    drive.fsr(1)
    drive.write(block(7, 0, BS))
    assert tape_file_path(tape_dir, 1).stat().st_size == 2 * BS
    assert not tape_file_path(tape_dir, 2).exists()
    assert tape_file_path(tape_dir, 1).read_bytes() == block(1, 0, BS) + block(7, 0, BS)


def test_weof_many_creates_empty_files(drive: VirtualDrive, tape_dir: Path) -> None:
    drive.write(blocks(0, 1, BS))
    drive.weof(3)
    assert position(drive) == (3, 0)
    sizes = [tape_file_path(tape_dir, n).stat().st_size for n in range(3)]
    assert sizes == [BS, 0, 0]
    assert not tape_file_path(tape_dir, 3).exists()


def test_close_after_write_writes_one_filemark(drive: VirtualDrive, loaded: Path, tape_dir: Path) -> None:
    drive.write(blocks(0, 2, BS))
    drive.close()
    drive.close()  # a second close changes nothing
    assert read_counters(loaded).filemarks_written == 1
    assert json.loads((loaded / "state.json").read_text())["file"] == 1


# --------------------------------------------------------------------------
# block sizes


def test_variable_block_mode_is_refused(drive: VirtualDrive) -> None:
    drive.set_block_size(0)
    with pytest.raises(BlockSizeError, match="only fixed blocks"):
        drive.write(b"x" * BS)
    with pytest.raises(BlockSizeError, match="only fixed blocks"):
        drive.read(BS)
    drive.rewind()  # positioning still works in variable mode
    assert drive.status().block_size == 0


def test_reading_with_another_block_size_names_both(drive: VirtualDrive, tape_dir: Path) -> None:
    write_files(drive, 2, 1)
    drive.set_block_size(2 * BS)
    drive.rewind()
    with pytest.raises(BlockSizeError) as err:
        drive.read(2 * BS)
    assert f"{BS}-byte blocks" in str(err.value) and str(2 * BS) in str(err.value)
    drive.fsf(1)
    with pytest.raises(BlockSizeError):
        drive.write(b"y" * 2 * BS)  # appending to a 4 KiB tape with 8 KiB blocks
    drive.rewind()
    drive.write(b"z" * 2 * BS)  # rewriting from BOT starts a new tape
    assert read_tape_meta(tape_dir)["block_size"] == 2 * BS
    assert not tape_file_path(tape_dir, 1).exists()


def test_block_size_is_recorded_on_first_write(drive: VirtualDrive, tape_dir: Path) -> None:
    assert read_tape_meta(tape_dir)["block_size"] is None
    drive.weof(1)  # filemarks alone record nothing
    assert read_tape_meta(tape_dir)["block_size"] is None
    drive.rewind()
    drive.write(block(0, 0, BS))
    assert read_tape_meta(tape_dir)["block_size"] == BS


# --------------------------------------------------------------------------
# end of medium, write protection, faults


def test_end_of_medium(drive_dir: Path, tmp_path: Path) -> None:
    """The write that passes early warning is written; the next is refused with nothing written."""
    tape = create_virtual_tape(tmp_path / "tiny", "TNY001L9", capacity=40 * BS, early_warning=8 * BS)
    load_tape(drive_dir, tape)
    with open_at_bot(drive_dir) as d:
        d.write(blocks(0, 32, BS))  # exactly up to the early-warning point: no warning yet
        assert not d.status().eom
        d.write(blocks(0, 3, BS, first=32))  # passes it: written, and reported
        assert d.status().eom
        with pytest.raises(EndOfMedium, match="TNY001L9 is full") as err:
            d.write(block(0, 35, BS))
        assert err.value.exit_code == exitcodes.EXIT_TAPE_FULL
        assert err.value.bytes_written == 0  # type: ignore[attr-defined]  # as StDrive reports
        assert tape_file_path(tape, 0).stat().st_size == 35 * BS  # nothing of it written
        assert position(d) == (0, 35)
        assert d.status().eom and d.status().eod  # st: ST_EOD_1 shows EOD; StDrive keeps EOT
        d.bsr(1)
        assert not d.status().eom  # reported until the tape moves
        d.fsr(1)
        d.write(block(0, 35, BS))  # the first write after a movement is written
        d.weof(1)  # a filemark always fits
        assert position(d) == (1, 0)
    with open_at_bot(drive_dir) as d:
        assert not d.status().eom  # a position alone is not a warning: st reports EOT after a write
        assert read_file(d, chunk_blocks=64) == blocks(0, 36, BS)


def test_spacing_to_end_of_data_does_not_rearm_the_refusal(drive_dir: Path, tmp_path: Path) -> None:
    """Issue 8: after end of medium, eod() then a write: the write goes to tape (as st after MTEOM)."""
    tape = create_virtual_tape(tmp_path / "tiny", "TNY003L9", capacity=40 * BS, early_warning=8 * BS)
    load_tape(drive_dir, tape)
    with open_at_bot(drive_dir) as d:
        d.write(blocks(0, 33, BS))
        with pytest.raises(EndOfMedium):
            d.write(block(0, 33, BS))
        d.weof(1)
    with open_at_bot(drive_dir) as d:  # a later command appends the next tape file
        d.eod()
        d.write(blocks(1, 2, BS))
        assert d.status().eom
        d.weof(1)
    assert tape_file_path(tape, 1).stat().st_size == 2 * BS


def test_injected_end_of_medium_has_no_early_warning_zone(drive_dir: Path, tmp_path: Path) -> None:
    """faults.end_of_medium_at: the write that reaches it is cut short; nothing fits after."""
    tape = create_virtual_tape(tmp_path / "tiny", "TNY004L9", capacity=40 * BS, early_warning=8 * BS)
    configure_tape(tape, end_of_medium_at=10 * BS + 100)
    load_tape(drive_dir, tape)
    with open_at_bot(drive_dir) as d:
        assert d.capacity() == 40 * BS  # the tape claims its nominal size
        d.write(blocks(0, 8, BS))
        with pytest.raises(EndOfMedium, match="physical end") as err:
            d.write(blocks(0, 4, BS, first=8))
        assert err.value.bytes_written == 2 * BS  # type: ignore[attr-defined]  # the whole blocks that fit
        assert position(d) == (0, 10)
        for _ in range(2):  # refused, then tried again: still no room
            with pytest.raises(EndOfMedium) as again:
                d.write(block(0, 10, BS))
            assert again.value.bytes_written == 0  # type: ignore[attr-defined]
        d.weof(1)  # a filemark still closes the file
        assert position(d) == (1, 0)
    assert tape_file_path(tape, 0).stat().st_size == 10 * BS
    configure_tape(tape, end_of_medium_at=0)
    assert "end_of_medium_at" not in read_tape_meta(tape)["faults"]


def test_default_early_warning() -> None:
    assert default_early_warning(4 * 1024**3) == 32 * MiB
    assert default_early_warning(100 * MiB) == 2 * MiB
    assert default_early_warning(MiB) == 64 * 1024
    assert 0 < default_early_warning(4 * BS) < 4 * BS


def test_create_virtual_tape_checks_its_arguments(tmp_path: Path, tape_dir: Path) -> None:
    with pytest.raises(TapeIOError, match="not empty"):
        create_virtual_tape(tape_dir, "TST009L9", capacity=MiB)
    with pytest.raises(ValueError):
        create_virtual_tape(tmp_path / "t1", "TST009L9", capacity=0)
    with pytest.raises(ValueError):
        create_virtual_tape(tmp_path / "t2", "TST009L9", capacity=MiB, early_warning=MiB)
    with pytest.raises(ValueError):
        create_virtual_tape(tmp_path / "t3", "a/b", capacity=MiB)
    create_virtual_drive(tmp_path / "d")
    with pytest.raises(TapeIOError, match="already exists"):
        create_virtual_drive(tmp_path / "d")


def test_write_protected_tape(drive: VirtualDrive, loaded: Path, tape_dir: Path) -> None:
    write_files(drive, 1)
    drive.close()
    configure_tape(tape_dir, write_protected=True)
    with open_at_bot(loaded) as d:
        assert d.status().write_protected
        assert "WR_PROT" in d.status().flags()
        with pytest.raises(WriteProtected, match="TST001L9.*write-protected"):
            d.write(block(5, 0, BS))
        with pytest.raises(WriteProtected):
            d.weof(1)
        assert read_file(d) == blocks(0, 1, BS)  # reading is fine


def test_injected_read_fault(drive: VirtualDrive, loaded: Path, tape_dir: Path) -> None:
    write_files(drive, 5)
    drive.close()
    configure_tape(tape_dir, read_errors=[(0, 2)])
    with open_at_bot(loaded) as d:
        assert d.read(2 * BS) == blocks(0, 2, BS)
        with pytest.raises(MediumError, match="I/O error at file 0 block 2"):
            d.read(2 * BS)
        assert position(d) == (0, UNKNOWN)
        assert d.read(BS) == block(0, 3, BS)  # the head moved past the bad block
        d.rewind()
        with pytest.raises(MediumError):
            d.read(5 * BS)  # a read spanning the bad block returns nothing


def test_injected_write_fault(drive_dir: Path, tape_dir: Path) -> None:
    configure_tape(tape_dir, write_errors=[(0, 3)])
    load_tape(drive_dir, tape_dir)
    with open_at_bot(drive_dir) as d:
        with pytest.raises(MediumError, match="I/O error at file 0 block 3"):
            d.write(blocks(0, 5, BS))
        assert tape_file_path(tape_dir, 0).stat().st_size == 3 * BS
        assert position(d) == (0, UNKNOWN)
    assert read_counters(drive_dir).blocks_written == 3


# --------------------------------------------------------------------------
# counters and speed


def test_counters(loaded: Path) -> None:
    with open_at_bot(loaded) as d:  # rewind 1
        d.write(blocks(0, 3, BS))
        d.weof(1)
        d.write(blocks(1, 2, BS))
        d.weof(1)
        d.rewind()  # rewind 2
        d.fsf(1)
        assert read_file(d) == blocks(1, 2, BS)
        assert read_counters(loaded).fsf == 1  # saved at positioning, readable while open
        d.rewind()  # rewind 3
        d.fsr(1)
        d.bsr(1)
        d.fsf(1)
        d.bsfm(1)  # one bsf and one fsf, as st sends them
        assert position(d) == (1, 0)
        d.retension()
    assert read_counters(loaded) == DriveCounters(
        blocks_read=2,
        bytes_read=2 * BS,
        blocks_written=5,
        bytes_written=5 * BS,
        filemarks_written=2,
        fsf=3,
        bsf=1,
        fsr=1,
        bsr=1,
        rewinds=3,
        retensions=1,
        loads=1,
    )


def test_restoring_one_file_reads_only_its_blocks(drive: VirtualDrive, loaded: Path) -> None:
    write_files(drive, 8, 3, 8)
    drive.rewind()
    before = drive.counters
    drive.fsf(1)
    assert read_file(drive) == blocks(1, 3, BS)
    after = drive.counters
    assert after.blocks_read - before.blocks_read == 3
    assert after.fsf - before.fsf == 1


def test_large_transfers_move_many_blocks_per_call(drive: VirtualDrive) -> None:
    """A 1 MiB write and a 4 MiB read are one transfer each, not one per block (timing: bench/)."""
    chunks = [os.urandom(MiB) for _ in range(4)] * 16
    before = drive.counters
    for chunk in chunks:
        drive.write(chunk)
    drive.weof(1)
    drive.rewind()
    reads = []
    while data := drive.read(4 * MiB):
        reads.append(data)
    assert [len(r) for r in reads] == [4 * MiB] * 16  # every read filled: 1,024 blocks per call
    assert b"".join(reads) == b"".join(chunks)
    after = drive.counters
    assert after.blocks_written - before.blocks_written == 64 * MiB // BS
    assert after.blocks_read - before.blocks_read == 64 * MiB // BS
    assert data == b""


def test_writes_alternate_in_the_early_warning_zone_until_the_physical_end(drive_dir: Path, tmp_path: Path) -> None:
    """As st: refused, written, refused, ... and at the physical end only what fits."""
    tape = create_virtual_tape(tmp_path / "tiny", "TNY002L9", capacity=40 * BS, early_warning=8 * BS)
    load_tape(drive_dir, tape)
    with open_at_bot(drive_dir) as d:
        d.write(blocks(0, 33, BS))  # passes the early-warning point (32 blocks)
        with pytest.raises(EndOfMedium, match="early-warning point"):
            d.write(blocks(0, 2, BS, first=33))
        d.write(blocks(0, 4, BS, first=33))  # the trailer st allows after ENOSPC
        with pytest.raises(EndOfMedium, match="early-warning point"):
            d.write(block(0, 37, BS))
        with pytest.raises(EndOfMedium, match="physical end") as err:
            d.write(blocks(0, 5, BS, first=37))
        assert err.value.bytes_written == 3 * BS  # type: ignore[attr-defined]
        d.weof(1)
        assert position(d) == (1, 0)
    assert tape_file_path(tape, 0).stat().st_size == 40 * BS
