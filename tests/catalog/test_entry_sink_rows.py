"""The entry sink's rows: one plain executemany per batch, stored exactly as a Core insert stores them."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from pytp.catalog.backup import BackupOptions, run_backup
from pytp.catalog.backup_job import ENTRY_BATCH, EntrySink
from pytp.catalog.database import open_catalog
from pytp.catalog.devices import select as select_drive
from pytp.catalog.entry_insert import insert_rows, stored_row
from pytp.catalog.models import Entry, TapeFile, path_text, table_of
from pytp.catalog.rebuild_import import EntryRows
from pytp.tapeio.tarwriter import MemberRecord

#: every column a backup writes, read back as stored (no type decorators: the bytes in the table)
STORED = (
    "SELECT path, path_text, kind, size, mode, uid, gid, uname, gname, mtime_ns, ctime_ns, inode, device, "
    'link_target, xxh3, "offset", header_size, sparse_map FROM entry '
    "WHERE tape_file_id = {} AND path_text >= '/srv/' AND path_text < '/srv0' ORDER BY id"
)


def _records() -> list[MemberRecord]:
    """Members with every value the stored forms treat apart: names that are and are not
    UTF-8, digests and none, link targets, a sparse map, the largest numbers."""
    common = dict(mode=0o644, uid=1000, gid=1000, uname="ann", gname="staff", inode=7, device=2049)
    return [
        MemberRecord(
            path=b"/srv/caf\xc3\xa9/plain.txt", kind="file", size=5, mtime_ns=1, ctime_ns=2,
            link_target=None, xxh3="0123456789abcdef0123456789abcdef", offset=0, header_size=1536, **common,
        ),
        MemberRecord(
            path=b"/srv/latin-\xe9\xff", kind="file", size=2**40, mtime_ns=-(2**62), ctime_ns=2**62,
            link_target=None, xxh3="fedcba9876543210fedcba9876543210", offset=2**50, header_size=512,
            sparse_map="0:4096 1099511627776:0", **common,
        ),
        MemberRecord(
            path=b"/srv/link", kind="symlink", size=0, mtime_ns=3, ctime_ns=4,
            link_target=b"../caf\xe9", xxh3=None, offset=4096, header_size=1024, **common,
        ),
        MemberRecord(
            path=b"/srv/again", kind="hardlink", size=0, mtime_ns=3, ctime_ns=4,
            link_target=b"/srv/caf\xc3\xa9/plain.txt", xxh3=None, offset=5120, header_size=512, **common,
        ),
    ]  # fmt: skip


def _stored(engine, tape_file_id: int) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(STORED.format(int(tape_file_id))).all()
    # PostgreSQL gives bytea as memoryview
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]


def _two_tape_files(engine, config, tmp_path: Path) -> list[int]:  # type: ignore[no-untyped-def]
    """Two jobs' data tape files to put rows in (each a backup of one small file)."""
    source = tmp_path / "one"
    source.mkdir()
    (source / "f").write_bytes(b"x")
    ids = []
    for _ in range(2):
        result = run_backup(engine, config, select_drive(config), BackupOptions([str(source)]))
        with engine.connect() as connection:
            ids.append(
                connection.execute(
                    table_of(TapeFile).select().where(table_of(TapeFile).c.job_id == result.job_id)
                ).first()
            )
    return [row.id for row in ids] + [row.job_id for row in ids]


def test_the_sink_stores_each_value_as_the_core_insert_of_the_entry_table_does(lib_config, tmp_path: Path) -> None:
    """The sink builds the stored forms itself (NULL for a UTF-8 name, a digest's 16 bytes):
    the rows must be exactly those the Core insert with the column types writes."""
    engine = open_catalog(lib_config.catalog_url)
    sink_file, core_file, sink_job, core_job = _two_tape_files(engine, lib_config, tmp_path)
    with EntrySink(engine, sink_job, lambda record: None) as sink:
        sink.tape_file_id = sink_file
        for record in _records():
            sink.add(record)
        sink.flush()
    rows = [
        dict(record._asdict(), job_id=core_job, tape_file_id=core_file, path_text=path_text(record.path))
        for record in _records()
    ]
    with engine.begin() as connection:
        connection.execute(table_of(Entry).insert(), rows)
    stored = _stored(engine, sink_file)
    assert stored == _stored(engine, core_file)
    assert [row[0] for row in stored] == [None, b"/srv/latin-\xe9\xff", None, None]  # only a raw name is kept
    assert stored[0][14] == bytes.fromhex("0123456789abcdef0123456789abcdef")
    with engine.connect() as connection:  # and the catalog reads them back whole
        back = connection.execute(
            table_of(Entry)
            .select()
            .where(table_of(Entry).c.tape_file_id == sink_file, table_of(Entry).c.path_text.startswith("/srv/"))
            .order_by("id")
        ).all()
    assert [(r.path, r.xxh3, r.link_target) for r in back] == [(r.path, r.xxh3, r.link_target) for r in _records()]


def test_each_batch_is_one_executemany_of_the_same_plain_statement(sqlite_lib_config, tmp_path: Path) -> None:
    engine = open_catalog(sqlite_lib_config.catalog_url)
    tape_file, _, job, _ = _two_tape_files(engine, sqlite_lib_config, tmp_path)
    calls: list[tuple[str, int, bool]] = []

    def note(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO ENTRY"):
            calls.append((statement, len(parameters), executemany))

    event.listen(engine, "before_cursor_execute", note)
    record = _records()[0]
    with EntrySink(engine, job, lambda record: None) as sink:
        sink.tape_file_id = tape_file
        for n in range(2 * ENTRY_BATCH + 3):
            sink.add(record._replace(path=b"/many/%d" % n, offset=n * 512))
        sink.flush()
    assert [(size, many) for _, size, many in calls] == [(ENTRY_BATCH, True), (ENTRY_BATCH, True), (3, True)]
    assert len({statement for statement, _, _ in calls}) == 1  # one SQL string, nothing compiled per batch


def test_the_rebuilds_rows_are_stored_as_the_core_insert_stores_them(lib_config, tmp_path: Path) -> None:
    """``catalog rebuild`` sends the same plain rows (entry_insert), built from a manifest line's
    columns, in the rebuild's one transaction per tape."""
    engine = open_catalog(lib_config.catalog_url)
    rebuilt_file, core_file, rebuilt_job, core_job = _two_tape_files(engine, lib_config, tmp_path)
    records = _records()
    fields = [dict(record._asdict(), path_text=path_text(record.path)) for record in records]
    with Session(engine) as session:
        with EntryRows(session) as rows:
            for one in fields:
                rows.add(rebuilt_job, rebuilt_file, one)
        assert rows.added == len(records)
        session.commit()
    with engine.begin() as connection:
        connection.execute(table_of(Entry).insert(), [dict(f, job_id=core_job, tape_file_id=core_file) for f in fields])
    stored = _stored(engine, rebuilt_file)
    assert stored == _stored(engine, core_file)
    assert [row[0] for row in stored] == [None, b"/srv/latin-\xe9\xff", None, None]


@pytest.mark.parametrize("catalog_url", ["postgres"], indirect=True)
def test_on_postgresql_every_batch_of_the_sink_arrives_by_copy(lib_config, tmp_path: Path) -> None:
    """More rows than two batches, through the sink's thread: each batch one COPY, each row
    stored once, in order, the last partial batch too."""
    engine = open_catalog(lib_config.catalog_url)
    tape_file, _, job, _ = _two_tape_files(engine, lib_config, tmp_path)
    count = 2 * ENTRY_BATCH + 3
    record = _records()[0]
    with EntrySink(engine, job, lambda record: None) as sink:
        sink.tape_file_id = tape_file
        for n in range(count):
            sink.add(record._replace(path=b"/many/%d" % n, offset=n * 512))
        sink.flush()
    with engine.connect() as connection:
        offsets = (
            connection.exec_driver_sql(
                f'SELECT "offset" FROM entry WHERE tape_file_id = {int(tape_file)}'
                " AND path_text LIKE %(p)s ORDER BY id",
                {"p": "/many/%"},
            )
            .scalars()
            .all()
        )
    assert offsets == [n * 512 for n in range(count)]


@pytest.mark.parametrize("catalog_url", ["postgres"], indirect=True)
def test_on_postgresql_a_copy_that_fails_raises_sqlalchemys_error_and_leaves_no_row(lib_config, tmp_path: Path) -> None:
    """Rows go to PostgreSQL by COPY, outside SQLAlchemy's executemany: its errors must still
    be SQLAlchemy's (what the job's failure handling and the exit codes expect), and the
    batch's transaction must leave nothing."""
    engine = open_catalog(lib_config.catalog_url)
    tape_file, _, job, _ = _two_tape_files(engine, lib_config, tmp_path)
    good, orphan = _records()[0], _records()[2]._replace(path=b"/srv/orphan")
    with pytest.raises(IntegrityError, match="tape_file"):
        with engine.begin() as connection:
            insert_rows(connection, [stored_row(job, tape_file, good), stored_row(job, 10**9, orphan)])
    assert _stored(engine, tape_file) == []
    with engine.begin() as connection:  # the connection is usable again
        insert_rows(connection, [stored_row(job, tape_file, good)])
    assert len(_stored(engine, tape_file)) == 1
