"""The drive commands (``cli/tape_cmd.py``) through CliRunner: moving the head,
goto, status, and `retension --slot`, which sends the tape already in the drive
to its home slot first."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.runner import invoke
from tests.conftest import write_library_config


def test_retension_returns_the_loaded_tape_to_an_empty_slot_when_its_own_was_taken(
    tmp_path: Path, sqlite_url: str
) -> None:
    # Slots 1-4 hold tapes, 5-6 are empty.
    config = write_library_config(tmp_path / "site", sqlite_url)
    invoke(config, "load", "1", "-d", "d0")
    invoke(config, "move", "2", "1")  # the operator filled slot 1 meanwhile: 2, 5 and 6 are empty
    out = invoke(config, "retension", "-d", "d0", "--slot", "3", "-v").stdout
    assert "unloading drive d0 to slot 2" in out and "returning the tape to slot 3" in out
    rows = {r["element"]: r for r in json.loads(invoke(config, "list", "--format", "json").stdout)}
    assert rows["slot 2"]["barcode"] == "PYT001L9" and rows["slot 3"]["barcode"] == "PYT003L9"
    assert not rows["drive 0"]["full"]


def test_tape_commands_move_the_head(run, source_tree: Path) -> None:
    run("backup", str(source_tree / "docs"), "--keep-loaded")
    run("rewind", "-d", "d0")
    assert run("position", "-d", "d0").stdout.strip() == "0"
    run("ff", "1", "-d", "d0")
    listing = run("ls", "-d", "d0").stdout
    assert "docs/report.txt" in listing
    assert run("position", "-d", "d0").stdout.strip() == "2"
    run("bb", "1", "-d", "d0")
    assert run("pos", "-d", "d0").stdout.strip() == "1"
    assert "ONLINE" in run("status", "-d", "d0").stdout
    run("init", "-d", "d0")


def test_goto_retension_status_exit_codes_config(tmp_path: Path, sqlite_url: str, source_tree: Path) -> None:
    config = write_library_config(tmp_path / "site", sqlite_url)
    invoke(config, "backup", str(source_tree), "--keep-loaded")
    invoke(config, "rewind", "-d", "d0")
    invoke(config, "ff", "-d", "d0")
    assert invoke(config, "goto", "3", "-d", "d0").stdout.strip() == "3"
    assert invoke(config, "g", "-d", "d0").stdout.strip() == "3"
    status = json.loads(invoke(config, "status", "-d", "d0", "--format", "json").stdout)[0]
    assert (status["file_number"], status["block_number"], status["barcode"]) == (1, 3, "PYT001L9")
    # Retension the tape in slot 2 and put it back there.
    out = invoke(config, "retension", "-d", "d1", "--slot", "2", "-v").stdout
    assert "returning the tape to slot 2" in out
    rows = {r["element"]: r for r in json.loads(invoke(config, "list", "--format", "json").stdout)}
    assert rows["slot 2"]["full"] and not rows["drive 1"]["full"]
    assert "restore-refused" in invoke(config, "exit-codes").stdout
    shown = invoke(config, "config").stdout
    assert f"Configuration: {config} (--config)" in shown and "d0" in shown
    assert json.loads(invoke(config, "config", "--json").stdout)["tape_libraries"][0]["name"] == "lib"


def test_position_and_goto_of_an_empty_drive_are_errors_not_minus_one(tmp_path: Path, sqlite_url: str) -> None:
    from pytp.tapeio import exitcodes

    config = write_library_config(tmp_path / "site", sqlite_url)
    for command in (("position",), ("goto",), ("goto", "3")):
        failed = invoke(config, *command, "-d", "d1", expect=exitcodes.EXIT_DRIVE)
        assert "No tape in drive" in failed.stderr and failed.stdout == "", (command, failed.stdout)
