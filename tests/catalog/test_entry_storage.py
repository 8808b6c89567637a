"""The compact entry row (issue 9, ≤ 250 bytes per entry, migration 0007):
``entry.path`` is NULL when the name is UTF-8 and ``path_text`` holds it,
``entry.xxh3`` is the digest's 16 bytes; every reader still gets the exact
name and the hex digest, names that are not UTF-8 keep their bytes, two names
that differ only there stay two paths, and the migration compacts an existing
catalog without changing what it reads back.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import insert
from sqlmodel import Session, col, select

from pytp.catalog.backup import BackupOptions, run_backup
from pytp.catalog.database import alembic_config, make_engine, open_catalog, upgrade
from pytp.catalog.devices import select as select_drive
from pytp.catalog.models import Entry, Job, TapeFile, Volume, path_text, table_of
from pytp.catalog.restore import RestoreOptions, run_restore
from pytp.catalog.search import find, find_exact

NOT_UTF8 = b"na\xefve-\xff.txt"


def _backup(config, source: Path):  # type: ignore[no-untyped-def]
    engine = open_catalog(config.catalog_url)
    result = run_backup(engine, config, select_drive(config), BackupOptions(sources=[str(source)]))
    assert result.status == "ok", result
    return engine


def _stored(engine) -> list[tuple[str, bytes | None, bytes | str | None, str]]:  # type: ignore[no-untyped-def]
    """What the database holds, read past the column types: (path_text, path, xxh3, kind)."""
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT path_text, path, xxh3, kind FROM entry ORDER BY id").all()
    return [
        (t, None if p is None else bytes(p), x if x is None or isinstance(x, str) else bytes(x), k)
        for t, p, x, k in rows
    ]


def _read(engine) -> list[tuple[int, bytes, str | None]]:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        return [(e.id, e.path, e.xxh3) for e in session.exec(select(Entry).order_by(col(Entry.id))).all()]


def test_a_utf8_name_is_stored_once_and_read_whole(lib_config, source_tree: Path) -> None:
    engine = _backup(lib_config, source_tree)
    stored = _stored(engine)
    # Only the names that are not UTF-8 keep their bytes; every digest is 16 bytes.
    assert {text for text, path, _, _ in stored if path is not None} == {
        path_text(os.fsencode(source_tree) + b"/caf\xe9"),
        path_text(os.fsencode(source_tree) + b"/caf\xe9/" + NOT_UTF8),
    }
    assert all(len(x) == 16 for _, _, x, kind in stored if kind == "file" and x is not None)
    assert sum(1 for _, _, x, kind in stored if kind == "file" and x is not None) >= 5
    # Every reader gets the exact name and the hex digest back.
    on_disk = {os.fsencode(p) for p in [source_tree, *source_tree.rglob("*")]}
    read = _read(engine)
    assert {path for _, path, _ in read} == on_disk
    assert all(x is None or (len(x) == 32 and int(x, 16) >= 0) for _, _, x in read)
    with Session(engine) as session:
        job = session.exec(select(Job)).one()
        for name in (b"/docs/report.txt", b"/caf\xe9/" + NOT_UTF8, "/unicode-é.txt".encode()):
            found = find_exact(session, job.id, os.fsencode(source_tree) + name)  # type: ignore[arg-type]
            assert found is not None and found.entry.path == os.fsencode(source_tree) + name
        # Core selects of the table (the manifest's) read it whole too.
        entry = table_of(Entry)
        paths = {row.path for row in session.execute(select(entry.c.path, entry.c.path_text))}
        assert paths == on_disk
        hits = find(session, ["na\udcefve"])  # the \xef byte as a surrogate escape, as a shell passes it
        assert [f.entry.path for f in hits] == [os.fsencode(source_tree) + b"/caf\xe9/" + NOT_UTF8]


def test_names_that_differ_only_where_they_are_not_utf8_stay_two_paths(lib_config, tmp_path: Path) -> None:
    """``a\\xffb`` typed with a backslash and ``a<0xff>b`` have the same path_text: still two files."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a\\xffb").write_text("typed backslash\n")
    with open(os.fsencode(src) + b"/a\xffb", "wb") as f:
        f.write(b"a byte that is not utf-8\n")
    engine = _backup(lib_config, src)
    with Session(engine) as session:
        hits = find(session, ["xffb"])
        assert sorted(f.entry.path for f in hits) == sorted(
            [os.fsencode(src) + b"/a\\xffb", os.fsencode(src) + b"/a\xffb"]
        )
    out = tmp_path / "out"
    run_restore(engine, lib_config, select_drive(lib_config), RestoreOptions(patterns=[str(src)], target=str(out)))
    restored = out / str(src).lstrip("/")
    assert (restored / "a\\xffb").read_text() == "typed backslash\n"
    assert open(os.fsencode(restored) + b"/a\xffb", "rb").read() == b"a byte that is not utf-8\n"


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)  # SQLite batch copies; PG below
def test_the_migration_compacts_a_catalog_and_reads_the_same(lib_config, source_tree: Path) -> None:
    engine = _backup(lib_config, source_tree)
    before = _read(engine)
    with Session(engine) as session:
        reports = [f.entry.id for f in find(session, ["report"])]
    assert len(reports) == 3  # report.txt, hardlink-report.txt, link-to-report
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")  # batch copies of referenced tables
        command.downgrade(alembic_config(connection), "0006")
        connection.commit()
    old = _stored(engine)
    assert all(path is not None for _, path, _, _ in old)  # the former form: every path's bytes
    assert all(isinstance(x, str) and len(x) == 32 for _, _, x, _ in old if x is not None)  # and hex text
    upgrade(engine)
    stored = _stored(engine)
    assert sum(1 for _, path, _, _ in stored if path is not None) == 2
    assert all(isinstance(x, bytes) and len(x) == 16 for _, _, x, _ in stored if x is not None)
    assert _read(engine) == before
    with Session(engine) as session:
        assert [f.entry.id for f in find(session, ["report"])] == reports  # the index survived the copy


@pytest.mark.postgres
@pytest.mark.parametrize("catalog_url", ["postgres"], indirect=True)
def test_the_migration_compacts_a_postgresql_catalog(lib_config, source_tree: Path) -> None:
    engine = _backup(lib_config, source_tree)
    before = _read(engine)
    with engine.connect() as connection:
        command.downgrade(alembic_config(connection), "0006")
        connection.commit()
    assert all(path is not None for _, path, _, _ in _stored(engine))
    upgrade(engine)
    assert sum(1 for _, path, _, _ in _stored(engine) if path is not None) == 2
    assert _read(engine) == before


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)  # the page sizes of SQLite's file
def test_an_entry_takes_at_most_250_bytes(catalog_url: str) -> None:
    """20,000 entries with paths of a file server's length, inserted as a backup
    inserts them, then indexed as a job's end indexes them: every byte the
    catalog holds for them (row, indexes, trigram index) over their number."""
    engine = make_engine(catalog_url)
    upgrade(engine)
    count = 20_000
    with Session(engine) as session:
        volume = Volume(label="SIZ001L9", uuid="size-test", pool="default", block_size=512 << 10)
        job = Job(level="full", strategy="direct", status="running", sources="[]")
        session.add_all([volume, job])
        session.flush()
        tape_file = TapeFile(job_id=job.id, volume_id=volume.id, file_number=1, kind="data", block_size=512 << 10)
        session.add(tape_file)
        session.flush()
        rows = []
        for i in range(count):
            path = f"/srv/home/user{i % 997:03d}/project-{i // 7 % 50}/data/file-{i:07d}.txt".encode()
            rows.append(
                dict(
                    job_id=job.id,
                    tape_file_id=tape_file.id,
                    path=path,
                    path_text=path_text(path),
                    kind="file",
                    size=i * 37,
                    mode=0o100644,
                    uid=1000,
                    gid=1000,
                    uname="user",
                    gname="user",
                    mtime_ns=1_700_000_000_000_000_000 + i,
                    ctime_ns=1_700_000_000_000_000_000 + i,
                    inode=1_000_000 + i,
                    device=2049,
                    xxh3=f"{i * 0x9E3779B97F4A7C15 % (1 << 128):032x}",
                    offset=i * 4608,
                    header_size=512,
                )
            )
        session.execute(insert(Entry), rows)
        job.status = "ok"
        session.commit()
    with engine.connect() as connection:
        pages = dict(
            connection.exec_driver_sql(
                "SELECT name, SUM(pgsize) FROM dbstat WHERE name LIKE 'entry%' OR name LIKE 'ix_entry%' GROUP BY name"
            ).all()
        )
    assert set(pages) >= {"entry", "entry_trigram_data", "ix_entry_job_id"}
    assert sum(pages.values()) / count <= 250, pages  # ~290 before schema 0007, 217 after
