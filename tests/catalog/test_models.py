"""The model helpers: statuses are StrEnums that store their plain strings,
and ``row_id`` gives a saved row's key (on SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from pytp.catalog.database import open_catalog
from pytp.catalog.models import Job, JobStatus, TapeFileStatus, Volume, VolumeStatus, row_id


def test_the_stored_status_strings_are_unchanged() -> None:
    # Catalogs written before the enums hold exactly these strings (no migration).
    assert [s.value for s in JobStatus] == ["running", "ok", "partial", "failed"]
    assert [s.value for s in VolumeStatus] == ["appendable", "full", "error", "retired", "expired"]
    assert [s.value for s in TapeFileStatus] == ["writing", "complete", "incomplete", "absent", "overwritten"]
    assert JobStatus.GOOD == ("ok", "partial") and "GOOD" not in JobStatus.__members__
    assert f"{JobStatus.PARTIAL}" == "partial" and str(VolumeStatus.FULL) == "full"


def test_a_status_goes_to_the_database_as_its_plain_string(catalog_url: str) -> None:
    engine = open_catalog(catalog_url)
    with Session(engine) as session:
        session.add(Job(name="n", status=JobStatus.PARTIAL))
        session.commit()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT status FROM job")).scalar_one() == "partial"
    with Session(engine) as session:
        job = session.exec(select(Job).where(Job.status == JobStatus.PARTIAL)).one()
        assert job.status in JobStatus.GOOD and job.status == "partial"
        # A row read back compares equal to the enum, and it is the enum member by value.
        assert JobStatus(job.status) is JobStatus.PARTIAL


def test_row_id_of_a_saved_row_and_of_one_never_flushed(catalog_url: str) -> None:
    engine = open_catalog(catalog_url)
    with Session(engine) as session:
        volume = Volume(label="ROW001L9", uuid="u-1", pool="default", block_size=524288)
        with pytest.raises(ValueError, match="Volume row has no id yet"):
            row_id(volume)
        session.add(volume)
        session.flush()
        assert row_id(volume) == volume.id and isinstance(row_id(volume), int)
