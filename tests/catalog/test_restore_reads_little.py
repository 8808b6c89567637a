"""Restoring one small file from the middle of a 1 GB archive reads only its
own blocks plus one (the label), counted by the virtual drive."""

from __future__ import annotations

import os
from pathlib import Path

from sqlmodel import Session, select

from pytp.catalog.backup import BackupOptions, run_backup
from pytp.catalog.config import read_config
from pytp.catalog.database import open_catalog
from pytp.catalog.devices import select as select_drive
from pytp.catalog.models import Entry
from pytp.catalog.restore import RestoreOptions, run_restore
from pytp.tapeio.virtual_drive import read_counters
from tests.conftest import write_library_config

BLOCK = 256 << 10


def test_small_file_from_1gb_archive_reads_its_blocks_plus_one(tmp_path: Path, sqlite_url: str) -> None:
    config = read_config(
        write_library_config(tmp_path / "site", sqlite_url, tape_size=2 << 30, block_size=BLOCK, tapes=1), "x"
    )
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a-first.bin", "z-last.bin"):
        with open(src / name, "wb") as f:  # allocated, unwritten: fast to make, 512 MB of tar data each
            os.posix_fallocate(f.fileno(), 0, 512 << 20)
    (src / "m-middle.txt").write_bytes(os.urandom(3000))
    engine = open_catalog(config.catalog_url)
    selection = select_drive(config)
    run_backup(engine, config, selection, BackupOptions(sources=[str(src)]))
    with Session(engine) as session:
        entry = session.exec(select(Entry).where(Entry.path_text.endswith("m-middle.txt"))).one()
    first_block = entry.offset // BLOCK
    last_block = (entry.offset + entry.header_size + entry.size - 1) // BLOCK
    assert entry.offset > 500 << 20  # really in the middle of the archive

    drive_path = config.drive(selection.drive.name).device_path
    before = read_counters(drive_path)
    run_restore(engine, config, selection, RestoreOptions(target=str(tmp_path / "out"), patterns=["m-middle.txt"]))
    after = read_counters(drive_path)
    blocks_read = after.blocks_read - before.blocks_read
    assert blocks_read <= (last_block - first_block + 1) + 1, blocks_read
    assert (tmp_path / "out" / str(src).lstrip("/") / "m-middle.txt").read_bytes() == (
        src / "m-middle.txt"
    ).read_bytes()
