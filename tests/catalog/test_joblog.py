"""The per-job log (issue 11, part 4): stored in the catalog, shown by ``pytp jobs JOB``,
appended to ``--log-file``; ``--format json|csv`` of the job commands.
Virtual library at 512 KiB blocks."""

from __future__ import annotations

import csv
import io
import json
import socket
from datetime import datetime
from pathlib import Path

from click.testing import CliRunner
from sqlmodel import Session

from pytp.catalog.database import open_catalog
from pytp.catalog.joblog import MAX_LOG_CHARS, store_log
from pytp.catalog.models import Job
from pytp.cli.main import cli
from pytp.tapeio import exitcodes
from pytp.tapeio.virtual_tape import configure_tape
from tests.conftest import make_tree, write_library_config

BLOCK = 512 << 10


def _pytp(config: Path, *args: str, expect: int = 0):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result


def test_job_log_in_the_catalog_and_in_the_log_file(tmp_path: Path, catalog_url: str) -> None:
    config = write_library_config(tmp_path / "site", catalog_url, block_size=BLOCK)
    src = make_tree(tmp_path / "src")
    log_file = tmp_path / "logs" / "pytp.log"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(src / "daemon.sock"))
    try:
        r = _pytp(config, "backup", str(src), "--log-file", str(log_file))
    finally:
        sock.close()
    assert "Job 1 ok" in r.stdout and "Note:" in r.stderr and "daemon.sock" in r.stderr
    _pytp(config, "verify", "--job", "1", "--log-file", str(log_file))

    shown = _pytp(config, "jobs", "1").stdout
    assert "status:     ok" in shown
    log = shown.split("\nLog:\n", 1)[1]
    lines = log.splitlines()
    assert " backup job 1 ok (exit 0) " in lines[0]
    assert any(line.startswith("  note: ") and "daemon.sock" in line and "socket" in line for line in lines)
    assert any(
        line.startswith("  tape move: ") and "loaded PYT001L9 from slot 1 into drive d0" in line for line in lines
    )
    assert any(" verify ok (exit 0) " in line for line in lines)  # the later verify is part of the job's log
    # The same log, appended to the file by both commands.
    text = log_file.read_text()
    assert text.count(" backup job 1 ok ") == 1 and text.count(" verify ok ") == 1
    assert text.startswith(lines[0])
    detail = json.loads(_pytp(config, "jobs", "1", "--format", "json").stdout)[0]
    assert detail["id"] == 1 and detail["status"] == "ok" and detail["log"] == log
    assert datetime.fromisoformat(detail["started_at"]).tzinfo is not None
    assert [(f["kind"], f["file_number"]) for f in detail["tape_files"]] == [("data", 1), ("manifest", 2)]
    r = _pytp(config, "jobs", "7", expect=exitcodes.EXIT_NOT_FOUND)
    assert "Error: No job 7 in the catalog" in r.stderr


def test_a_failed_backup_has_its_error_in_its_log(tmp_path: Path, sqlite_url: str) -> None:
    config = write_library_config(tmp_path / "site", sqlite_url, block_size=BLOCK)
    src = make_tree(tmp_path / "src")
    _pytp(config, "backup", str(src / "docs"))
    # Every block the next job writes to that tape is an I/O error.
    configure_tape(tmp_path / "site" / "lib" / "tapes" / "PYT001L9", write_errors=[(n, 0) for n in range(64)])
    r = _pytp(config, "backup", str(src), "--format", "json", expect=exitcodes.EXIT_DRIVE)
    summary = json.loads(r.stdout)  # the summary as data, the error on stderr as ever
    assert (summary["status"], summary["exit_code"], summary["job_id"]) == ("failed", exitcodes.EXIT_DRIVE, 2)
    assert "Error: " in r.stderr and summary["error"] in r.stderr
    log = json.loads(_pytp(config, "jobs", "2", "--format", "json").stdout)[0]["log"]
    assert " backup job 2 failed (exit 6) " in log and f"  error: {summary['error']}" in log


def test_format_csv_has_the_notify_field_names(tmp_path: Path, sqlite_url: str) -> None:
    config = write_library_config(tmp_path / "site", sqlite_url, block_size=BLOCK)
    src = make_tree(tmp_path / "src")
    as_json = json.loads(_pytp(config, "backup", str(src / "docs"), "--format", "json").stdout)
    rows = list(csv.DictReader(io.StringIO(_pytp(config, "backup", str(src / "docs"), "--format", "csv").stdout)))
    assert len(rows) == 1 and list(rows[0]) == list(as_json)
    assert (rows[0]["kind"], rows[0]["status"], rows[0]["job_id"], rows[0]["tapes"]) == (
        "backup",
        "ok",
        "2",
        "PYT001L9",
    )
    assert rows[0]["tape_files"] == f"PYT001L9:3:{src / 'docs'}:1"
    restored = json.loads(_pytp(config, "restore", str(tmp_path / "out"), "--job", "1", "--format", "json").stdout)
    assert restored["kind"] == "restore" and restored["files"] == as_json["files"]
    verified = json.loads(_pytp(config, "verify", "--against-disk", str(src / "docs"), "--format", "json").stdout)
    assert (verified["kind"], verified["status"], verified["directory"]) == ("verify", "ok", str(src / "docs"))


def test_the_log_in_the_catalog_is_bounded(tmp_path: Path, sqlite_url: str) -> None:
    config = write_library_config(tmp_path / "site", sqlite_url, block_size=BLOCK)
    src = make_tree(tmp_path / "src")
    _pytp(config, "backup", str(src / "docs"))
    engine = open_catalog(sqlite_url)
    for i in range(3):
        store_log(engine, 1, f"line {i} " + "x" * (MAX_LOG_CHARS // 2) + "\n")
    with Session(engine) as session:
        log = session.get(Job, 1).log  # type: ignore[union-attr]
    assert log is not None and len(log) <= MAX_LOG_CHARS + 100
    # The newest lines are kept whole; older ones are cut, never half a line.
    assert log.startswith("[... older log lines cut]\nline 2 ") and "line 1 " not in log
