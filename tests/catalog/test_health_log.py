"""Drive health around every job (issue 11, part 2): readings before and after, stored per job
and per tape, in the job summary (JSON, CSV, log) and in ``pytp tapes``.

Virtual library at the default 512 KiB blocks, real SQLite/PostgreSQL catalogs, real GNU tar
behind the jobs; TapeAlert flags and error counters come from the virtual drive's and tape's
fault configuration (``configure_drive``/``configure_tape``), as the README documents.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path

from click.testing import CliRunner, Result
from sqlmodel import Session, col, select

from pytp.catalog.config import DriveConfig
from pytp.catalog.database import open_catalog
from pytp.catalog.health_log import read_drive
from pytp.catalog.models import HealthReading, Volume
from pytp.cli.main import cli
from pytp.tapeio.virtual_changer import VirtualChanger
from pytp.tapeio.virtual_drive import configure_drive
from pytp.tapeio.virtual_tape import configure_tape
from tests.conftest import make_tree, write_library_config

BLOCK = 512 << 10  # the default block size


def _pytp(config: Path, *args: str, expect: int = 0) -> Result:
    result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
    assert result.exit_code == expect, (result.output, result.stderr)
    return result


def _json(config: Path, *args: str, expect: int = 0) -> dict:  # type: ignore[type-arg]
    return json.loads(_pytp(config, *args, "--format", "json", expect=expect).stdout)


def _tape_row(config: Path, label: str) -> dict:  # type: ignore[type-arg]
    return next(r for r in _json(config, "tapes") if r["label"] == label)


def test_flags_and_error_growth_in_the_summary_the_log_and_pytp_tapes(tmp_path: Path, catalog_url: str) -> None:
    config = write_library_config(tmp_path / "site", catalog_url, block_size=BLOCK)
    library = tmp_path / "site" / "lib"
    src = make_tree(tmp_path / "src")
    backup = _json(config, "backup", str(src / "docs"))
    assert backup["health"] == {
        "drive": "d0",
        "available": True,
        "unavailable": None,
        "tapealert": [],
        "read_errors": {"corrected": 0, "uncorrected": 0},
        "write_errors": {"corrected": 0, "uncorrected": 0},
        "cleaning": None,
    }
    tape = backup["tapes"][0]
    assert _tape_row(config, tape)["errors"] == 0 and _tape_row(config, tape)["tapealert"] == []

    # The tape goes bad: its own faults travel with it (flag 4 "Media", read errors).
    configure_tape(library / "tapes" / tape, tapealert=[4], error_counters={"read": {"corrected": 3, "uncorrected": 1}})
    if VirtualChanger(library).status().drive(0).full:
        _pytp(config, "unload", "--drive", "d0")  # the verify below loads the tape into an empty drive
    verify = _json(config, "verify", "--job", str(backup["job_id"]))
    health = verify["health"]
    assert health["tapealert"] == [{"number": 4, "name": "Media", "severity": "critical"}]
    # The drive was empty before the verify loaded the tape: the counts grew from 0.
    assert health["read_errors"] == {"corrected": 3, "uncorrected": 1}
    assert health["write_errors"] == {"corrected": 0, "uncorrected": 0}
    assert "drive d0: TapeAlert 4 Media (critical)" in verify["notes"]  # critical flags go to the log as notes

    row = _tape_row(config, tape)
    assert (row["read_errors"], row["write_errors"], row["errors"]) == (4, 0, 4)
    assert row["tapealert"] == [{"number": 4, "name": "Media", "severity": "critical"}]
    assert row["last_verify_result"] == "ok"
    assert datetime.fromisoformat(row["last_verified"]).tzinfo is not None
    table = _pytp(config, "tapes").stdout
    assert f"{row['last_verified']} ok" in table
    csv_row = next(csv.DictReader(io.StringIO(_pytp(config, "tapes", "--format", "csv").stdout)))
    assert csv_row["tapealert"] == "4:Media:critical" and csv_row["errors"] == "4"
    assert _json(config, "tapes", tape)[0]["errors"] == 4

    # The job's log (pytp jobs JOB) has the health line of the verify that read it.
    log = _json(config, "jobs", str(backup["job_id"]))[0]["log"]
    assert "health: drive d0: TapeAlert 4 Media (critical)" in log and "read +3/+1" in log

    # Stored per job and per tape: the backup's and the verify's two readings each.
    engine = open_catalog(catalog_url)
    with Session(engine) as session:
        volume = session.exec(select(Volume).where(Volume.label == tape)).one()
        rows = session.exec(
            select(HealthReading).where(HealthReading.job_id == backup["job_id"]).order_by(col(HealthReading.id))
        ).all()
    assert [r.phase for r in rows] == ["before", "after", "before", "after"]
    assert rows[-1].volume_id == volume.id and (rows[-1].tapealert, rows[-1].read_errors) == ("4", 4)
    assert rows[-2].volume_id is None  # the drive was empty before the verify loaded the tape


def test_drive_flags_show_in_table_and_csv_summaries(tmp_path: Path, sqlite_url: str) -> None:
    config = write_library_config(tmp_path / "site", sqlite_url, block_size=BLOCK)
    src = make_tree(tmp_path / "src")
    configure_drive(tmp_path / "site" / "lib" / "drives" / "0", tapealert=[3, 36])
    out = _pytp(config, "backup", str(src / "docs")).stdout
    assert "Drive health: drive d0: TapeAlert 3 Hard error (warning); 36 Drive temperature (warning)" in out
    rows = list(csv.DictReader(io.StringIO(_pytp(config, "backup", str(src / "docs"), "--format", "csv").stdout)))
    health = json.loads(rows[0]["health"])
    assert [f["number"] for f in health["tapealert"]] == [3, 36]
    # Warnings are not critical: no note.
    assert "TapeAlert" not in rows[0]["notes"]


def test_a_drive_that_cannot_report_never_fails_the_job(tmp_path: Path, sqlite_url: str) -> None:
    config = write_library_config(tmp_path / "site", sqlite_url, block_size=BLOCK)
    src = make_tree(tmp_path / "src")
    first = _json(config, "backup", str(src / "docs"))
    # A tape whose health block is garbage: the drive still reads and writes it.
    meta_path = tmp_path / "site" / "lib" / "tapes" / first["tapes"][0] / "tape.json"
    meta = json.loads(meta_path.read_text())
    meta["faults"]["tapealert"] = ["not a number"]
    meta_path.write_text(json.dumps(meta))
    summary = _json(config, "backup", str(src / "docs"))
    assert (summary["status"], summary["exit_code"]) == ("ok", 0)
    assert summary["health"]["available"] is False and "ValueError" in summary["health"]["unavailable"]
    assert any(n.startswith("drive d0: health unavailable: ") for n in summary["notes"])
    with Session(open_catalog(sqlite_url)) as session:
        after = session.exec(
            select(HealthReading).where(HealthReading.job_id == summary["job_id"], HealthReading.phase == "after")
        ).one()
    assert after.tapealert is None and after.unavailable and "ValueError" in after.unavailable
    # pytp tapes keeps the newest reading the drive answered.
    assert _tape_row(config, first["tapes"][0])["errors"] == 0


def test_an_st_drive_without_device_or_sg_logs_is_unavailable_with_a_reason(tmp_path: Path) -> None:
    health, why = read_drive(DriveConfig("lto", str(tmp_path / "nst9"), BLOCK, "st"))
    assert health is None and why


def test_pytp_drives_recorded_shows_the_newest_reading(tmp_path: Path, sqlite_url: str) -> None:
    config = write_library_config(tmp_path / "site", sqlite_url, block_size=BLOCK)
    src = make_tree(tmp_path / "src")
    configure_drive(tmp_path / "site" / "lib" / "drives" / "0", tapealert=[36])
    _pytp(config, "backup", str(src / "docs"))
    rows = {r["name"]: r for r in _json(config, "drives", "--recorded")}
    recorded = rows["d0"]["recorded"]
    assert recorded["phase"] == "after" and recorded["tapealert"][0]["number"] == 36
    assert datetime.fromisoformat(recorded["taken_at"]).tzinfo is not None
    assert rows["d1"]["recorded"] is None
    assert "after: 36, errors r/w 0/0" in _pytp(config, "drives", "--recorded").stdout


def test_a_failed_job_still_reports_and_stores_its_health(tmp_path: Path, sqlite_url: str) -> None:
    config = write_library_config(tmp_path / "site", sqlite_url, block_size=BLOCK)
    library = tmp_path / "site" / "lib"
    src = make_tree(tmp_path / "src")
    first = _json(config, "backup", str(src / "docs"))
    tape = first["tapes"][0]
    # The next job's first data block cannot be written, and the tape says why (flag 6, Write failure).
    configure_tape(library / "tapes" / tape, write_errors=[(3, 0)], tapealert=[6])
    result = _pytp(config, "backup", str(src / "docs"), "--format", "json", expect=6)
    summary = json.loads(result.stdout)
    assert summary["status"] == "failed" and summary["error"]
    assert summary["health"]["tapealert"] == [{"number": 6, "name": "Write failure", "severity": "critical"}]
    assert "drive d0: TapeAlert 6 Write failure (critical)" in summary["notes"]
    with Session(open_catalog(sqlite_url)) as session:
        phases = [
            r.phase for r in session.exec(select(HealthReading).where(HealthReading.job_id == summary["job_id"])).all()
        ]
    assert phases == ["before", "after"]


def test_a_restore_reports_and_stores_the_health_of_the_tape_it_read(tmp_path: Path, sqlite_url: str) -> None:
    config = write_library_config(tmp_path / "site", sqlite_url, block_size=BLOCK)
    src = make_tree(tmp_path / "src")
    backup = _json(config, "backup", str(src / "docs"))
    tape = backup["tapes"][0]
    configure_tape(tmp_path / "site" / "lib" / "tapes" / tape, error_counters={"read": {"corrected": 2}})
    restored = _json(config, "restore", str(tmp_path / "out"), "--job", str(backup["job_id"]))
    assert restored["health"]["drive"] == "d0" and restored["health"]["tapealert"] == []
    with Session(open_catalog(sqlite_url)) as session:
        volume = session.exec(select(Volume).where(Volume.label == tape)).one()
        after = session.exec(
            select(HealthReading).where(HealthReading.job_id.is_(None), HealthReading.phase == "after")  # type: ignore[union-attr]
        ).one()  # a restore is no catalog job: its readings carry the tape only
    assert (after.volume_id, after.read_errors) == (volume.id, 2)
    assert _tape_row(config, tape)["read_errors"] == 2
