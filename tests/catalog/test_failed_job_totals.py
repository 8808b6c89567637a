"""A failed backup's rows, job totals and log agree with what reached tape (issue 9 probe).

A job cut by Ctrl-C, a write error or a full tape had its buffer full of
members the drive never took: ``pytp jobs`` counted them all, the log said
"0 file(s)", and the cut tape file said "0 blocks" with megabytes on tape.
Here a write error stops the drive part-way through the first data file, at
pytp's default block size, with the embedded virtual drive.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from click.testing import CliRunner, Result

from pytp.cli.main import cli
from pytp.tapeio.blockio import blocks_per_transfer
from pytp.tapeio.virtual_tape import configure_tape
from tests.conftest import write_library_config
from tests.crafted_tape import DEFAULT_BLOCK_SIZE, library_tape

#: the first block of tape file 1 that cannot be written
BAD_BLOCK = 5


def _run(config: Path, *args: str, expect: int | None = 0) -> Result:
    result = CliRunner().invoke(cli, ["--config", str(config), *args])
    if expect is not None:
        assert result.exit_code == expect, result.output
    assert "Traceback" not in result.output
    return result


def test_a_failed_backup_counts_only_the_members_that_reached_tape(tmp_path: Path) -> None:
    database = tmp_path / "catalog.db"
    config = write_library_config(tmp_path / "site", f"sqlite:///{database}", block_size=DEFAULT_BLOCK_SIZE)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(60):
        (src / f"f{i:02d}.bin").write_bytes(os.urandom(100_000))
    configure_tape(library_tape(tmp_path / "site" / "lib", "PYT001L9"), write_errors=[(1, BAD_BLOCK)])

    failed = _run(config, "backup", str(src), expect=None)

    assert failed.exit_code not in (0, 1), failed.output
    (job,) = json.loads(_run(config, "jobs", "--format", "json").stdout)
    assert job["status"] == "failed"
    tape_file = library_tape(tmp_path / "site" / "lib", "PYT001L9") / "file-00001"
    assert tape_file.stat().st_size == BAD_BLOCK * DEFAULT_BLOCK_SIZE
    # The cut tape file says how much of it is certainly on tape: the writes that
    # succeeded (the failed one's blocks before the bad one are not counted: st
    # cannot tell how many there were).
    (tape,) = json.loads(_run(config, "tapes", "PYT001L9", "--format", "json").stdout)
    (cut,) = [f for f in tape["tape_file_list"] if f["file_number"] == 1]
    assert cut["status"] == "incomplete"
    assert BAD_BLOCK - blocks_per_transfer(DEFAULT_BLOCK_SIZE) < cut["blocks"] <= BAD_BLOCK
    on_tape = cut["blocks"] * DEFAULT_BLOCK_SIZE
    # Rows only for members wholly on tape, and the job's totals are theirs.
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT offset + header_size + size, size FROM entry WHERE job_id = ? AND kind = 'file'", (job["id"],)
        ).fetchall()
    assert rows and all(end <= on_tape for end, _ in rows)
    assert len(rows) < 60
    assert job["files"] == len(rows) + 1  # and the source directory
    assert job["bytes"] == sum(size for _, size in rows)
    # The job's log says the same.
    log = _run(config, "jobs", str(job["id"])).stdout
    assert f"failed (exit {failed.exit_code}) on " in log and f": {job['files']} file(s), {job['bytes']} bytes" in log
