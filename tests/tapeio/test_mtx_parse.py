"""parse_mtx_status and the mtx error classifier, on real transcripts.

Every ``mtx-status*`` and ``tgt-vtl--mtx-status*`` fixture has its own test
with concrete values; ``test_every_status_fixture_has_a_test`` fails when a new
transcript is added without one.  Variants no real transcript shows
(``AlternateVolumeTag``, ``Unknown Storage Element Loaded``) are built from the
printf formats in mtx.c's ``Status()`` and say so.
"""

from __future__ import annotations

import pytest

from pytp.tapeio.changer import ChangerStatus
from pytp.tapeio.errors import ChangerError
from pytp.tapeio.mtx_parse import (
    DESTINATION_FULL,
    DRIVE_EMPTY,
    DRIVE_FULL,
    ELEMENT_STATUS_FAILED,
    ILLEGAL_REQUEST,
    INVALID_ELEMENT,
    MOVE_FAILED,
    NO_DEVICE,
    NOT_A_CHANGER,
    NOT_READY,
    PERMISSION_DENIED,
    REMOVAL_PREVENTED,
    SOURCE_EMPTY,
    UNKNOWN,
    UNKNOWN_SOURCE,
    MtxHeader,
    SenseData,
    classify_mtx_error,
    parse_mtx_header,
    parse_mtx_status,
    parse_request_sense,
)
from tests.tapeio.transcripts import FIXTURES, fixture


def full_slots(status: ChangerStatus) -> dict[int, str | None]:
    return {s.number: s.barcode for s in status.slots if s.full}


def ie_slots(status: ChangerStatus) -> list[int]:
    return [s.number for s in status.slots if s.import_export]


TESTED = {
    "tgt-vtl--mtx-status-empty-drives.txt",
    "tgt-vtl--mtx-status-drive0-loaded-from-slot2.txt",
    "tgt-vtl--mtx-status-after-transfer.txt",
    "mtx-status--bareos-systemtest-2drive-24slot-4ie-loadedboth.txt",
    "mtx-status--ibm-33614lx-2x-lto3-36ie-freebsd-pass.txt",
    "mtx-status--mhvtl-spectra-python-1.txt",
    "mtx-status--tandberg-storageloader-lto5-1.txt",
    "mtx-status--unknown-2drive-lto5-24slot-1ie-pve-sch0.txt",
    "mtx-status--unknown-2drive-lto9-24slot-nrao-1.txt",
}


def test_every_status_fixture_has_a_test() -> None:
    fixture("SOURCES.md")  # fails with a clear message if the folder is missing
    present = {p.name for p in FIXTURES.glob("mtx-status*.txt")} | {
        p.name for p in FIXTURES.glob("tgt-vtl--mtx-status*.txt")
    }
    assert present - TESTED == set(), "add a test for each new mtx status transcript"
    assert TESTED - present == set(), "a tested transcript disappeared from the fixtures"


# --- one test per transcript ----------------------------------------------------------


def test_tgt_empty_drives() -> None:
    text = fixture("tgt-vtl--mtx-status-empty-drives.txt")
    assert parse_mtx_header(text) == MtxHeader("/dev/sg2", drives=2, slots=24, import_export=0)
    status = parse_mtx_status(text)
    assert [(d.index, d.full) for d in status.drives] == [(0, False), (1, False)]
    assert len(status.slots) == 24
    assert ie_slots(status) == []
    assert full_slots(status) == {1: "PRB001L9", 2: "PRB002L9", 3: "PRB003L9", 4: "PRB004L9", 5: "PRB005L9"}
    # "Storage Element 6:Empty:VolumeTag=<32 spaces>": a blank tag is no barcode.
    assert status.slot(6).barcode is None
    assert status.slot(6).full is False


def test_tgt_drive0_loaded_from_slot2() -> None:
    status = parse_mtx_status(fixture("tgt-vtl--mtx-status-drive0-loaded-from-slot2.txt"))
    drive0 = status.drive(0)
    assert drive0.full and drive0.barcode == "PRB002L9" and drive0.source_slot == 2
    assert status.drive(1).full is False and status.drive(1).source_slot is None
    assert status.slot(2).full is False
    assert full_slots(status) == {1: "PRB001L9", 3: "PRB003L9", 4: "PRB004L9", 5: "PRB005L9"}
    assert status.find_barcode("PRB002L9") is drive0


def test_tgt_after_transfer_3_to_10() -> None:
    status = parse_mtx_status(fixture("tgt-vtl--mtx-status-after-transfer.txt"))
    assert status.slot(3).full is False
    assert status.slot(10).barcode == "PRB003L9"
    assert full_slots(status) == {1: "PRB001L9", 2: "PRB002L9", 4: "PRB004L9", 5: "PRB005L9", 10: "PRB003L9"}


def test_bareos_both_drives_loaded_with_padded_tags() -> None:
    text = fixture("mtx-status--bareos-systemtest-2drive-24slot-4ie-loadedboth.txt")
    assert parse_mtx_header(text) == MtxHeader("/dev/sg0", drives=2, slots=24, import_export=4)
    status = parse_mtx_status(text)
    assert [(d.index, d.barcode, d.source_slot) for d in status.drives] == [
        (0, "000003L8", 3),
        (1, "000004L8", 4),
    ]
    assert ie_slots(status) == [21, 22, 23, 24]
    assert all(not status.slot(n).full for n in (21, 22, 23, 24))
    # Tags are padded to 32 characters; the padding is not part of the barcode.
    assert full_slots(status) == {
        1: "000001L8", 2: "000002L8", 5: "000005L8", 6: "000006L8", 7: "000007L8", 8: "000008L8",
    }
    assert not status.slot(3).full and not status.slot(4).full


def test_ibm_freebsd_36_import_export_and_untagged_full_slot() -> None:
    text = fixture("mtx-status--ibm-33614lx-2x-lto3-36ie-freebsd-pass.txt")
    assert parse_mtx_header(text) == MtxHeader("/dev/pass2", drives=2, slots=38, import_export=36)
    status = parse_mtx_status(text)
    assert [d.full for d in status.drives] == [False, False]
    assert ie_slots(status) == list(range(3, 39))
    assert status.slot(1).import_export is False and status.slot(2).import_export is False
    assert full_slots(status) == {3: "UN0101L3", 4: "UN0102L3", 5: "UN0103L3", 6: None}
    # "Storage Element 6 IMPORT/EXPORT:Full " -- full, no barcode reader answer.
    assert status.slot(6).full and status.slot(6).barcode is None


def test_mhvtl_spectra_four_drives_and_cleaning_tapes() -> None:
    text = fixture("mtx-status--mhvtl-spectra-python-1.txt")
    assert parse_mtx_header(text) == MtxHeader("/dev/sg6", drives=4, slots=37, import_export=4)
    status = parse_mtx_status(text)
    assert [d.index for d in status.drives] == [0, 1, 2, 3]
    assert not any(d.full for d in status.drives)
    assert ie_slots(status) == [34, 35, 36, 37]
    assert len(full_slots(status)) == 25
    assert status.slot(1).barcode == "SDLT01S3"
    assert status.slot(14).barcode == "ULT004L4"
    assert status.slot(21).barcode == "8MM001X4"
    assert status.slot(10).full is False and status.slot(20).full is False
    assert [s.number for s in status.slots if s.is_cleaning] == [31, 32, 33]
    assert status.slot(33).barcode == "CLN003L1"


def test_tandberg_with_request_sense_noise_before_status() -> None:
    text = fixture("mtx-status--tandberg-storageloader-lto5-1.txt")
    assert parse_mtx_header(text) == MtxHeader("/dev/sg5", drives=1, slots=7, import_export=0)
    status = parse_mtx_status(text)
    assert [(d.index, d.full) for d in status.drives] == [(0, False)]
    assert full_slots(status) == {
        1: "000711L4", 2: "A00008L5", 3: "A00034L5", 4: "A00014L5",
        5: "A00036L5", 6: "A00025L5", 7: "000218L5",
    }
    # The noise is a Unit Attention (medium may have changed), not a failure.
    assert parse_request_sense(text) == [SenseData("Unit Attention", 0x28, 0x00)]


def test_proxmox_host_sch_node_drive0_from_slot22() -> None:
    text = fixture("mtx-status--unknown-2drive-lto5-24slot-1ie-pve-sch0.txt")
    assert parse_mtx_header(text) == MtxHeader("/dev/sch0", drives=2, slots=24, import_export=1)
    status = parse_mtx_status(text)
    assert (status.drive(0).barcode, status.drive(0).source_slot) == ("000057L5", 22)
    assert status.drive(1).full is False
    assert status.slot(22).full is False
    assert ie_slots(status) == [24]
    assert status.slot(24).full is False
    assert full_slots(status) == {
        13: "000052L5", 15: "000055L5", 16: "000054L5", 17: "000051L5", 20: "000053L5", 21: "000050L5",
    }


def test_nrao_both_drives_claim_slot8_and_cleaning_tape() -> None:
    text = fixture("mtx-status--unknown-2drive-lto9-24slot-nrao-1.txt")
    assert parse_mtx_header(text) == MtxHeader("/dev/sg25", drives=2, slots=24, import_export=1)
    status = parse_mtx_status(text)
    # The library really says both drives came from slot 8; the parser reports it as is.
    assert [(d.barcode, d.source_slot) for d in status.drives] == [("042142L9", 8), ("HER002L9", 8)]
    assert status.slot(8).full is False
    assert status.slot(12).barcode == "CLN003L1" and status.slot(12).is_cleaning
    assert [s.number for s in status.slots if s.is_cleaning] == [12]
    assert status.slot(24).import_export and status.slot(24).barcode == "HER003L9"
    assert len(full_slots(status)) == 23
    assert status.find_barcode("HER003L9") is status.slot(24)


# --- variants from mtx.c's printf formats ----------------------------------------------


def test_unknown_source_and_alternate_tags() -> None:
    # Status() prints "Full (Unknown Storage Element Loaded)", ":VolumeTag = %s" and
    # ":AlternateVolumeTag = %s" for drives, ":VolumeTag=%s:AlternateVolumeTag=%s" for slots.
    text = (
        "  Storage Changer /dev/sg4:2 Drives, 3 Slots ( 1 Import/Export )\n"
        "Data Transfer Element 0:Full (Unknown Storage Element Loaded):VolumeTag = ABC123L7"
        "                        :AlternateVolumeTag = ALT0001                         \n"
        "Data Transfer Element 1:Full (Unknown Storage Element Loaded)\n"
        "      Storage Element 1:Full :VolumeTag=DEF456L7:AlternateVolumeTag=ALT0002\n"
        "      Storage Element 2:Empty\n"
        "      Storage Element 3 IMPORT/EXPORT:Full :VolumeTag = CLN001L1\n"
    )
    status = parse_mtx_status(text)
    drive0, drive1 = status.drives
    assert (drive0.barcode, drive0.alternate_barcode, drive0.source_slot) == ("ABC123L7", "ALT0001", None)
    assert drive1.full and drive1.barcode is None and drive1.source_slot is None
    assert (status.slot(1).barcode, status.slot(1).alternate_barcode) == ("DEF456L7", "ALT0002")
    # Spaces around '=' are accepted on slots too.
    assert status.slot(3).barcode == "CLN001L1" and status.slot(3).is_cleaning


def test_single_drive_without_number_in_old_mtx() -> None:
    # mtx before 1.2.x printed "Data Transfer Element:" without a number (Amanda's
    # chg-zd-mtx still matches it); the drive is numbered by its position.
    text = (
        "Data Transfer Element:Full (Storage Element 2 Loaded):VolumeTag = X00002L6\n"
        "      Storage Element 1:Full :VolumeTag=X00001L6\n"
        "      Storage Element 2:Empty\n"
    )
    status = parse_mtx_status(text)
    assert [(d.index, d.barcode, d.source_slot) for d in status.drives] == [(0, "X00002L6", 2)]


def test_truncated_status_is_refused() -> None:
    text = "\n".join(fixture("tgt-vtl--mtx-status-empty-drives.txt").splitlines()[:-3])
    with pytest.raises(ChangerError, match=r"announces 2 drives, 24 slots .* lists 2 drives, 21 slots"):
        parse_mtx_status(text)


def test_no_status_at_all_is_refused() -> None:
    with pytest.raises(ChangerError, match="printed no changer status"):
        parse_mtx_status(fixture("mtx-error--ibm-33614lx-offline-read-element-status-failed.txt"))
    with pytest.raises(ChangerError):
        parse_mtx_status("")


# --- error classification -------------------------------------------------------------


def test_offline_library_read_element_status_failed() -> None:
    text = fixture("mtx-error--ibm-33614lx-offline-read-element-status-failed.txt")
    assert parse_request_sense(text) == [SenseData("Not Ready", 0x04, 0x12), SenseData("Not Ready", 0x04, 0x12)]
    failure = classify_mtx_error(text, 1)
    assert failure.kind == ELEMENT_STATUS_FAILED
    assert failure.detail == "READ ELEMENT STATUS Command Failed"
    assert "Not Ready, logical unit not ready, offline (ASC 04h/ASCQ 12h)" in failure.message
    assert "random (library) mode" in failure.message


def test_tgt_load_from_empty_slot() -> None:
    text = fixture("tgt-vtl--mtx-error-load-empty-slot.txt")
    failure = classify_mtx_error(text, 1)
    assert failure.kind == SOURCE_EMPTY
    assert failure.detail is not None and failure.detail.endswith("Source Element Address 1008 is Empty")
    assert "no tape in the source element" in failure.message


@pytest.mark.parametrize(
    ("output", "kind", "advice"),
    [
        # The strings are mtx 1.3.12's own (strings /usr/sbin/mtx), with real arguments.
        ("cannot open SCSI device '/dev/sg9' - No such file or directory", NO_DEVICE, "lsscsi -g"),
        ("cannot open SCSI device '/dev/sg9' - Permission denied", PERMISSION_DENIED, "'tape' group"),
        ("/dev/null is not an sg device, or old sg driver", NOT_A_CHANGER, "/dev/sgN"),
        ("Destination Element Address 1009 is Already Full", DESTINATION_FULL, "empty slot"),
        ("Unloading drive 0 into Storage Element 5...Storage Element 5 is Already Full", DESTINATION_FULL,
         "empty slot"),
        ("Data Transfer Element 1 is Empty", DRIVE_EMPTY, "nothing to unload"),
        ("Drive 0 Full (Storage Element 3 loaded)", DRIVE_FULL, "Unload it first"),
        ("Do not know which slot to unload tape into!", UNKNOWN_SOURCE, "Name an empty slot"),
        ("Invalid <storage-element-number> argument '99' to 'load' command", INVALID_ELEMENT, "mtx status"),
        ("illegal <drive-number> argument '7' to 'load' command", INVALID_ELEMENT, "drives from 0"),
    ],
)
def test_mtx_messages(output: str, kind: str, advice: str) -> None:
    failure = classify_mtx_error(output, 1)
    assert failure.kind == kind
    assert advice in failure.message


def _sense(key: str, asc: str, ascq: str) -> str:
    return (
        "mtx: Request Sense: Long Report=yes\n"
        f"mtx: Request Sense: Sense Key={key}\n"
        f"mtx: Request Sense: Additional Sense Code = {asc}\n"
        f"mtx: Request Sense: Additional Sense Qualifier = {ascq}\n"
    )


@pytest.mark.parametrize(
    ("sense", "kind"),
    [
        (_sense("Illegal Request", "3B", "0E"), SOURCE_EMPTY),
        (_sense("Illegal Request", "3B", "0D"), DESTINATION_FULL),
        (_sense("Illegal Request", "21", "01"), INVALID_ELEMENT),
        (_sense("Illegal Request", "53", "02"), REMOVAL_PREVENTED),
        (_sense("Illegal Request", "24", "00"), ILLEGAL_REQUEST),
        (_sense("Not Ready", "04", "03"), NOT_READY),
        (_sense("Hardware Error", "40", "00"), MOVE_FAILED),
    ],
)
def test_move_failures_by_sense(sense: str, kind: str) -> None:
    output = sense + "MOVE MEDIUM from Element Address 1000 to 256 Failed\n"
    failure = classify_mtx_error(output, 1)
    assert failure.kind == kind


def test_illegal_request_message_names_the_sense() -> None:
    output = _sense("Illegal Request", "24", "00") + "MOVE MEDIUM from Element Address 1000 to 256 Failed\n"
    message = classify_mtx_error(output, 1).message
    assert "Illegal Request, invalid field in CDB (ASC 24h/ASCQ 00h)" in message


def test_unknown_failure_keeps_the_last_line() -> None:
    failure = classify_mtx_error("something odd\nthe library caught fire\n", 3)
    assert failure.kind == UNKNOWN
    assert failure.message.startswith("mtx exited with status 3: the library caught fire.")
    assert classify_mtx_error("", None).message.startswith("mtx was stopped without a message")
