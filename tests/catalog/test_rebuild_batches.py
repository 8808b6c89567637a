"""A rebuild inserts a manifest's entries in batches, in the tape's one transaction, on both databases.

Several batches (``ENTRY_BATCH`` rows each) per manifest: the checks that
span the whole manifest (no two members at one offset, a deleted path not
recorded twice, nothing added twice) hold across batches, whether a line
comes in offset order (no look-up) or not (the key set, made from the rows
inserted so far); the job is offered to search once its entries are in, and
rebuilding again adds nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from sqlalchemy import text

from pytp.catalog.backup_job import ENTRY_BATCH
from pytp.catalog.database import make_engine
from pytp.cli.main import cli
from pytp.tapeio.exitcodes import EXIT_VERIFY_FAILED
from tests.conftest import write_library_config
from tests.crafted_tape import (
    DEFAULT_BLOCK_SIZE,
    Manifest,
    file_member,
    library_tape,
    manifest_job,
    manifest_payload,
    tar_bytes,
    write_tape,
)

TAPE = "PYT001L9"
COUNT = 2 * ENTRY_BATCH + 500
#: member DUPLICATE takes the offset of member TAKEN, a row of the batch not inserted yet
#: (the first line out of offset order: the key set is made then, the batch inserted first)
DUPLICATE, TAKEN = ENTRY_BATCH + 700, ENTRY_BATCH + 100
#: deleted paths after the members, one of them twice
GONE = ["/srv/gone/a", "/srv/gone/b", "/srv/gone/a"]


def _line(i: int) -> dict[str, Any]:
    return {
        "path": f"/srv/d{i // 1000:03d}/f{i:06d}.txt",
        "type": "file",
        "size": 1,
        "mode": 0o644,
        "uid": 0,
        "gid": 0,
        "uname": "root",
        "gname": "root",
        "mtime_ns": 1_700_000_000_000_000_000,
        "ctime_ns": 1_700_000_000_000_000_000,
        "inode": i,
        "device": 1,
        "xxh3": None,
        "tape": TAPE,
        "tape_file": 1,
        "offset": (TAKEN if i == DUPLICATE else i) * 1024,
        "header_size": 512,
    }


def _gone(path: str) -> dict[str, Any]:
    return {**_line(0), "path": path, "type": "deleted", "size": 0, "offset": -1, "header_size": 0}


def test_batches_keep_the_whole_manifest_checks_and_rebuild_again_adds_nothing(
    tmp_path: Path, catalog_url: str
) -> None:
    config = write_library_config(tmp_path / "site", catalog_url, block_size=DEFAULT_BLOCK_SIZE, drives=1)
    archive = tar_bytes([file_member("srv/seed.txt", b"seed\n")])
    blocks = -(-(COUNT + 1) * 1024 // DEFAULT_BLOCK_SIZE)
    lines = [*map(_line, range(COUNT)), *map(_gone, GONE)]
    payload = manifest_payload(manifest_job(tape_files=[(TAPE, 1, "/srv", blocks)]), lines)
    # The data file is as long as the manifest says: a rebuild checks that by spacing over it.
    archive = archive.ljust(blocks * DEFAULT_BLOCK_SIZE, b"\0")
    write_tape(library_tape(tmp_path / "site" / "lib", TAPE), [archive, Manifest(payload)], label=TAPE)

    def run(*args: str, expect: int = 0) -> Result:
        result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == expect, result.output
        return result

    out = run("catalog", "rebuild", "--tape", TAPE, "-d", "d0", expect=EXIT_VERIFY_FAILED).stdout
    assert f"{COUNT - 1 + 2} entries" in out  # the members but one, two deleted paths
    duplicate = _line(DUPLICATE)["path"]
    line = 2 + DUPLICATE
    assert f"{TAPE} file 2 line {line}: '{duplicate}': offset {TAKEN * 1024} is already another member's" in out
    job = json.loads(run("jobs", "--host", "all", "--format", "json").stdout)[0]
    assert job["status"] == "partial" and job["files"] == COUNT - 1  # a damaged manifest's job: what its entries hold
    # Offered to search: members of the first and of the last batch.
    for i in (3, COUNT - 1):
        found = json.loads(run("search", f"f{i:06d}", "--host", "all", "--format", "json").stdout)
        assert [r["path"] for r in found] == [_line(i)["path"]]

    engine = make_engine(catalog_url)
    with engine.connect() as connection:
        gone = connection.execute(text("SELECT path_text FROM entry WHERE kind = 'deleted' ORDER BY path_text"))
        assert [path for (path,) in gone] == ["/srv/gone/a", "/srv/gone/b"]
    engine.dispose()

    again = run("catalog", "rebuild", "--tape", TAPE, "-d", "d0", expect=EXIT_VERIFY_FAILED).stdout
    assert "0 job(s) added, 1 already known, 0 entries" in again
    assert len(json.loads(run("search", "/srv/", "--host", "all", "--format", "json").stdout)) == COUNT - 1
