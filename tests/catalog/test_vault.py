"""The vault core without the CLI (issue 11, part 1): copy counting for ``pytp vault report``,
tapes due back, vault names, and what ``export_tapes`` refuses, on a real SQLite catalog
and the virtual library of ``write_library_config``."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from pytp.catalog.database import open_catalog
from pytp.catalog.errors import NotFound, WrongTape
from pytp.catalog.models import Job, JobStatus, TapeFile, TapeFileStatus, Volume, VolumeStatus, row_id, utcnow
from pytp.catalog.vault import BadVaultName, check_vault_name, export_tapes
from pytp.catalog.vault_report import DUE_BACK, ONE_PLACE, TOO_FEW, job_copies, vault_report
from pytp.tapeio.errors import DriveBusy
from pytp.tapeio.virtual_changer import VirtualChanger

BLOCK = 512 << 10


def _volume(session: Session, label: str, **fields: object) -> Volume:
    volume = Volume(label=label, uuid=str(uuid.uuid4()), pool="default", block_size=BLOCK, library="lib", **fields)
    session.add(volume)
    session.commit()
    return volume


def _job(session: Session, name: str, status: str = JobStatus.OK, age_days: int = 0) -> Job:
    ended = utcnow() - timedelta(days=age_days)
    job = Job(name=name, status=status, started_at=ended, ended_at=ended)
    session.add(job)
    session.commit()
    return job


def _file(session: Session, volume: Volume, number: int, job: Job | None, copy_of: TapeFile | None = None) -> TapeFile:
    row = TapeFile(
        job_id=row_id(job) if job else None,
        volume_id=row_id(volume),
        file_number=number,
        kind="data" if number % 2 else "manifest",
        status=TapeFileStatus.COMPLETE,
        block_size=BLOCK,
        copy_of_id=row_id(copy_of) if copy_of else None,
    )
    session.add(row)
    session.commit()
    return row


def _problems(session: Session, config, copies: int = 2) -> list[tuple]:  # type: ignore[no-untyped-def]
    return [(r["problem"], r["job"] or r["tape"], r["copies"]) for r in vault_report(session, config, copies)]


def test_copies_count_whole_jobs_and_follow_copy_chains(sqlite_lib_config) -> None:  # type: ignore[no-untyped-def]
    engine = open_catalog(sqlite_lib_config.catalog_url)
    with Session(engine, expire_on_commit=False) as session:
        a, b, c = (_volume(session, name) for name in ("A", "B", "C"))
        job = _job(session, "nightly")
        data, manifest = _file(session, a, 1, job), _file(session, a, 2, job)
        assert job_copies(session) == {row_id(job): (1, {row_id(a)})}
        assert _problems(session, sqlite_lib_config) == [(TOO_FEW, row_id(job), 1)]

        b_data = _file(session, b, 1, None, data)  # pytp copy: job_id None, copy_of the source row
        # Only the data file copied: the job is not held twice yet.
        assert job_copies(session)[row_id(job)][0] == 1
        _file(session, b, 2, None, manifest)
        assert job_copies(session)[row_id(job)] == (2, {row_id(a), row_id(b)})
        # Two copies, both in the library: all in one place.
        rows = vault_report(session, sqlite_lib_config)
        assert [(r["problem"], r["places"], r["tape"]) for r in rows] == [(ONE_PLACE, ["library lib"], "A,B")]
        b.vault = "offsite-A"
        session.add(b)
        session.commit()
        assert _problems(session, sqlite_lib_config) == []
        # A copy of the copy that misses the manifest does not make a third.
        _file(session, c, 1, None, b_data)
        assert _problems(session, sqlite_lib_config, copies=3) == [(TOO_FEW, row_id(job), 2)]

        # The original recycled: only the copy holds the job now.
        for row in (data, manifest):
            row.status = TapeFileStatus.OVERWRITTEN
            session.add(row)
        session.commit()
        assert job_copies(session)[row_id(job)][0] == 1


def test_a_copy_chain_that_loops_ends(sqlite_lib_config) -> None:  # type: ignore[no-untyped-def]
    engine = open_catalog(sqlite_lib_config.catalog_url)
    with Session(engine, expire_on_commit=False) as session:
        a, b = _volume(session, "A"), _volume(session, "B")
        job = _job(session, "j")
        original = _file(session, a, 1, job)
        x = _file(session, b, 1, None, original)
        y = _file(session, b, 2, None, x)
        x.copy_of_id = row_id(y)  # a damaged catalog: x -> y -> x
        session.add(x)
        session.commit()
        assert job_copies(session)[row_id(job)][0] == 1


def test_failed_and_expired_jobs_need_no_copies_and_tapes_due_back(sqlite_lib_config) -> None:  # type: ignore[no-untyped-def]
    engine = open_catalog(sqlite_lib_config.catalog_url)
    with Session(engine, expire_on_commit=False) as session:
        kept, old, failed_tape, retired = (_volume(session, n) for n in ("KEPT", "OLD", "FAIL", "RET"))
        _file(session, failed_tape, 1, _job(session, "failed", JobStatus.FAILED))
        _file(session, old, 1, _job(session, "old", age_days=40))  # the default pool keeps 30 days
        recent = _job(session, "recent")
        _file(session, kept, 1, recent)
        _file(session, retired, 1, _job(session, "ancient", age_days=400))
        for volume in (kept, old, failed_tape, retired):
            volume.vault = "bank"
            volume.vault_since = utcnow()
        retired.status = VolumeStatus.RETIRED
        session.add_all([kept, old, failed_tape, retired])
        session.commit()
        rows = vault_report(session, sqlite_lib_config)
        assert [(r["problem"], r["job"] or r["tape"]) for r in rows] == [
            (TOO_FEW, row_id(recent)),
            (DUE_BACK, "FAIL"),  # holds nothing to keep
            (DUE_BACK, "OLD"),
        ]
        assert rows[1]["detail"] == "holds no data to keep" and rows[2]["detail"].startswith("retention ended 20")
        assert rows[2]["places"] == ["vault bank"]


@pytest.mark.parametrize("name", ["", " padded", "a" * 65, "tab\there", "esc\x1b[31m", "new\nline"])
def test_hostile_vault_names_are_refused(name: str) -> None:
    with pytest.raises(BadVaultName, match="Invalid vault name"):
        check_vault_name(name)
    assert check_vault_name("offsite-A / Bank vault 2") == "offsite-A / Bank vault 2"


def test_export_refuses_a_tape_a_running_job_writes_and_unknown_or_barcodeless_tapes(sqlite_lib_config) -> None:  # type: ignore[no-untyped-def]
    config = sqlite_lib_config
    engine = open_catalog(config.catalog_url)
    library = VirtualChanger(config.libraries[0].device_path)
    before = library.status()
    with Session(engine, expire_on_commit=False) as session:
        busy = _volume(session, "PYT001L9", barcode="PYT001L9")
        # A spanning job between two tapes holds no drive lock on this one, but writes it.
        row = _file(session, busy, 1, _job(session, "span", JobStatus.RUNNING))
        row.status = TapeFileStatus.WRITING
        session.add(row)
        session.commit()
        _volume(session, "NOBAR")
        _volume(session, "GONE", barcode="GON001L9")
    with pytest.raises(DriveBusy, match="being written by running job 1"):
        list(export_tapes(engine, config, ["PYT001L9"], "bank"))
    with pytest.raises(WrongTape, match="has no barcode"):
        list(export_tapes(engine, config, ["NOBAR"], "bank"))
    with pytest.raises(WrongTape, match="in no configured library"):
        list(export_tapes(engine, config, ["GONE"], "bank"))
    with pytest.raises(NotFound):
        list(export_tapes(engine, config, ["PYT001L9", "nosuch"], "bank"))
    assert library.status() == before
    with Session(engine) as session:
        assert all(v.vault is None for v in session.exec(select(Volume)).all())


def test_the_html_report_lists_copies_in_one_place_and_vault_tapes_due_back(sqlite_lib_config) -> None:  # type: ignore[no-untyped-def]
    from pytp.catalog.report import collect_report
    from pytp.cli.report_html import render_report

    engine = open_catalog(sqlite_lib_config.catalog_url)
    with Session(engine, expire_on_commit=False) as session:
        a, b = _volume(session, "A"), _volume(session, "B")
        job = _job(session, "nightly")
        _file(session, b, 1, None, _file(session, a, 1, job))
        old = _volume(session, "OLD", vault="bank", vault_since=utcnow())
        _file(session, old, 1, _job(session, "old", age_days=40))
        report = collect_report(session, sqlite_lib_config)
    assert [(p.kind, p.subject, p.job_id) for p in report.problems] == [
        (ONE_PLACE, f"#{row_id(job)} nightly", row_id(job))
    ]
    assert [(d.tape.label, d.reason.split(": ")[-1]) for d in report.due_return] == [
        ("OLD", "due back from vault bank")
    ]
    page = render_report(report)
    assert "copies in one place" in page and "all 2 copies are in library lib" in page
    assert "due back from vault bank" in page and "vault bank" in page
