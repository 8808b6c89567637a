"""The commands through CliRunner: exit codes and `Error: …` texts for bad input,
and the embedded default on a machine with nothing configured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytp.cli.main import cli
from pytp.tapeio import exitcodes
from tests.conftest import write_library_config


@pytest.fixture
def run(tmp_path: Path, sqlite_url: str):  # type: ignore[no-untyped-def]
    config = write_library_config(tmp_path / "site", sqlite_url)

    def invoke(*args: str, expect: int = 0):  # type: ignore[no-untyped-def]
        result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == expect, (result.output, result.stderr if hasattr(result, "stderr") else "")
        return result

    invoke.config = config  # type: ignore[attr-defined]
    return invoke


def test_embedded_default_is_created_on_first_use(source_tree: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["backup", str(source_tree / "docs")])
    assert result.exit_code == 0, result.output
    assert "created the embedded default configuration" in result.stderr
    assert "Job 1 ok" in result.stdout
    config = json.loads((Path(os.environ["XDG_CONFIG_HOME"]) / "pytp" / "config.json").read_text())
    assert config["tape_libraries"][0]["type"] == "virtual"
    listing = runner.invoke(cli, ["list", "--format", "json"])
    rows = json.loads(listing.stdout)
    assert len([r for r in rows if r["element"].startswith("slot")]) == 8
    assert "created the embedded" not in runner.invoke(cli, ["config"]).stderr


def test_tour_backup_search_restore_verify_tapes_jobs(run, source_tree: Path, tmp_path: Path) -> None:
    run("backup", str(source_tree), "--job", "tour")
    found = json.loads(run("search", "notes.md", "--format", "json").stdout)
    assert found[0]["path"].endswith("deep/er/notes.md")
    assert {"path", "size", "mtime", "xxh3", "job", "tape", "tape_file", "offset"} <= set(found[0])
    out = tmp_path / "out"
    run("restore", str(out), "--match", "notes.md")
    assert (out / str(source_tree).lstrip("/") / "docs/deep/er/notes.md").read_text() == "# notes\n" * 100
    assert "0 problem(s)" in run("verify").stdout
    tapes = json.loads(run("tapes", "--format", "json").stdout)
    assert {"label", "barcode", "slot", "status", "pool", "jobs", "bytes_written", "capacity"} <= set(tapes[0])
    jobs = json.loads(run("jobs", "--format", "json").stdout)
    assert jobs[0]["name"] == "tour" and jobs[0]["status"] == "ok" and jobs[0]["tapes"] == [tapes[0]["label"]]
    assert "label,barcode" in run("inventory", "--format", "csv").stdout


def test_original_buffer_options_are_accepted_and_ignored(run, source_tree: Path) -> None:
    """The original pytp's mbuffer options keep its scripts working: -lwm and
    --double-buffer on the command line, ``buffer.low_water_mark`` in the file."""
    config = json.loads(run.config.read_text())
    config["buffer"] = {"low_water_mark": 10, "memory_buffer": 0.01, "memory_buffer_percent": 50}
    run.config.write_text(json.dumps(config))
    out = run("backup", str(source_tree / "docs"), "-lwm", "5", "--no-double-buffer", "-mem", "0.01", "-memp", "10")
    assert "Job 1 ok" in out.stdout
    assert "low_water_mark" not in run("config").stderr


def test_tape_commands_move_the_head(run, source_tree: Path) -> None:
    run("backup", str(source_tree / "docs"))
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


def test_library_list_load_unload_move(run) -> None:
    rows = json.loads(run("list", "--format", "json").stdout)
    assert rows[0]["full"] is False
    run("load", "2", "-d", "d1")
    rows = json.loads(run("list", "--format", "json").stdout)
    assert rows[1]["full"] is True and rows[1]["source_slot"] == 2
    run("unload", "-d", "d1")
    run("move", "3", "5")
    rows = {r["element"]: r for r in json.loads(run("list", "--format", "json").stdout)}
    assert rows["slot 5"]["full"] and not rows["slot 3"]["full"]


def test_exit_codes_for_bad_input(run, source_tree: Path, tmp_path: Path) -> None:
    r = run("backup", str(tmp_path / "missing"), expect=exitcodes.EXIT_ERROR)
    assert "Error: Source not found" in r.stderr
    r = run("backup", str(source_tree), "-d", "nope", expect=exitcodes.EXIT_CONFIG)
    assert "Error: Unknown drive 'nope'" in r.stderr
    r = run("backup", str(source_tree), "-l", "nolib", expect=exitcodes.EXIT_CONFIG)
    assert "Error: Unknown library 'nolib'" in r.stderr
    r = run("backup", "--level", "weekly", str(source_tree), expect=exitcodes.EXIT_USAGE)
    assert "Invalid value for '--level'" in r.stderr
    r = run("search", "no-such-thing", expect=exitcodes.EXIT_NOT_FOUND)
    assert r.stderr.startswith("Error: No backed-up file")
    run("backup", "--bogus", expect=exitcodes.EXIT_USAGE)


def test_tape_from_another_pool_is_refused(run, source_tree: Path) -> None:
    run("backup", str(source_tree / "docs"), "-d", "d0")
    r = run("backup", str(source_tree / "docs"), "-d", "d0", "--pool", "offsite")
    # With a changer pytp puts the default-pool tape back and takes a blank one.
    assert "Job 2 ok" in r.stdout
    tapes = {t["label"]: t for t in json.loads(run("tapes", "--format", "json").stdout)}
    assert sorted(t["pool"] for t in tapes.values()) == ["default", "offsite"]
    # Restoring from job 1 swaps its tape back into the drive through the changer.
    run("restore", str(source_tree.parent / "out"), "--job", "1", "-d", "d0")
    assert (source_tree.parent / "out" / str(source_tree).lstrip("/") / "docs" / "report.txt").exists()
    drive0 = json.loads(run("list", "--format", "json").stdout)[0]
    assert drive0["barcode"] == [t for t in tapes.values() if t["pool"] == "default"][0]["barcode"]


def test_restore_refuses_overwrite_and_verify_failure_codes(run, source_tree: Path, tmp_path: Path) -> None:
    run("backup", str(source_tree))
    out = tmp_path / "out"
    run("restore", str(out), "--match", "report.txt")
    r = run("restore", str(out), "--match", "report.txt", expect=exitcodes.EXIT_RESTORE_REFUSED)
    assert "Use --overwrite" in r.stderr
    run("restore", str(out), "--match", "report.txt", "--overwrite")
    (source_tree / "docs" / "report.txt").write_text("changed")
    r = run("verify", "--against-disk", str(source_tree), expect=exitcodes.EXIT_VERIFY_FAILED)
    assert "changed:" in r.stdout


def test_full_tape_is_a_clear_error(tmp_path: Path, sqlite_url: str) -> None:
    config = write_library_config(tmp_path / "site", sqlite_url, tape_size=1 << 20, block_size=10240, tapes=1)
    src = tmp_path / "big"
    src.mkdir()
    (src / "blob").write_bytes(os.urandom(3 << 20))
    result = CliRunner().invoke(cli, ["--config", str(config), "backup", str(src)])
    assert result.exit_code == exitcodes.EXIT_TAPE_FULL, result.output
    assert "Error: Tape PYT001L9 is full and no other tape of pool 'default'" in result.stderr
    jobs = json.loads(CliRunner().invoke(cli, ["--config", str(config), "jobs", "--format", "json"]).stdout)
    assert jobs[0]["status"] == "failed"


def test_second_pytp_on_the_same_drive_is_busy(run, source_tree: Path) -> None:
    # Another pytp process holds drive d0 (through the same lock a command takes).
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from pytp.catalog.config import read_config; from pytp.catalog.devices import drive_lock\n"
            f"cfg = read_config(__import__('pathlib').Path({str(run.config)!r}), 'x')\n"
            "with drive_lock(cfg.drive('d0')):\n print('locked', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        env=os.environ.copy(),
    )
    try:
        assert holder.stdout.readline().strip() == b"locked"  # type: ignore[union-attr]
        r = run("rewind", "-d", "d0", expect=exitcodes.EXIT_DRIVE)
        assert f"Error: Drive d0 is busy: used by pid {holder.pid}" in r.stderr
        r = run("backup", str(source_tree), "-d", "d0", expect=exitcodes.EXIT_DRIVE)
        assert "is busy" in r.stderr
        assert json.loads(run("jobs", "--format", "json").stdout) == []  # no job was left "running"
    finally:
        holder.kill()
        holder.wait()


def test_every_command_has_help_with_an_example() -> None:
    def walk(group, prefix=""):  # type: ignore[no-untyped-def]
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from walk(command, prefix + name + " ")
            else:
                yield prefix + name, command

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for name, command in walk(cli):
        assert command.help and "Example" in command.help, f"{name} lacks help with an example"
        assert f"`{name}" in readme or f"`{name.split()[-1]}" in readme, f"{name} is not in the README"


def test_exit_code_table_is_documented() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for code, name, _ in exitcodes.TABLE:
        assert f"| {code} | {name} |" in readme, f"exit code {code} ({name}) missing from README"
