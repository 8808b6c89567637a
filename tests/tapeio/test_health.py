"""Drive health: the TapeAlert page parser on a real transcript, DriveHealth, and the
virtual drive's health set through its fault configuration (drive and tape)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytp.tapeio.errors import DriveError
from pytp.tapeio.health import (
    CRITICAL,
    INFO,
    WARNING,
    DriveHealth,
    ErrorCounters,
    counters_from_values,
    tapealert_flag,
)
from pytp.tapeio.sg_logs import (
    WRITE_ERROR_COUNTERS,
    page_values,
    parse_drive_health,
    parse_tapealert,
    read_drive_health,
)
from pytp.tapeio.st_drive import StDrive, sg_device
from pytp.tapeio.virtual_drive import (
    VirtualDrive,
    clear_cleaning_request,
    configure_drive,
    create_virtual_drive,
    load_tape,
    read_health,
)
from pytp.tapeio.virtual_tape import configure_tape, create_virtual_tape
from tests.tapeio.transcripts import fixture

P2E = "sg_logs-p2e--ibm-lto10.txt"
BLOCK = 512 * 1024  # the default block size


def _set_line(text: str, index: int) -> str:
    """The transcript with the ``index``-th flag line (0-based) turned to 1."""
    lines = text.splitlines(keepends=True)
    flag_lines = [i for i, line in enumerate(lines) if line.startswith("  ") and not line.startswith("   ")]
    assert len(flag_lines) == 64
    i = flag_lines[index]
    assert lines[i].rstrip().endswith(": 0")
    lines[i] = lines[i].rstrip()[:-1] + "1\n"
    return "".join(lines)


def test_lto10_tapealert_page_has_no_flag_set() -> None:
    assert parse_tapealert(fixture(P2E)) == ()


def test_each_of_the_64_lines_is_its_own_flag_number() -> None:
    """Line n of the page is parameter code n: every sg_logs name maps to the right flag."""
    text = fixture(P2E)
    for index in range(64):
        assert parse_tapealert(_set_line(text, index)) == (index + 1,), index


def test_named_flags_on_the_real_page() -> None:
    text = fixture(P2E)
    text = text.replace("  Cleaning required: 0", "  Cleaning required: 1")
    text = text.replace("  Cleaning requested: 0", "  Cleaning requested: 1")
    text = text.replace("  Media: 0", "  Media: 1")
    text = text.replace("  Reserved parameter code 0x40, flag: 0", "  Reserved parameter code 0x40, flag: 1")
    assert parse_tapealert(text) == (4, 20, 21, 64)


def test_tapealert_in_all_pages_output_and_absent_page() -> None:
    assert parse_tapealert(fixture("sg_logs-a--ibm-lto10.txt")) == ()
    assert parse_tapealert(fixture("sg_logs-p02--mhvtl-ibm-ult3580-td6.txt")) is None


def test_error_counters_from_real_pages() -> None:
    write = counters_from_values(page_values(fixture("sg_logs-a--ibm-lto10.txt"), WRITE_ERROR_COUNTERS))
    assert write == ErrorCounters(corrected=0, uncorrected=0, bytes_processed=262144)
    assert counters_from_values(None) is None


def test_health_of_all_pages_of_an_lto10() -> None:
    health = parse_drive_health(fixture("sg_logs-a--ibm-lto10.txt"))
    assert health.available and health.tapealert == ()
    assert health.write == ErrorCounters(corrected=0, uncorrected=0, bytes_processed=262144)
    assert health.read == ErrorCounters(corrected=0, uncorrected=0, bytes_processed=0)
    assert health.cleaning_required is False and not health.needs_cleaning
    assert health.volume["lifetime_megabytes_written"] == 1811222  # 0x17
    assert health.volume["maximum_native_capacity_in_device_object_buffer_mb"] == 3137  # 0x0C, "3137 MB"


def test_sequential_access_page_asking_for_cleaning() -> None:
    text = fixture("sg_logs-p0c--mhvtl-ibm-ult3580-td6.txt")
    assert parse_drive_health(text).volume["native_capacity_from_bop_to_eod_mb"] == 500
    wants = parse_drive_health(text.replace("Cleaning action not required (or completed)", "Cleaning action required"))
    assert wants.cleaning_required is True and wants.needs_cleaning and wants.tapealert == ()
    assert parse_drive_health(fixture(P2E)).cleaning_required is None


def test_table_rows() -> None:
    assert (tapealert_flag(20).name, tapealert_flag(20).severity) == ("Clean now", CRITICAL)
    assert (tapealert_flag(21).name, tapealert_flag(21).severity) == ("Clean periodic", WARNING)
    assert tapealert_flag(19).severity == INFO
    assert tapealert_flag(42).name == "Obsolete (2Ah)"
    assert tapealert_flag(62).name == "Reserved (3Eh)"


def test_drive_health_summary() -> None:
    healthy = DriveHealth()
    assert not healthy.needs_cleaning and healthy.worst is None
    health = DriveHealth(tapealert=(1, 21), write=ErrorCounters(3, 1, 100))
    assert health.needs_cleaning
    assert health.worst == WARNING
    assert DriveHealth(tapealert=(19, 20)).worst == CRITICAL
    assert health.to_dict() == {
        "available": True,
        "tapealert": [
            {"number": 1, "name": "Read warning", "severity": WARNING},
            {"number": 21, "name": "Clean periodic", "severity": WARNING},
        ],
        "needs_cleaning": True,
        "cleaning_required": None,
        "write_errors": {"corrected": 3, "uncorrected": 1, "bytes_processed": 100},
        "read_errors": None,
        "volume": {},
    }


def test_read_drive_health_without_sg_logs_is_unavailable() -> None:
    health = read_drive_health("/dev/nst0", sg_logs="sg_logs-not-installed")
    assert health == DriveHealth(available=False)


def test_sg_device_found_through_sysfs(tmp_path: Path) -> None:
    """The sysfs layout of an st device and its SCSI generic sibling, as a directory tree."""
    (tmp_path / "nst0" / "device" / "scsi_generic" / "sg3").mkdir(parents=True)
    assert sg_device("/dev/nst0", sysfs=str(tmp_path)) == "/dev/sg3"
    assert sg_device("/dev/nst1", sysfs=str(tmp_path)) is None


def test_st_drive_health_when_sg_logs_gets_no_answer() -> None:
    """``/dev/null`` has no sg sibling in sysfs and answers no LOG SENSE: health is unavailable."""
    assert StDrive("/dev/null", "lto1").health() == DriveHealth(available=False)


def test_st_drive_health_never_touches_a_rewinding_node(tmp_path: Path) -> None:
    """Without an sg node, sg_logs would open the st node itself; closing /dev/st0 rewinds the tape."""
    node = tmp_path / "st0"
    try:
        os.mknod(node, 0o600 | 0o020000, os.makedev(9, 0))  # S_IFCHR, st major, rewinding minor
    except OSError as err:
        pytest.skip(f"cannot create a device node here ({err.strerror})")
    with pytest.raises(DriveError, match="rewinding node"):
        StDrive(node, "lto1").health()


# --- the virtual drive -------------------------------------------------------------------


@pytest.fixture
def drive_and_tape(tmp_path: Path) -> tuple[Path, Path]:
    drive = create_virtual_drive(tmp_path / "drive")
    tape = create_virtual_tape(tmp_path / "tape", "HLT001L9", 64 * BLOCK)
    return drive, tape


def test_virtual_drive_reports_drive_and_tape_faults(drive_and_tape: tuple[Path, Path]) -> None:
    drive_path, tape = drive_and_tape
    configure_drive(drive_path, tapealert=[20], error_counters={"read": {"corrected": 2}})
    assert read_health(drive_path).tapealert == (20,)  # reported with no tape too
    configure_tape(tape, tapealert=[4, 7], error_counters={"write": {"corrected": 5, "uncorrected": 1}})
    load_tape(drive_path, tape)
    with VirtualDrive(drive_path, name="v0") as drive:
        drive.rewind()
        drive.set_block_size(BLOCK)
        drive.write(b"x" * 2 * BLOCK)
        health = drive.health()
    assert health.tapealert == (4, 7, 20)
    assert health.needs_cleaning
    assert health.write == ErrorCounters(corrected=5, uncorrected=1, bytes_processed=2 * BLOCK)
    assert health.read == ErrorCounters(corrected=2, uncorrected=0, bytes_processed=0)
    assert read_health(drive_path) == health  # from the state files, as another process sees it


def test_cleaning_clears_only_the_cleaning_flags(drive_and_tape: tuple[Path, Path]) -> None:
    drive_path, _ = drive_and_tape
    configure_drive(drive_path, tapealert=[21, 3, 20])
    clear_cleaning_request(drive_path)
    assert read_health(drive_path).tapealert == (3,)


@pytest.mark.parametrize(
    "faults",
    [{"tapealert": [0]}, {"tapealert": [65]}, {"error_counters": {"both": {"corrected": 1}}},
     {"error_counters": {"read": {"corrected": -1}}}, {"error_counters": {"read": {"soft": 1}}}],
)
def test_bad_health_faults_are_refused(drive_and_tape: tuple[Path, Path], faults: dict) -> None:
    drive_path, tape = drive_and_tape
    with pytest.raises(ValueError):
        configure_drive(drive_path, **faults)
    with pytest.raises(ValueError):
        configure_tape(tape, **faults)
