"""Automatic cleaning after a job, ``pytp clean`` counting uses, used-up cartridges (issue 11, part 2).

A virtual library at the default 512 KiB blocks with a cleaning cartridge ``CLN001L1`` in a
slot; the drive asks for cleaning through its fault configuration (TapeAlert 20 "Clean now"),
and the virtual changer clears 20/21 when a cleaning cartridge is loaded, as a drive does.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result
from sqlmodel import Session, select

from pytp.catalog.database import open_catalog
from pytp.catalog.models import CleaningCartridge
from pytp.cli.main import cli
from pytp.tapeio.exitcodes import EXIT_CHANGER, EXIT_CONFIG
from pytp.tapeio.virtual_changer import VirtualChanger, add_tape
from pytp.tapeio.virtual_drive import configure_drive, read_health
from pytp.tapeio.virtual_tape import configure_tape
from tests.conftest import make_tree, write_library_config

BLOCK = 512 << 10
CLEANER = "CLN001L1"
CLEANER_SLOT = 5  # write_library_config: 6 slots, tapes in 1-4


def _pytp(config: Path, *args: str, expect: int = 0) -> Result:
    result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
    assert result.exit_code == expect, (result.output, result.stderr)
    return result


def _site(tmp_path: Path, url: str, cleaner: bool = True) -> tuple[Path, Path, Path]:
    config = write_library_config(tmp_path / "site", url, block_size=BLOCK)
    library = tmp_path / "site" / "lib"
    if cleaner:
        add_tape(library, CLEANER, CLEANER_SLOT)
    return config, library, make_tree(tmp_path / "src")


def _cartridge(url: str) -> CleaningCartridge | None:
    with Session(open_catalog(url)) as session:
        return session.exec(select(CleaningCartridge).where(CleaningCartridge.barcode == CLEANER)).first()


def test_a_drive_that_asks_is_cleaned_after_the_job_and_the_use_counted(tmp_path: Path, catalog_url: str) -> None:
    config, library, src = _site(tmp_path, catalog_url)
    configure_drive(library / "drives" / "0", tapealert=[20])
    summary = json.loads(_pytp(config, "backup", str(src / "docs"), "--format", "json").stdout)
    assert (summary["status"], summary["exit_code"]) == ("ok", 0)
    assert [f["number"] for f in summary["health"]["tapealert"]] == [20]
    assert summary["health"]["cleaning"] == f"cleaned with {CLEANER} from slot {CLEANER_SLOT} (use 1 of 50)"
    assert f"drive d0: cleaned with {CLEANER} from slot {CLEANER_SLOT} (use 1 of 50)" in summary["notes"]
    assert any(f"loaded cleaning cartridge {CLEANER}" in m for m in summary["tape_moves"])
    # The library counted the load, the drive no longer asks, the cartridge is home, nothing in the drive.
    changer = VirtualChanger(library)
    assert changer.cleaning_uses() == {CLEANER: 1}
    assert read_health(library / "drives" / "0").tapealert == ()
    status = changer.status()
    assert status.slot(CLEANER_SLOT).barcode == CLEANER and not status.drive(0).full
    row = _cartridge(catalog_url)
    assert row is not None and (row.uses, row.max_uses, row.last_drive) == (1, 50, "d0")
    assert row.last_used_at is not None
    # The job's log in the catalog says so too.
    log = json.loads(_pytp(config, "jobs", str(summary["job_id"]), "--format", "json").stdout)[0]["log"]
    assert f"cleaning: cleaned with {CLEANER}" in log

    # pytp clean counts in the same row.
    out = _pytp(config, "clean", "d0").stdout
    assert "(use 2 of that cartridge)" in out and f"Cleaning cartridge {CLEANER}: 2 of 50 uses." in out
    assert _cartridge(catalog_url).uses == 2  # type: ignore[union-attr]


def test_a_used_up_cartridge_is_not_loaded_and_the_job_still_succeeds(tmp_path: Path, sqlite_url: str) -> None:
    config, library, src = _site(tmp_path, sqlite_url)
    engine = open_catalog(sqlite_url)
    with Session(engine) as session:
        session.add(CleaningCartridge(barcode=CLEANER, uses=50, max_uses=50))
        session.commit()
    configure_drive(library / "drives" / "0", tapealert=[20])
    summary = json.loads(_pytp(config, "backup", str(src / "docs"), "--format", "json").stdout)
    assert (summary["status"], summary["exit_code"]) == ("ok", 0)
    cleaning = summary["health"]["cleaning"]
    assert "not cleaned" in cleaning and f"{CLEANER} (50 of 50 uses)" in cleaning and "Replace it" in cleaning
    assert VirtualChanger(library).cleaning_uses() == {}  # never loaded
    assert read_health(library / "drives" / "0").tapealert == (20,)  # still asking
    result = _pytp(config, "clean", "d0", expect=EXIT_CHANGER)
    assert f"Error: Every cleaning cartridge in library lib is used up: {CLEANER} (50 of 50 uses)." in result.stderr


def test_expired_cleaning_media_reported_by_the_drive_retires_the_cartridge(tmp_path: Path, sqlite_url: str) -> None:
    config, library, _ = _site(tmp_path, sqlite_url)
    # The drive reports TapeAlert 22 (expired cleaning media) with this cartridge loaded.
    configure_tape(library / "tapes" / CLEANER, tapealert=[22])
    result = _pytp(config, "clean", "d0", expect=EXIT_CHANGER)
    assert f"rejected cleaning cartridge {CLEANER}" in result.stderr and "replace the cartridge" in result.stderr
    row = _cartridge(sqlite_url)
    assert row is not None and (row.uses, row.max_uses) == (1, 0)
    assert VirtualChanger(library).status().slot(CLEANER_SLOT).barcode == CLEANER  # put back all the same
    result = _pytp(config, "clean", "d0", expect=EXIT_CHANGER)
    assert f"is used up: {CLEANER} (1 use(s); the drive reported it expired)." in result.stderr
    assert VirtualChanger(library).cleaning_uses() == {CLEANER: 1}  # not loaded a second time
    # The drive's word is final: a larger configured number of uses does not bring it back.
    data = json.loads(config.read_text())
    data["cleaning"] = {"max_uses": 100}
    config.write_text(json.dumps(data))
    _pytp(config, "clean", "d0", expect=EXIT_CHANGER)


def test_no_cleaning_cartridge_is_a_note_not_a_failure(tmp_path: Path, sqlite_url: str) -> None:
    config, library, src = _site(tmp_path, sqlite_url, cleaner=False)
    configure_drive(library / "drives" / "0", tapealert=[21])
    summary = json.loads(_pytp(config, "backup", str(src / "docs"), "--format", "json").stdout)
    assert (summary["status"], summary["exit_code"]) == ("ok", 0)
    assert "not cleaned: Library lib holds no cleaning cartridge" in summary["health"]["cleaning"]
    assert any("asks for cleaning (TapeAlert 21), not cleaned" in n for n in summary["notes"])


def test_the_configured_uses_per_cartridge(tmp_path: Path, sqlite_url: str) -> None:
    config, library, _ = _site(tmp_path, sqlite_url)
    data = json.loads(config.read_text())
    data["cleaning"] = {"max_uses": 2}
    config.write_text(json.dumps(data))
    assert "Cleaning cartridge CLN001L1: 1 of 2 uses." in _pytp(config, "clean", "d0").stdout
    assert "Cleaning cartridge CLN001L1: 2 of 2 uses." in _pytp(config, "clean", "d1").stdout
    result = _pytp(config, "clean", "d0", expect=EXIT_CHANGER)
    assert f"used up: {CLEANER} (2 of 2 uses)" in result.stderr
    assert VirtualChanger(library).cleaning_uses() == {CLEANER: 2}
    # A larger number of uses (a mistake corrected, another make of cartridge) applies at once.
    data["cleaning"] = {"max_uses": 3}
    config.write_text(json.dumps(data))
    assert "Cleaning cartridge CLN001L1: 3 of 3 uses." in _pytp(config, "clean", "d0").stdout
    # A value that is not a positive integer is a configuration error (exit 4) naming the key.
    for bad in (0, "many", -3):
        data["cleaning"] = {"max_uses": bad}
        config.write_text(json.dumps(data))
        assert "cleaning.max_uses must be" in _pytp(config, "clean", "d0", expect=EXIT_CONFIG).stderr
    data["cleaning"] = {"max_use": 3}
    config.write_text(json.dumps(data))
    assert "max_uses" in _pytp(config, "clean", "d0", expect=EXIT_CONFIG).stderr  # did you mean
