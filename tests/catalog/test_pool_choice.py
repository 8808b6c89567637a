"""The order in which a backup tries the tapes of a library (``catalog.pool_choice``): a pure function."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pytp.catalog.models import Volume, VolumeStatus
from pytp.catalog.pool_choice import Candidate, pool_candidates
from pytp.tapeio.changer import StorageElement

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def _volume(id: int, barcode: str, pool: str = "daily", status: str = VolumeStatus.APPENDABLE, days: int = 0) -> Volume:
    return Volume(
        id=id,
        label=barcode,
        barcode=barcode,
        uuid=f"uuid-{id}",
        pool=pool,
        status=status,
        block_size=512 * 1024,
        created_at=NOW - timedelta(days=100),
        last_written_at=NOW - timedelta(days=days),
    )


def test_appendable_newest_first_then_blanks_then_the_first_expired() -> None:
    volumes = {
        v.barcode: v
        for v in [
            _volume(1, "OLD001L9", days=30),
            _volume(2, "NEW002L9", days=1),
            _volume(3, "FUL003L9", status=VolumeStatus.FULL),
            _volume(4, "OTH004L9", pool="weekly"),
            _volume(5, "EXP005L9", status=VolumeStatus.FULL),
            _volume(6, "EXP006L9", status=VolumeStatus.FULL),
            _volume(7, "PRO007L9", status=VolumeStatus.FULL),
            _volume(8, "MAIL08L9"),
        ]
    }
    slots = [
        StorageElement(1, True, "OLD001L9"),
        StorageElement(2, True, "NEW002L9"),
        StorageElement(3, True, "FUL003L9"),
        StorageElement(4, True, "OTH004L9"),
        StorageElement(5, True, "EXP005L9"),
        StorageElement(6, True, "EXP006L9"),
        StorageElement(7, True, "PRO007L9"),
        StorageElement(8, True, "BLANK8L9"),
        StorageElement(9, True, "CLN001L1"),  # a cleaning cartridge is never a blank
        StorageElement(10, True, "WEEK10L9"),  # a blank the pool does not take
        StorageElement(11, False),
        StorageElement(12, True, None),  # no barcode label: a blank
        StorageElement(13, True, "MAIL08L9", import_export=True),  # the operator's slot
        StorageElement(14, True, "BLANKIE9", import_export=True),
    ]
    ends = {
        3: NOW + timedelta(days=5),  # still in retention
        5: NOW - timedelta(days=2),
        6: NOW - timedelta(days=9),  # expired first: reused first
        7: NOW - timedelta(days=20),  # expired, but protected
        1: None,
    }
    got = pool_candidates(
        slots, volumes, "daily", lambda barcode: not (barcode or "").startswith("WEEK"), ends, {7}, NOW
    )
    assert got == [
        Candidate(2, volumes["NEW002L9"]),
        Candidate(1, volumes["OLD001L9"]),
        Candidate(8),
        Candidate(12),
        Candidate(6, volumes["EXP006L9"], reuse=True),
        Candidate(5, volumes["EXP005L9"], reuse=True),
    ]


def test_an_empty_library_offers_nothing() -> None:
    assert pool_candidates([StorageElement(1, False)], {}, "daily", lambda b: True, {}, (), NOW) == []


def test_a_tape_expiring_now_is_reused_but_not_one_a_second_later() -> None:
    volume = _volume(1, "EXP001L9", status=VolumeStatus.FULL)
    slots = [StorageElement(1, True, "EXP001L9")]
    assert pool_candidates(slots, {"EXP001L9": volume}, "daily", lambda b: True, {1: NOW}, (), NOW) == [
        Candidate(1, volume, reuse=True)
    ]
    later = {1: NOW + timedelta(seconds=1)}
    assert pool_candidates(slots, {"EXP001L9": volume}, "daily", lambda b: True, later, (), NOW) == []
