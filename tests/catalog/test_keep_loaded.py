"""Tapes go back to their home slots after a job unless --keep-loaded; a restore reads a tape where it is.

Issue 11, part 4.  The virtual library of two drives at 512 KiB blocks, real
SQLite files, real GNU tar.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytp.catalog.backup import BackupOptions, run_backup
from pytp.catalog.config import read_config
from pytp.catalog.database import open_catalog
from pytp.catalog.devices import open_changer, release_unused
from pytp.catalog.devices import select as select_drive
from pytp.catalog.restore import RestoreOptions, run_restore
from pytp.catalog.verify import verify_tape
from tests.cli.runner import invoke
from tests.conftest import make_tree, write_library_config

BLOCK = 512 << 10


@pytest.fixture
def site(tmp_path: Path, sqlite_url: str) -> Path:
    return write_library_config(tmp_path / "site", sqlite_url, block_size=BLOCK)


def _drives(config) -> list[str | None]:  # type: ignore[no-untyped-def]
    """The barcode in each drive of the library (None: empty)."""
    status = open_changer(config.libraries[0]).status()
    return [d.barcode if d.full else None for d in status.drives]


def _home(config, barcode: str) -> int | None:  # type: ignore[no-untyped-def]
    status = open_changer(config.libraries[0]).status()
    return next((s.number for s in status.slots if s.full and s.barcode == barcode), None)


def test_commands_return_the_tape_home_unless_keep_loaded(site: Path, tmp_path: Path) -> None:
    config = read_config(site, "--config")
    src = make_tree(tmp_path / "src", big_file=1 << 20)
    invoke(site, "backup", str(src))
    (tape,) = json.loads(invoke(site, "backup", str(src), "--format", "json").stdout)["tapes"]
    assert _drives(config) == [None, None]
    assert _home(config, tape) == 1
    invoke(site, "verify")
    assert _drives(config) == [None, None]
    invoke(site, "restore", str(tmp_path / "out"), "--job", "1")
    assert _drives(config) == [None, None] and _home(config, tape) == 1
    invoke(site, "verify", "--keep-loaded")
    assert _drives(config) == [tape, None]
    invoke(site, "restore", str(tmp_path / "out2"), "--job", "2", "--keep-loaded")
    assert _drives(config) == [tape, None]
    invoke(site, "backup", str(src), "--keep-loaded")
    assert _drives(config) == [tape, None]
    # The next job without --keep-loaded finds it there, uses it and sends it home.
    invoke(site, "backup", str(src))
    assert _drives(config) == [None, None] and _home(config, tape) == 1


def test_a_restore_puts_back_what_it_found_in_the_drive(site: Path, tmp_path: Path) -> None:
    config = read_config(site, "--config")
    src = make_tree(tmp_path / "src", big_file=1 << 20)
    invoke(site, "backup", str(src), "-d", "d0")
    # Another pool's tape is left in the drive by a job run with --keep-loaded.
    other = json.loads(
        invoke(site, "backup", str(src), "-d", "d0", "--pool", "offsite", "--keep-loaded", "--format", "json").stdout
    )["tapes"][0]
    assert _drives(config) == [other, None]
    invoke(site, "restore", str(tmp_path / "out"), "--job", "1", "-d", "d0")
    assert _drives(config) == [other, None]  # the library as the restore found it


def test_a_restore_reads_the_tape_in_the_drive_that_holds_it(site: Path, tmp_path: Path) -> None:
    config = read_config(site, "--config")
    engine = open_catalog(config.catalog_url)
    src = make_tree(tmp_path / "src", big_file=1 << 20)
    # The tape stays in the second drive (the core API's default leaves it loaded).
    backup = run_backup(engine, config, select_drive(config, "d1"), BackupOptions(sources=[str(src)]))
    release_unused()
    (tape,) = backup.tapes
    assert _drives(config) == [None, tape]
    # pytp chooses the first free drive, d0; the restore takes d1 instead, with no changer move.
    chosen = select_drive(config)
    assert chosen.drive.name == "d0" and chosen.automatic
    result = run_restore(engine, config, chosen, RestoreOptions(target=str(tmp_path / "out"), job_id=backup.job_id))
    release_unused()
    assert result.loads == 0 and result.verified > 0
    assert _drives(config) == [None, tape]
    # A drive the user named is used as named: the tape is moved to it.
    named = run_restore(
        engine,
        config,
        select_drive(config, "d0"),
        RestoreOptions(target=str(tmp_path / "out2"), job_id=backup.job_id),
    )
    release_unused()
    assert named.loads == 1


def test_verify_core_default_leaves_the_library_as_found(site: Path, tmp_path: Path) -> None:
    config = read_config(site, "--config")
    engine = open_catalog(config.catalog_url)
    src = make_tree(tmp_path / "src", big_file=1 << 20)
    options = BackupOptions(sources=[str(src)], keep_loaded=False)
    backup = run_backup(engine, config, select_drive(config, "d0"), options)
    release_unused()
    assert _drives(config) == [None, None]
    report = verify_tape(engine, config, select_drive(config, "d0"), job_id=backup.job_id)
    release_unused()
    assert report.ok and _drives(config) == [None, None]
