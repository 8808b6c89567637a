"""The ``mt status`` parser (mt-st and GNU mt) and mt's error lines, on real transcripts."""

from __future__ import annotations

import errno

import pytest

from pytp.tapeio.drive import UNKNOWN, DriveStatus
from pytp.tapeio.errors import DriveBusy, MediumError, NoMedium
from pytp.tapeio.mt_status import GNU, MT_ST, MtError, MtStatus, parse_mt_error, parse_mt_status
from tests.tapeio.transcripts import FIXTURES, fixture

# file: (file, block, block size, density, density name, gstat, flags)
MT_ST_CASES: dict[str, tuple[int, int, int, int, str, int, set[str]]] = {
    "mt-status--hp-lto5-no-tape-dr-open.txt": (-1, -1, 0, 0x0, "default", 0x50000, {"DR_OPEN", "IM_REP_EN"}),
    "mt-status--hp-lto7-bot.txt": (0, 0, 0, 0x5C, "no translation", 0x41010000, {"BOT", "ONLINE", "IM_REP_EN"}),
    "mt-status--hp-lto7-file1-eof.txt": (1, 0, 0, 0x5C, "no translation", 0x81010000, {"EOF", "ONLINE", "IM_REP_EN"}),
    "mt-status--hp-lto7-file3-eof.txt": (3, 0, 0, 0x5C, "no translation", 0x81010000, {"EOF", "ONLINE", "IM_REP_EN"}),
    "mt-status--ibm-lto10-library-drive-no-tape.txt": (-1, -1, 0, 0x0, "default", 0x10000, {"IM_REP_EN"}),
    "mt-status--ibm-lto5-after-write-eof.txt": (1, 0, 0, 0x58, "no translation", 0x81010000,
                                                {"EOF", "ONLINE", "IM_REP_EN"}),
    "mt-status--ibm-lto5-no-tape-dr-open.txt": (-1, -1, 0, 0x0, "default", 0x50000, {"DR_OPEN", "IM_REP_EN"}),
    "mt-status--mhvtl-ibm-ult3580-td6-fixed-512k-file22-eof.txt": (22, 0, 524288, 0x5A, "LTO-6", 0x81010000,
                                                                  {"EOF", "ONLINE", "IM_REP_EN"}),
    "tgt-vtl--mt-status-no-tape.txt": (-1, -1, 0, 0x0, "default", 0x50000, {"DR_OPEN", "IM_REP_EN"}),
    "tgt-vtl--mt-status-bot-fixed-512k.txt": (-1, -1, 524288, 0x0, "default", 0x1010000, {"ONLINE", "IM_REP_EN"}),
    "tgt-vtl--mt-status-after-two-writes.txt": (-1, 0, 524288, 0x0, "default", 0x81010000,
                                                {"EOF", "ONLINE", "IM_REP_EN"}),
    "tgt-vtl--mt-status-after-fsf1.txt": (1, 0, 524288, 0x0, "default", 0x81010000, {"EOF", "ONLINE", "IM_REP_EN"}),
}
GNU_CASES = {
    "mt-status-gnu--ibm-lto8-hh8-bot.txt": 0,
    "mt-status-gnu--ibm-lto8-hh8-after-fsf1.txt": 1,
}


def test_every_mt_status_fixture_has_a_case() -> None:
    fixture("SOURCES.md")
    present = {p.name for p in FIXTURES.glob("mt-status*.txt")} | {
        p.name for p in FIXTURES.glob("tgt-vtl--mt-status*.txt")
    }
    assert present == set(MT_ST_CASES) | set(GNU_CASES)


@pytest.mark.parametrize("name", sorted(MT_ST_CASES))
def test_mt_st_status(name: str) -> None:
    file_number, block_number, block_size, density, density_name, gstat, flags = MT_ST_CASES[name]
    status = parse_mt_status(fixture(name))
    assert status == MtStatus(
        dialect=MT_ST,
        file_number=file_number,
        block_number=block_number,
        block_size=block_size,
        density=density,
        density_name=density_name,
        partition=0,
        soft_errors=0,
        gstat=gstat,
        flags=frozenset(flags),
        drive_type="SCSI 2",
    )


def test_no_tape_as_drive_status() -> None:
    assert parse_mt_status(fixture("tgt-vtl--mt-status-no-tape.txt")).to_drive_status() == DriveStatus(
        online=False, file_number=UNKNOWN, block_number=UNKNOWN, block_size=0, door_open=True
    )


def test_library_drive_without_tape_is_offline_but_door_not_open() -> None:
    status = parse_mt_status(fixture("mt-status--ibm-lto10-library-drive-no-tape.txt"))
    assert status.online is False
    assert status.to_drive_status() == DriveStatus(online=False, door_open=False)


def test_bot() -> None:
    drive = parse_mt_status(fixture("mt-status--hp-lto7-bot.txt")).to_drive_status()
    assert drive == DriveStatus(online=True, file_number=0, block_number=0, block_size=0, bot=True)
    assert drive.flags() == ["BOT", "ONLINE"]


def test_tgt_after_load_position_unknown_but_block_size_set() -> None:
    drive = parse_mt_status(fixture("tgt-vtl--mt-status-bot-fixed-512k.txt")).to_drive_status()
    assert drive == DriveStatus(online=True, file_number=UNKNOWN, block_number=UNKNOWN, block_size=524288)


def test_tgt_after_writes_from_unknown_position() -> None:
    drive = parse_mt_status(fixture("tgt-vtl--mt-status-after-two-writes.txt")).to_drive_status()
    assert (drive.file_number, drive.block_number, drive.eof, drive.bot) == (UNKNOWN, 0, True, False)


def test_fixed_block_mhvtl_file22() -> None:
    drive = parse_mt_status(fixture("mt-status--mhvtl-ibm-ult3580-td6-fixed-512k-file22-eof.txt")).to_drive_status()
    assert (drive.file_number, drive.block_number, drive.block_size, drive.eof) == (22, 0, 524288, True)


@pytest.mark.parametrize(("name", "file_number"), sorted(GNU_CASES.items()))
def test_gnu_mt_status(name: str, file_number: int) -> None:
    status = parse_mt_status(fixture(name))
    # drive status = 1577058304 = 0x5E000000: density 0x5e (LTO-8), variable block size.
    assert status == MtStatus(
        dialect=GNU, file_number=file_number, block_number=0, block_size=0, density=0x5E, drive_type="114"
    )
    assert status.online is None
    with pytest.raises(ValueError, match="GNU mt does not print the status bits"):
        status.to_drive_status()


def test_bits_that_disagree_with_their_hex_are_refused() -> None:
    text = fixture("mt-status--hp-lto7-bot.txt").replace(" BOT ONLINE", " EOF ONLINE")
    with pytest.raises(ValueError, match="disagree"):
        parse_mt_status(text)


def test_error_line_is_not_a_status() -> None:
    with pytest.raises(ValueError, match="not mt status output"):
        parse_mt_status(fixture("mt-error--mhvtl-stk-l700-drive-no-medium-found.txt"))


@pytest.mark.parametrize(
    ("name", "device", "code", "error_class"),
    [
        ("mt-error--ibm-lto5-device-busy.txt", "/dev/tape/by-id/scsi-1IBM_ULT3580-TD5_1497199456-nst",
         errno.EBUSY, DriveBusy),
        ("mt-error--mhvtl-stk-l700-drive-no-medium-found.txt", "/dev/nst0", errno.ENOMEDIUM, NoMedium),
        ("mt-error--hp-dat72-input-output-error.txt", "/dev/st1", errno.EIO, MediumError),
        ("tgt-vtl--mt-error-tell-unsupported.txt", "/dev/nst0", errno.EIO, MediumError),
    ],
)
def test_mt_errors(name: str, device: str, code: int, error_class: type) -> None:
    error = parse_mt_error(fixture(name))
    assert error is not None
    assert (error.device, error.errno) == (device, code)
    assert type(error.to_tape_error()) is error_class


def test_unknown_error_text_keeps_the_message() -> None:
    assert parse_mt_error("/dev/nst0: Something new\n") == MtError("/dev/nst0", "Something new", None)
    assert parse_mt_error("File number=0, block number=0, partition=0.\n") is None
