"""Verify in batches (issue 9): rows streamed in offset order, the tape file
read in chunks that hold many members, one-record headers checked without
``tarfile``, and every kind of damage still named by path.

Real virtual library at the default 512 KiB block size, real SQLite file (and
PostgreSQL when the suite has it), real backups; the damage is done to the
virtual tape's bytes or to the catalog's rows, as a bad tape or a bad
catalog would do it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlmodel import Session, select

from pytp.catalog.backup import BackupOptions, run_backup
from pytp.catalog.config import read_config
from pytp.catalog.database import open_catalog
from pytp.catalog.devices import select as select_drive
from pytp.catalog.errors import CatalogInconsistent
from pytp.catalog.models import Entry
from pytp.catalog.verify import verify_tape
from pytp.tapeio.tarformat import RECORD
from pytp.tapeio.virtual_drive import loaded_tape
from pytp.tapeio.virtual_tape import configure_tape
from tests.conftest import make_tree, write_library_config

BLOCK = 512 << 10  # the default block size
SECOND = 1_000_000_000


@pytest.fixture
def site(tmp_path: Path, catalog_url: str):  # type: ignore[no-untyped-def]
    """A backup of a mixed tree and 3,000 small files at the default block size: (config, engine, source)."""
    config = read_config(
        write_library_config(tmp_path / "site", catalog_url, block_size=BLOCK, tape_size=256 << 20), "--config"
    )
    source = make_tree(tmp_path / "src", big_file=9 << 20)  # larger than a chunk: hashed piece by piece
    many = source / "many"
    for i in range(3000):
        d = many / f"d{i // 500}"
        d.mkdir(parents=True, exist_ok=True)
        f = d / f"f{i:04d}"
        f.write_bytes(os.urandom(i % 7000))
        if i % 2:
            os.utime(f, ns=(1_600_000_000 * SECOND, 1_600_000_000 * SECOND + i))  # whole seconds: one record
        else:
            os.utime(f, ns=(1_600_000_000 * SECOND, 1_600_000_000 * SECOND))
    engine = open_catalog(config.catalog_url)
    result = run_backup(engine, config, select_drive(config), BackupOptions(sources=[str(source)]))
    assert result.status == "ok", result.problems
    return config, engine, source


def _entry(engine, suffix: str) -> Entry:  # type: ignore[no-untyped-def]
    with Session(engine, expire_on_commit=False) as session:
        return session.exec(select(Entry).where(Entry.path_text.endswith(suffix))).one()


def _flip(config, offset: int) -> None:  # type: ignore[no-untyped-def]
    tape = loaded_tape(config.drive("d0").device_path)
    assert tape is not None
    with open(tape / "file-00001", "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x5A]))


def test_every_member_is_checked_and_small_ones_have_one_record(site) -> None:  # type: ignore[no-untyped-def]
    config, engine, _ = site
    report = verify_tape(engine, config, select_drive(config), keep_loaded=True)
    assert report.ok, report.problems[:5]
    with Session(engine) as session:
        rows = session.exec(select(Entry.path_text, Entry.header_size, Entry.mtime_ns)).all()
    assert report.checked == len(rows)
    whole = [size for path, size, mtime in rows if "/many/" in path and mtime % SECOND == 0]
    assert len(whole) >= 1500 and set(whole) == {RECORD}  # whole-second small files: a 512-byte header
    fine = [size for path, size, mtime in rows if mtime % SECOND]
    assert fine and set(fine) == {3 * RECORD}  # sub-second: pax mtime kept


def test_damage_is_named_by_path_header_data_and_catalog(site) -> None:  # type: ignore[no-untyped-def]
    config, engine, _ = site
    selection = select_drive(config)
    data = _entry(engine, "/f1001")  # odd: a sub-second time, a pax header
    header = _entry(engine, "/f2000")  # even: one 512-byte record
    big = _entry(engine, "big.bin")
    assert header.header_size == RECORD and data.size > 0
    _flip(config, data.offset + data.header_size + data.size // 2)
    _flip(config, header.offset + 3)  # in the name: the checksum no longer matches
    _flip(config, big.offset + big.header_size + (8 << 20))  # past the first chunk of a large member
    with Session(engine) as session:
        liar = session.exec(select(Entry).where(Entry.path_text.endswith("/f0500"))).one()
        liar.size += 1  # the catalog says another size than the header
        session.add(liar)
        session.commit()
        liar_path = liar.path_text
    report = verify_tape(engine, config, selection, keep_loaded=True)
    problems = dict(report.problems)
    assert len(report.problems) == 4, report.problems
    assert "checksum mismatch" in problems[data.path_text]
    assert "damaged tar header (bad checksum" in problems[header.path_text]
    assert "checksum mismatch" in problems[big.path_text]
    assert problems[liar_path] == "tar header on tape does not match the catalog"


def test_a_wrong_header_size_in_the_catalog_is_damage_not_a_wrong_read(site) -> None:  # type: ignore[no-untyped-def]
    config, engine, _ = site
    with Session(engine) as session:
        entry = session.exec(select(Entry).where(Entry.path_text.endswith("/f2002"))).one()
        entry.header_size += RECORD
        session.add(entry)
        session.commit()
        path = entry.path_text
    report = verify_tape(engine, config, select_drive(config), keep_loaded=True)
    assert [p for p, _ in report.problems] == [path]
    assert "damaged tar header" in report.problems[0][1]


def test_shared_offsets_stop_before_any_member_is_read(site) -> None:  # type: ignore[no-untyped-def]
    config, engine, _ = site
    with Session(engine) as session:
        a = session.exec(select(Entry).where(Entry.path_text.endswith("/f0010"))).one()
        b = session.exec(select(Entry).where(Entry.path_text.endswith("/f0011"))).one()
        b.offset = a.offset
        session.add(b)
        session.commit()
    with pytest.raises(CatalogInconsistent, match="f0011 \\(offset \\d+ is also that of .*f0010\\)"):
        verify_tape(engine, config, select_drive(config), keep_loaded=True)


def test_an_unreadable_block_names_the_member_and_the_rest_not_checked(site) -> None:  # type: ignore[no-untyped-def]
    config, engine, _ = site
    target = _entry(engine, "/f1500")
    block = target.offset // BLOCK
    tape = loaded_tape(config.drive("d0").device_path)
    assert tape is not None
    configure_tape(tape, read_errors=[(1, block)])
    report = verify_tape(engine, config, select_drive(config), keep_loaded=True)
    with Session(engine) as session:
        after = session.exec(select(Entry.path_text).where(Entry.offset > (block + 1) * BLOCK)).all()
    reasons = dict(report.problems)
    assert any(r.startswith("unreadable") for r in reasons.values())
    assert after and all(reasons[p].startswith("not checked") for p in after)
    assert report.checked > 0  # the members before the bad block were checked
