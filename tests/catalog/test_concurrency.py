"""Two pytp processes on one two-drive library (issue 8, defect 6).

Choosing a drive must take it: probing a drive lock by taking and releasing
it let two backups started together both choose drive 0, and one failed with
"drive busy".  The tests run separate processes, as two administrators (or
two cron jobs) would, on the embedded default library with its 512 KiB blocks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytp.catalog.config import load_config
from pytp.catalog.devices import drive_lock, select
from pytp.cli.main import cli
from pytp.tapeio.errors import DriveBusy
from pytp.tapeio.virtual_changer import VirtualChanger
from tests.crash.victim import Victim, catalog_held


def _pytp(*args: str, expect: int = 0):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result


def _data_home() -> Path:
    return Path(os.environ["XDG_DATA_HOME"]) / "pytp"


def _lock_holder(drive: str) -> str:
    path = _data_home() / "locks" / f"drive-{drive}.lock"
    return path.read_text().strip() if path.exists() else ""


def _wait_for(condition, bound: float = 60) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def _holder() -> subprocess.Popen[str]:
    """Another process that chooses a drive and keeps it until told to end."""
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pytp.catalog.config import load_config; from pytp.catalog.devices import select; "
            "print(select(load_config()).drive.name, flush=True); sys.stdin.readline()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_a_drive_chosen_by_one_process_is_not_chosen_by_another() -> None:
    config = load_config()  # the embedded default: library vlib, two drives
    holder = _holder()
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "vlib-drive0"
        # The other process has chosen drive 0 and not used it yet: it is taken all the same.
        with pytest.raises(DriveBusy, match=f"pid {holder.pid}"):
            with drive_lock(config.drive("vlib-drive0")):
                pass
        mine = select(config)
        assert mine.drive.name == "vlib-drive1" and mine.element == 1
        with drive_lock(mine.drive):  # the chosen drive is used without a second lock
            assert _lock_holder("vlib-drive1") == str(os.getpid())
    finally:
        holder.communicate("\n", timeout=60)
    again = select(config)  # both were released: the first drive again
    assert again.drive.name == "vlib-drive0"
    with drive_lock(again.drive):
        pass


def test_a_command_that_stops_before_using_its_drive_lets_it_go(tmp_path: Path) -> None:
    _pytp("backup", str(tmp_path / "missing"), expect=3)  # chose a drive, then found no source
    holder = _holder()
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "vlib-drive0"
    finally:
        holder.communicate("\n", timeout=60)


def test_two_backups_started_together_both_succeed_on_different_drives(tmp_path: Path) -> None:
    _pytp("jobs")  # the embedded default and its catalog
    sources = []
    for name in ("one", "two"):
        src = tmp_path / name
        src.mkdir()
        (src / f"{name}.bin").write_bytes(os.urandom(3 << 20))
        sources.append(src)
    # While the catalog is held neither job can start writing, so both
    # processes are certain to choose their drives while the other is alive.
    with catalog_held(_data_home() / "catalog.db"):
        victims = [Victim("backup", str(src), "--keep-loaded") for src in sources]
        pids = {str(v.process.pid) for v in victims}
        assert _wait_for(lambda: {_lock_holder("vlib-drive0"), _lock_holder("vlib-drive1")} == pids), [
            v.finish() for v in victims
        ]
    results = [v.finish() for v in victims]
    assert [code for code, _, _ in results] == [0, 0], results
    assert all("ok (full)" in out for _, out, _ in results)
    status = VirtualChanger(_data_home() / "libraries" / "vlib").status()
    assert [d.full for d in status.drives] == [True, True]  # each job used its own drive and tape
    jobs = json.loads(_pytp("jobs", "--format", "json").stdout)
    assert sorted(j["status"] for j in jobs) == ["ok", "ok"]
    assert len({tuple(j["tapes"]) for j in jobs}) == 2
    assert _pytp("verify").stdout.count("FAILED") == 0
