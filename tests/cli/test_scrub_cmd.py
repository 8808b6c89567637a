"""``pytp scrub`` through the real command group: its report, JSON/CSV fields, budget, dry run,
exit codes and ``Error:`` lines.  Virtual library at the default 512 KiB blocks, SQLite catalog."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlmodel import Session, func, select

from pytp.catalog.database import open_catalog
from pytp.catalog.models import HealthReading
from pytp.cli.main import cli
from pytp.tapeio.exitcodes import EXIT_CONFIG, EXIT_DRIVE, EXIT_USAGE, EXIT_VERIFY_FAILED
from pytp.tapeio.virtual_tape import configure_tape
from tests.conftest import make_tree, write_library_config

BLOCK = 512 << 10


def _pytp(config: Path, *args: str, expect: int = 0) -> Result:
    result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
    assert result.exit_code == expect, (result.output, result.stderr)
    return result


@pytest.fixture
def two_tapes(tmp_path: Path, sqlite_url: str) -> tuple[Path, str, list[str]]:
    """Two tapes with data, never verified: PYT001L9 (pool default) and PYT002L9 (offsite)."""
    config = write_library_config(tmp_path / "site", sqlite_url, block_size=BLOCK)
    src = make_tree(tmp_path / "src")
    tapes = []
    for pool in ("default", "offsite"):
        out = json.loads(_pytp(config, "backup", str(src), "--pool", pool, "--format", "json").stdout)
        tapes += out["tapes"]
    return config, sqlite_url, tapes


def _readings(url: str) -> int:
    with Session(open_catalog(url)) as session:
        return session.exec(select(func.count()).select_from(HealthReading)).one()


def test_dry_run_lists_the_order_and_reads_nothing(two_tapes: tuple[Path, str, list[str]]) -> None:
    config, url, (a, b) = two_tapes
    before = _readings(url)
    table = _pytp(config, "scrub", "--dry-run").stdout
    assert table.index(a) < table.index(b) and "never verified" in table
    rows = json.loads(_pytp(config, "scrub", "--dry-run", "--format", "json").stdout)
    assert [r["tape"] for r in rows] == [a, b]
    assert set(rows[0]) == {"tape", "pool", "reason", "last_verified", "last_verify_result", "error_growth", "copies"}
    assert _readings(url) == before
    assert (
        json.loads(_pytp(config, "scrub", "--dry-run", "--pool", "offsite", "--format", "json").stdout)[0]["tape"] == b
    )


def test_a_zero_budget_verifies_one_tape_and_names_what_is_left(two_tapes: tuple[Path, str, list[str]]) -> None:
    config, url, (a, b) = two_tapes
    summary = json.loads(_pytp(config, "scrub", "--budget", "0", "--format", "json").stdout)
    assert (summary["kind"], summary["status"], summary["exit_code"]) == ("scrub", "ok", 0)
    assert summary["tapes"] == [a] and summary["left"] == [b] and summary["budget_seconds"] == 0
    scrubbed = summary["scrubbed"][0]
    assert (scrubbed["tape"], scrubbed["result"], scrubbed["reason"]) == (a, "ok", "never verified")
    assert scrubbed["checked"] == summary["files"] > 0 and scrubbed["health"]["available"] is True
    # The next run takes the one that was left, then nothing is due.
    out = _pytp(config, "scrub", "--max-age", "180d", "--budget", "4h").stdout
    assert "Scrubbed 1 tape(s): 1 ok, 0 failed, 0 not verified." in out and f"{b} ok: " in out
    assert "No tape is due for a scrub (2 verified recently)." in _pytp(config, "scrub").stdout
    tapes = {r["label"]: r for r in json.loads(_pytp(config, "tapes", "--format", "json").stdout) if r["label"]}
    assert tapes[a]["last_verify_result"] == tapes[b]["last_verify_result"] == "ok"
    # CSV: one row, the summary's fields.
    rows = list(csv.DictReader(io.StringIO(_pytp(config, "scrub", "--max-age", "0", "--format", "csv").stdout)))
    assert rows[0]["kind"] == "scrub" and rows[0]["tapes"] == f"{a}; {b}"


def test_a_damaged_tape_exits_10_and_says_so(two_tapes: tuple[Path, str, list[str]], tmp_path: Path) -> None:
    config, url, (a, b) = two_tapes
    data = tmp_path / "site" / "lib" / "tapes" / a / "file-00001"
    damaged = bytearray(data.read_bytes())
    damaged[1 << 20] ^= 0x01
    data.write_bytes(bytes(damaged))
    result = _pytp(config, "scrub", expect=EXIT_VERIFY_FAILED)
    assert f"{a} failed: 1 problem(s); the first: " in result.stdout and f"{b} ok: " in result.stdout
    assert f"Error: tape {a} failed the scrub (1 problem(s); the first: " in result.stderr
    assert "no copy of it exists" in result.stderr
    row = next(r for r in json.loads(_pytp(config, "tapes", "--format", "json").stdout) if r["label"] == a)
    assert (row["status"], row["last_verify_result"]) == ("error", "failed")
    assert row["status_reason"].startswith("scrub failed on ")
    log = json.loads(_pytp(config, "jobs", "1", "--format", "json").stdout)[0]["log"]  # the backup onto A
    assert f"scrub of tape {a}: failed" in log


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--max-age", "180"], EXIT_USAGE, "Error: Invalid value for '--max-age': '180' is not a duration"),
        (["--budget", "4 hours"], EXIT_USAGE, "Error: Invalid value for '--budget': '4 hours' is not a duration"),
        (["--pool", "nosuch"], EXIT_CONFIG, "Error: Unknown pool 'nosuch' (configured: default, offsite)."),
    ],
)
def test_bad_input(two_tapes: tuple[Path, str, list[str]], args: list[str], code: int, message: str) -> None:
    config, _, _ = two_tapes
    result = _pytp(config, "scrub", *args, expect=code)
    assert message in result.stderr


def test_help_has_an_example() -> None:
    out = CliRunner().invoke(cli, ["scrub", "--help"]).output
    assert "pytp scrub --max-age 180d --budget 4h" in out


def test_every_tapes_health_is_in_the_summary_and_critical_flags_in_its_notes(
    two_tapes: tuple[Path, str, list[str]], tmp_path: Path
) -> None:
    config, _, (a, b) = two_tapes
    configure_tape(tmp_path / "site" / "lib" / "tapes" / b, tapealert=[4])  # Media, critical: the second tape
    summary = json.loads(_pytp(config, "scrub", "--format", "json").stdout)
    assert [t["tape"] for t in summary["scrubbed"]] == [a, b]
    assert [[f["number"] for f in t["health"]["tapealert"]] for t in summary["scrubbed"]] == [[], [4]]
    assert summary["health"]["tapealert"] == [{"number": 4, "name": "Media", "severity": "critical"}]
    assert summary["notes"] == ["drive d0: TapeAlert 4 Media (critical)"]
    assert summary["status"] == "ok"  # the data verified: a flag is reported, not a failure


def test_a_tape_that_cannot_be_read_at_all_is_not_verified_and_nothing_recorded_on_it(
    two_tapes: tuple[Path, str, list[str]], tmp_path: Path
) -> None:
    config, _, (a, b) = two_tapes
    tapes = tmp_path / "site" / "lib" / "tapes"
    (tapes / b).rename(tmp_path / "away")  # the cartridge's data is gone: its load fails
    result = _pytp(config, "scrub", expect=EXIT_DRIVE)
    assert f"{a} ok: " in result.stdout and f"{b} not verified: " in result.stdout
    assert f"Warning: tape {b} was not verified: " in result.stderr
    rows = {r["label"]: r for r in json.loads(_pytp(config, "tapes", "--format", "json").stdout) if r["label"]}
    assert rows[a]["last_verify_result"] == "ok"
    assert (rows[b]["last_verified"], rows[b]["last_verify_result"], rows[b]["status"]) == (None, None, "appendable")


def test_progress_is_drawn_when_asked_and_not_on_a_pipe(two_tapes: tuple[Path, str, list[str]]) -> None:
    config, _url, _tapes = two_tapes
    quiet = _pytp(config, "scrub", "--budget", "0")  # CliRunner's stderr is not a terminal: nothing drawn
    assert "MB/s" not in quiet.stderr
    shown = _pytp(config, "scrub", "--budget", "0", "--max-age", "0", "--progress")
    assert "verify: " in shown.stderr and "MB/s" in shown.stderr
