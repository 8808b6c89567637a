"""Verify walks a tape file by the catalog's offsets (issue 9): rows fetched a
batch at a time, members sliced out of chunks of one drive transfer, and a
member that straddles two chunks joined on its own.  Whatever falls at a
chunk's or a batch's edge is still checked, and every damage still named.

Real virtual library at the default 512 KiB blocks (a chunk is 1 MiB), real
SQLite file (and PostgreSQL when the suite has it), real backups; damage is
done to the virtual tape's bytes or to the catalog's rows.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session, col, select

from pytp.catalog import verify_batch
from pytp.catalog.backup import BackupOptions, run_backup
from pytp.catalog.config import read_config
from pytp.catalog.database import open_catalog
from pytp.catalog.devices import select as select_drive
from pytp.catalog.models import Entry
from pytp.catalog.verify import verify_tape
from pytp.tapeio.virtual_drive import loaded_tape
from tests.conftest import write_library_config

BLOCK = 512 << 10  # the default block size
CHUNK = 2 * BLOCK  # one drive transfer: verify's chunk at this block size
SECOND = 1_000_000_000


def _backup(tmp_path: Path, url: str):  # type: ignore[no-untyped-def]
    """A backup of 1,200 files of 0–12 KiB (~7 MiB: a few chunks, hundreds of members each): (config, engine)."""
    config = read_config(
        write_library_config(tmp_path / "site", url, block_size=BLOCK, tape_size=256 << 20), "--config"
    )
    source = tmp_path / "src"
    for i in range(1200):
        d = source / f"d{i // 400}"
        d.mkdir(parents=True, exist_ok=True)
        f = d / f"f{i:04d}"
        f.write_bytes(os.urandom((i * 37) % 12_000))
        # half of them whole seconds (one 512-byte header), half with a pax mtime (1,536 bytes)
        os.utime(f, ns=(1_600_000_000 * SECOND, 1_600_000_000 * SECOND + (i % 2)))
    engine = open_catalog(config.catalog_url)
    result = run_backup(engine, config, select_drive(config), BackupOptions(sources=[str(source)]))
    assert result.status == "ok", result.problems
    return config, engine


@pytest.fixture
def site(tmp_path: Path, catalog_url: str):  # type: ignore[no-untyped-def]
    return _backup(tmp_path, catalog_url)


@pytest.fixture
def sqlite_site(tmp_path: Path, sqlite_url: str):  # type: ignore[no-untyped-def]
    return _backup(tmp_path, sqlite_url)


def _files(engine, kinds: tuple[str, ...] = ("file",)) -> list[Entry]:  # type: ignore[no-untyped-def]
    """The members of the backup of these kinds, in offset order."""
    with Session(engine, expire_on_commit=False) as session:
        query = select(Entry).where(col(Entry.kind).in_(kinds)).order_by(col(Entry.offset))
        return list(session.exec(query).all())


def _tape_file(config) -> Path:  # type: ignore[no-untyped-def]
    tape = loaded_tape(config.drive("d0").device_path)
    assert tape is not None
    return tape / "file-00001"


def _flip(config, offset: int) -> None:  # type: ignore[no-untyped-def]
    with open(_tape_file(config), "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x5A]))


def _straddling(files: list[Entry], within: str) -> list[Entry]:
    """Members whose headers (``within="header"``) or data (``"data"``) run across the end of a chunk."""
    found = []
    for e in files:
        start = e.offset if within == "header" else e.offset + e.header_size
        end = e.offset + e.header_size if within == "header" else e.offset + e.header_size + e.size
        if start // CHUNK != (end - 1) // CHUNK and end > start:
            found.append(e)
    return found


def test_damage_at_chunk_and_batch_edges_is_named(site, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    config, engine = site
    monkeypatch.setattr(verify_batch, "_BATCH", 100)  # rows in twelve batches
    files = _files(engine)
    data_across = _straddling(files, "data")[0]
    header_across = _straddling(files, "header")[0]
    first_of_batch, last_of_batch = files[300], files[499]
    assert len({data_across.id, header_across.id, first_of_batch.id, last_of_batch.id}) == 4
    # one byte of data after the chunk's end; one byte of a header on either side of it
    _flip(config, data_across.offset + data_across.header_size + data_across.size - 1)
    _flip(config, header_across.offset + 3)
    _flip(config, first_of_batch.offset + first_of_batch.header_size)
    with Session(engine) as session:
        liar = session.get(Entry, last_of_batch.id)
        assert liar is not None
        liar.size += 1  # the catalog says another size than the header
        session.add(liar)
        session.commit()
    report = verify_tape(engine, config, select_drive(config), keep_loaded=True)
    problems = dict(report.problems)
    assert len(report.problems) == 4, report.problems
    assert problems[data_across.path_text] == "checksum mismatch: the data on tape is damaged"
    assert problems[header_across.path_text].startswith("damaged tar header (bad checksum")
    assert problems[first_of_batch.path_text] == "checksum mismatch: the data on tape is damaged"
    assert problems[last_of_batch.path_text] == "tar header on tape does not match the catalog"
    with Session(engine) as session:
        members = len(session.exec(select(Entry.id)).all())
    assert report.checked == members - 4  # every other member, in every batch and chunk, checked


def test_a_member_straddling_two_chunks_verifies_clean(site) -> None:  # type: ignore[no-untyped-def]
    config, engine = site
    files = _files(engine)
    assert _straddling(files, "data") and _straddling(files, "header")  # the data set has both
    report = verify_tape(engine, config, select_drive(config), keep_loaded=True)
    assert report.ok, report.problems[:5]
    assert report.bytes == sum(e.size for e in files)


def test_a_tape_file_cut_short_names_the_member_cut_and_every_one_after(site) -> None:  # type: ignore[no-untyped-def]
    config, engine = site
    files = _files(engine)
    # the first block boundary past the first chunk that falls inside a member's data
    cut = next(
        e
        for e in files
        if e.offset > CHUNK and (e.offset + e.header_size) // BLOCK != (e.offset + e.header_size + e.size - 1) // BLOCK
    )
    length = (cut.offset + cut.header_size + cut.size - 1) // BLOCK * BLOCK
    os.truncate(_tape_file(config), length)
    report = verify_tape(engine, config, select_drive(config), keep_loaded=True)
    members = _files(engine, ("file", "dir"))  # all of them
    after = [e.path_text for e in members if e.offset >= length]
    assert after and [p for p, _ in report.problems] == [cut.path_text, *after]
    assert report.problems[0][1] == "missing: the tape file ends inside this member"
    assert (
        report.problems[1][1]
        == f"unreadable: tape file ended at byte {length}, before byte {files[files.index(cut) + 1].offset}"
    )
    assert {what for _, what in report.problems[2:]} == {"not checked: the tape file could not be read past an error"}
    assert report.checked == len(members) - len(report.problems)  # every member before the cut


def test_digests_stored_as_text_or_missing_are_read_as_before(sqlite_site) -> None:  # type: ignore[no-untyped-def]
    """A digest written by plain SQL as lower-case hex is checked; upper-case hex never
    matched (it is compared as stored); a row without one (a rebuild's) is read whole.
    (Only SQLite can hold a text digest: PostgreSQL's bytea column refuses it.)"""
    config, engine = sqlite_site
    lower, upper, none = _files(engine)[10:13]
    with engine.begin() as connection:
        for entry, value in ((lower, lower.xxh3), (upper, (upper.xxh3 or "").upper()), (none, None)):
            connection.execute(text("UPDATE entry SET xxh3 = :v WHERE id = :id"), {"v": value, "id": entry.id})
        stored = dict(connection.execute(text("SELECT id, typeof(xxh3) FROM entry WHERE id IN (:a, :b, :c)"),
                                         {"a": lower.id, "b": upper.id, "c": none.id}).all())  # fmt: skip
    assert stored == {lower.id: "text", upper.id: "text", none.id: "null"}
    report = verify_tape(engine, config, select_drive(config), keep_loaded=True)
    assert report.problems == [(upper.path_text, "checksum mismatch: the data on tape is damaged")]
