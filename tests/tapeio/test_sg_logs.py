"""The sg_logs parser on real transcripts, and the runner's "absent, not an error" rule."""

from __future__ import annotations

import shutil

import pytest

from pytp.tapeio.sg_logs import (
    READ_ERROR_COUNTERS,
    VOLUME_STATISTICS,
    WRITE_ERROR_COUNTERS,
    parse_error_counters,
    parse_sg_logs,
    parse_volume_statistics,
    read_log_page,
    read_volume_statistics,
    snake_key,
)
from tests.tapeio.transcripts import FIXTURES, fixture


def test_every_sg_logs_fixture_is_parsed() -> None:
    fixture("SOURCES.md")
    names = {p.name for p in FIXTURES.glob("sg_logs-*.txt")}
    assert names == {
        "sg_logs-a--ibm-lto10.txt",
        "sg_logs-p02--mhvtl-ibm-ult3580-td6.txt",
        "sg_logs-p0c--mhvtl-ibm-ult3580-td6.txt",
        "sg_logs-p2e--ibm-lto10.txt",
    }


def test_all_pages_of_an_lto10() -> None:
    logs = parse_sg_logs(fixture("sg_logs-a--ibm-lto10.txt"))
    assert logs.device == "IBM ULT3580-TDA T3S0"
    assert [p.code for p in logs.pages] == [
        0x00, 0x02, 0x03, 0x06, 0x0C, 0x11, 0x12, 0x14, 0x16, 0x17, 0x1A, 0x1B, 0x2E,
        0x30, 0x31, 0x32, 0x33, 0x34, 0x37, 0x38, 0x39, 0x3B, 0x3C, 0x3D,
    ]
    assert logs.page(0x17).title == "Volume statistics page (ssc-4), subpage=0"
    assert logs.page(0x06).values == {"non_medium_error_count": 0}
    assert logs.page(0x31).values["main_partition_remaining_capacity_in_mib"] == 121187
    # Pages sg_logs could not decode are listed, with nothing in them.
    assert logs.page(0x33).values == {}


def test_volume_statistics_of_an_lto10() -> None:
    stats = parse_volume_statistics(fixture("sg_logs-a--ibm-lto10.txt"))
    assert stats is not None
    assert stats["volume_barcode"] == "IBM015LA"
    assert stats["volume_serial_number"] == "T5KVFD2NT4"  # padded with spaces on the drive
    assert stats["volume_manufacturer"] == "IBM"
    assert stats["volume_license_code"] == "0707"  # a code, not the number 707
    assert stats["volume_personality"] == "LTOLA62"
    assert stats["tape_lot_identifier"] == "*2282195"
    assert stats["page_valid"] == 1
    assert stats["thread_count"] == 11
    assert stats["lifetime_megabytes_written"] == 1811222
    assert stats["lifetime_megabytes_read"] == 558
    assert stats["last_mount_megabytes_written"] == 9
    assert stats["total_native_capacity_mb"] == 27966101
    assert stats["total_used_native_capacity_mb"] == 1418152
    assert stats["total_write_retries"] == 4
    assert stats["total_unrecovered_write_errors"] == 0
    assert stats["write_protect"] == 0
    assert stats["worm"] == 0
    assert stats["beginning_of_medium_passes"] == 135
    assert stats["native_capacity_partition_s_mb"] == {0: 127118, 1: 27838983}
    assert stats["used_native_capacity_partition_s_mb"] == {0: 39, 1: 1418113}
    assert stats["remaining_native_capacity_partition_s_mb"] == {0: 127074, 1: 26439429}
    # A name sg_logs wraps onto a second line is joined.
    assert stats["logical_position_of_first_unencrypted_logical_object_after_first_encrypted_logical_object"] == {
        0: 0xFFFFFFFFFFFF, 1: 0xFFFFFFFFFFFF,
    }
    # "Reserved parameter code (0x18), payload in hex" only introduces a hex dump.
    assert not any("hex" in key for key in stats)


def test_error_counters_of_an_lto10() -> None:
    counters = parse_error_counters(fixture("sg_logs-a--ibm-lto10.txt"))
    assert set(counters) == {"write", "read"}
    assert counters["write"]["total_bytes_processed"] == 262144
    assert counters["write"]["total_uncorrected_errors"] == 0
    assert counters["write"]["reserved_or_vendor_specific_0x8001"] == 0
    assert counters["read"]["total_bytes_processed"] == 0
    assert counters["read"]["errors_corrected_without_substantial_delay"] == 0
    assert "reserved_or_vendor_specific_0x8001" not in counters["read"]


def test_write_error_page_alone_from_mhvtl() -> None:
    text = fixture("sg_logs-p02--mhvtl-ibm-ult3580-td6.txt")
    logs = parse_sg_logs(text)
    assert logs.device == "IBM ULT3580-TD6 2160"
    assert [p.code for p in logs.pages] == [WRITE_ERROR_COUNTERS]
    assert logs.page(WRITE_ERROR_COUNTERS).values == {
        "errors_corrected_without_substantial_delay": 0,
        "errors_corrected_with_possible_delays": 0,
        "total_rewrites_or_rereads": 0,
        "total_errors_corrected": 0,
        "total_times_correction_algorithm_processed": 0,
        "total_bytes_processed": 0,
        "total_uncorrected_errors": 0,
        "reserved_or_vendor_specific_0x8000": 0,
        "reserved_or_vendor_specific_0x8001": 0,
        "reserved_or_vendor_specific_0x8002": 0,
    }
    assert parse_error_counters(text).keys() == {"write"}
    assert logs.page(READ_ERROR_COUNTERS) is None
    assert parse_volume_statistics(text) is None


def test_sequential_access_page_from_mhvtl() -> None:
    logs = parse_sg_logs(fixture("sg_logs-p0c--mhvtl-ibm-ult3580-td6.txt"))
    page = logs.page(0x0C)
    assert page is not None
    assert page.values["native_capacity_from_bop_to_eod"] == "500 MB"
    assert page.values["cleaning_action_not_required_or_completed"] is True
    assert parse_volume_statistics(fixture("sg_logs-p0c--mhvtl-ibm-ult3580-td6.txt")) is None


def test_tape_alert_page_alone() -> None:
    logs = parse_sg_logs(fixture("sg_logs-p2e--ibm-lto10.txt"))
    assert [p.code for p in logs.pages] == [0x2E]
    values = logs.page(0x2E).values
    assert len(values) == 64
    assert set(values.values()) == {0}
    assert values["cleaning_required"] == 0
    assert values["worm_medium_overwrite_attempted"] == 0


def test_snake_key() -> None:
    assert snake_key("Total native capacity [MB]") == "total_native_capacity_mb"
    assert snake_key("Reserved or vendor specific [0x8000]") == "reserved_or_vendor_specific_0x8000"


def test_missing_sg_logs_means_no_statistics() -> None:
    assert read_volume_statistics("/dev/nst0", sg_logs="sg_logs-not-installed") is None


def test_a_device_that_does_not_answer_means_no_statistics() -> None:
    # The real sg_logs against /dev/null fails (not a SCSI device): absent, not an error.
    if shutil.which("sg_logs") is None:
        pytest.skip("sg3-utils is not installed (apt install sg3-utils)")
    assert read_volume_statistics("/dev/null") is None
    assert read_log_page("/dev/null", WRITE_ERROR_COUNTERS) is None
    assert VOLUME_STATISTICS == 0x17
