"""The entry sink: member records become catalog rows in batches, inserted by a thread of their own."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import event, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from pytp.catalog.backup import BackupOptions, run_backup
from pytp.catalog.backup_job import ENTRY_BATCH, EntrySink
from pytp.catalog.database import open_catalog
from pytp.catalog.devices import select as select_drive
from pytp.catalog.models import Entry, TapeFile
from pytp.tapeio.tarwriter import MemberRecord


def _record(n: int) -> MemberRecord:
    return MemberRecord(
        path=b"/sink/file-%06d" % n,
        kind="file",
        size=1,
        mode=0o644,
        uid=0,
        gid=0,
        uname="root",
        gname="root",
        mtime_ns=0,
        ctime_ns=0,
        inode=n,
        device=1,
        link_target=None,
        xxh3=None,
        offset=n * 1024,
        header_size=512,
    )


def _count(engine) -> int:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(Entry).where(Entry.path_text.startswith("/sink/"))).one()


def test_rows_are_inserted_in_batches_by_the_sink_thread_and_all_are_in_after_flush(
    sqlite_lib_config, source_tree: Path
) -> None:
    engine = open_catalog(sqlite_lib_config.catalog_url)
    result = run_backup(engine, sqlite_lib_config, select_drive(sqlite_lib_config), BackupOptions([str(source_tree)]))
    with Session(engine) as session:
        tape_file = session.exec(select(TapeFile).where(TapeFile.job_id == result.job_id)).first()
    assert tape_file is not None
    inserting: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO ENTRY"):
            inserting.append(threading.current_thread().name)

    event.listen(engine, "before_cursor_execute", note)
    seen: list[bytes] = []
    with EntrySink(engine, result.job_id, lambda record: seen.append(record.path)) as sink:
        sink.tape_file_id = tape_file.id  # type: ignore[assignment]
        for n in range(2 * ENTRY_BATCH + 5):
            sink.add(_record(n))
        assert len(sink.rows) == 5  # only the batch being filled is held
        sink.flush()
        assert _count(engine) == 2 * ENTRY_BATCH + 5
    assert sink.files == len(seen) == 2 * ENTRY_BATCH + 5
    assert len(inserting) == 3  # one executemany per batch
    assert all(name.startswith("pytp-entries") for name in inserting), inserting


def test_an_insert_that_fails_in_the_sink_thread_is_raised_by_flush(sqlite_lib_config) -> None:
    engine = open_catalog(sqlite_lib_config.catalog_url)
    with EntrySink(engine, None, lambda record: None) as sink:  # type: ignore[arg-type]
        sink.add(_record(1))  # no job: the row breaks a NOT NULL constraint
        with pytest.raises(IntegrityError):
            sink.flush()
    assert _count(engine) == 0
