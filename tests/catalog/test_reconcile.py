"""Jobs whose process is gone are closed by the next command (issue 8, defect 7).

A backup killed with SIGKILL cannot mark its job failed; the next command
that opens the catalog does, from the host, pid and start time the job
recorded.  What reached tape stays usable: the next backup appends after the
cut tape file.  Default 512 KiB blocks.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import Session, select

from pytp.catalog.database import open_catalog
from pytp.catalog.models import Job, JobStatus, TapeFile, TapeFileStatus
from pytp.catalog.reconcile import process_fields
from pytp.cli.main import cli
from tests.conftest import write_library_config
from tests.crash.victim import Victim, catalog_held, wait_for_size

BLOCK = 512 << 10


@pytest.fixture
def site(tmp_path: Path, sqlite_url: str):  # type: ignore[no-untyped-def]
    config = write_library_config(tmp_path / "site", sqlite_url, tapes=3, tape_size=4 << 30, block_size=BLOCK)

    def run(*args: str, expect: int = 0):  # type: ignore[no-untyped-def]
        result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == expect, result.output
        return result

    run.config = config  # type: ignore[attr-defined]
    run.library = tmp_path / "site" / "lib"  # type: ignore[attr-defined]
    run.url = sqlite_url  # type: ignore[attr-defined]
    return run


def test_a_killed_backup_is_failed_by_the_next_command_and_the_next_backup_appends(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    big = tmp_path / "big"
    big.mkdir()
    (big / "data.bin").write_bytes(os.urandom(24 << 20))
    tape_dir = site.library / "tapes" / "PYT001L9"
    victim = Victim("--config", str(site.config), "backup", "--progress", str(big))
    assert victim.wait_for_progress(), victim.finish()
    # With the catalog held the job cannot end: once its data is on tape it
    # waits to record that, and is killed there.
    with catalog_held(tmp_path / "catalog.db"):
        assert wait_for_size(tape_dir / "file-00001", 24 << 20)
        victim.signal(signal.SIGKILL)
        code, _, _ = victim.finish()
    assert code == -signal.SIGKILL

    listing = site("jobs", "--format", "json")
    assert "job 1 was left running" in listing.stderr  # said once, by the command that closed it
    job = json.loads(listing.stdout)[0]
    assert job["status"] == "failed"
    assert f"pid {victim.process.pid} on {socket.gethostname()}" in job["message"]
    assert "job 1 was left running" not in site("jobs").stderr
    with Session(open_catalog(site.url)) as session:
        data = session.exec(select(TapeFile).where(TapeFile.job_id == 1, TapeFile.kind == "data")).one()
        assert (data.file_number, data.status) == (1, TapeFileStatus.INCOMPLETE)

    on_tape = len(list(tape_dir.glob("file-*")))
    assert on_tape == 2  # the label and the data file the job never recorded as complete
    assert json.loads(site("tapes", "--format", "json").stdout)[0]["tape_files"] == on_tape

    small = tmp_path / "small"
    small.mkdir()
    (small / "a.txt").write_text("after the kill\n")
    result = site("backup", str(small))
    assert "Job 2 ok" in result.stdout and "PYT001L9 file 2:" in result.stdout
    site("verify")
    out = tmp_path / "out"
    site("restore", str(out), "--job", "2")
    assert (out / str(small).lstrip("/") / "a.txt").read_text() == "after the kill\n"
    # The data that reached tape is still there, untouched by the append.
    assert (tape_dir / "file-00001").stat().st_size >= 24 << 20


def _job(session: Session, **fields: object) -> int:
    job = Job(name="probe", status=JobStatus.RUNNING, **fields)  # type: ignore[arg-type]
    session.add(job)
    session.commit()
    assert job.id is not None
    return job.id


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_only_jobs_of_this_host_whose_process_is_gone_are_closed(catalog_url: str) -> None:
    engine = open_catalog(catalog_url)
    here = process_fields()
    with Session(engine) as session:
        alive = _job(session, **here)
        dead = _job(session, host=here["host"], pid=_dead_pid(), process_start="boot:1")
        # The pid exists, but it is a later process than the one that ran the job.
        reused = _job(session, host=here["host"], pid=os.getpid(), process_start="boot:1")
        other_host = _job(session, host="elsewhere.example", pid=_dead_pid(), process_start="boot:1")
        older_pytp = _job(session, host=here["host"])  # recorded no process: cannot be judged
    reported = []
    open_catalog(catalog_url, on_reconciled=reported.append)
    assert sorted(r.job_id for r in reported) == [dead, reused]
    with Session(engine) as session:
        status = {job.id: job.status for job in session.exec(select(Job)).all()}
    assert status == {
        alive: "running",
        dead: "failed",
        reused: "failed",
        other_host: "running",
        older_pytp: "running",
    }
    reported.clear()
    open_catalog(catalog_url, on_reconciled=reported.append)
    assert reported == []  # closed once
