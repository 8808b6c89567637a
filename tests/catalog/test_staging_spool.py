"""A staged archive's member records wait on disk, not in memory, until it goes to tape."""

from __future__ import annotations

import os
from pathlib import Path

from pytp.catalog.staging import RecordSpool, StagingArea, stage_source


def test_staged_records_are_spooled_beside_the_archive_and_read_back_in_order(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for n in range(500):
        (source / f"f{n:03d}").write_bytes(b"x" * n)
    with StagingArea(str(tmp_path / "tars"), job_id=1) as area:
        staged = stage_source(area, 0, os.fsencode(source), 512 << 10, None)
        assert isinstance(staged.records, RecordSpool)
        spool = area.path / "0000.records"
        assert spool.stat().st_size > 500 * 100  # every record is in the file
        records = list(staged.records)
        assert [r.path for r in records] == [os.fsencode(source)] + [
            os.fsencode(source / f"f{n:03d}") for n in range(500)
        ]
        assert [r.offset for r in records] == sorted(r.offset for r in records)
        assert list(staged.records) == records  # read back as often as needed
        staged.records.remove()
        assert not spool.exists()
