"""`kill -9` during a catalog rebuild (issue 8, defect 3): the catalog is left
with every tape imported whole or not at all, so no volume's file count
disagrees with its tape, the next backup succeeds, and rebuilding again
completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner, Result

from pytp.cli.main import cli
from pytp.tapeio.virtual_drive import read_counters
from tests.conftest import write_library_config
from tests.crafted_tape import DEFAULT_BLOCK_SIZE, file_member, job_files, library_tape, tar_bytes, write_tape

SMALL_JOBS = 3
BIG_JOBS = 30
#: the rebuild is killed once drive 0 has spaced this far into the second tape
KILL_AFTER_FSF_ON_TAPE_2 = 6


def labelled(listing: str) -> list[dict]:
    """The labelled tapes of a `pytp tapes --format json` listing (blank cartridges have no label)."""
    return [t for t in json.loads(listing) if t["label"]]


def _write_jobs(library: Path, barcode: str, count: int) -> list[str]:
    files, names = [], []
    for i in range(count):
        name = f"{barcode}-job{i:02d}"
        archive = tar_bytes([file_member(f"data/{name}.txt", f"{name}\n".encode())])
        files += job_files(barcode, len(files) + 1, [("/data", archive)], name=name)
        names.append(name)
    write_tape(library_tape(library, barcode), files, label=barcode)
    return names


def _tape_files(library: Path, barcode: str) -> int:
    return len(list(library_tape(library, barcode).glob("file-*")))


def test_kill_9_during_rebuild_then_backup_and_rebuild_again(tmp_path: Path) -> None:
    config = write_library_config(
        tmp_path / "site",
        f"sqlite:///{tmp_path / 'catalog.db'}",
        tapes=3,
        tape_size=256 << 20,
        block_size=DEFAULT_BLOCK_SIZE,
        pools=[{"name": "default", "retention_days": 30}],
    )
    library = tmp_path / "site" / "lib"
    names = _write_jobs(library, "PYT001L9", SMALL_JOBS) + _write_jobs(library, "PYT002L9", BIG_JOBS)

    def run(*args: str, expect: int = 0) -> Result:
        result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == expect, result.output
        return result

    # The kill point is chosen by what the rebuild has done (drive 0's spacing
    # count, saved at every fsf), not by time: well inside the second tape.
    # The assertions below must hold wherever it lands.
    drive0 = library / "drives" / "0"
    start = read_counters(drive0).fsf
    kill_at = start + 2 * SMALL_JOBS + 1 + KILL_AFTER_FSF_ON_TAPE_2
    rebuild = subprocess.Popen(
        [sys.executable, "-m", "pytp.cli.main", "--config", str(config), "catalog", "rebuild", "--all", "-d", "d0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120  # only a bound for a broken run
    while rebuild.poll() is None and read_counters(drive0).fsf < kill_at and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(rebuild.pid, signal.SIGKILL)
    assert rebuild.wait() == -signal.SIGKILL, "the rebuild ended before it could be killed"

    # Every tape the catalog knows agrees with what is on it (or is set aside).
    for tape in labelled(run("tapes", "--format", "json").stdout):
        assert tape["status"] == "error" or tape["tape_files"] == _tape_files(library, tape["label"]), tape

    # The next backup succeeds.
    src = tmp_path / "src"
    src.mkdir()
    (src / "new.txt").write_text("after the kill\n")
    run("backup", str(src), "--job", "after-kill")

    # Rebuilding again completes and adds every job once.
    run("catalog", "rebuild", "--all", "-d", "d0")
    jobs = [j["name"] for j in json.loads(run("jobs", "--host", "all", "--format", "json").stdout)]
    assert sorted(jobs) == sorted([*names, "after-kill"])
    for tape in labelled(run("tapes", "--format", "json").stdout):
        assert tape["tape_files"] == _tape_files(library, tape["label"]), tape
    found = json.loads(run("search", "/data/", "--host", "all", "--format", "json").stdout)
    assert sorted(r["path"] for r in found) == sorted(f"/data/{name}.txt" for name in names)
    # And a backup after it appends where the catalog says.
    run("backup", str(src), "--job", "after-rebuild")
