"""`pytp backup` (``cli/backup_cmd.py``) through CliRunner: the original
options, pools, a full tape, a partial job and bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

from click.testing import CliRunner

from pytp.cli.main import cli
from pytp.tapeio import exitcodes
from pytp.tapeio.virtual_drive import create_virtual_drive, load_tape
from pytp.tapeio.virtual_tape import create_virtual_tape
from tests.cli.runner import invoke
from tests.conftest import write_library_config


def test_original_buffer_options_are_accepted_and_ignored(run, source_tree: Path) -> None:
    """The original pytp's mbuffer options keep its scripts working: -lwm and
    --double-buffer on the command line, ``buffer.low_water_mark`` in the file."""
    config = json.loads(run.config.read_text())
    config["buffer"] = {"low_water_mark": 10, "memory_buffer": 0.01, "memory_buffer_percent": 50}
    run.config.write_text(json.dumps(config))
    out = run("backup", str(source_tree / "docs"), "-lwm", "5", "--no-double-buffer", "-mem", "0.01", "-memp", "10")
    assert "Job 1 ok" in out.stdout
    assert "low_water_mark" not in run("config").stderr


def test_exit_codes_for_bad_input(run, source_tree: Path, tmp_path: Path) -> None:
    r = run("backup", str(tmp_path / "missing"), expect=exitcodes.EXIT_ERROR)
    assert "Error: Source not found" in r.stderr
    r = run("backup", str(source_tree), "-d", "nope", expect=exitcodes.EXIT_CONFIG)
    assert "Error: Unknown drive 'nope'" in r.stderr
    r = run("backup", str(source_tree), "-l", "nolib", expect=exitcodes.EXIT_CONFIG)
    assert "Error: Unknown library 'nolib'" in r.stderr and "-l LABEL is --label now" in r.stderr
    for size in ("0", "-1", "100000"):  # nothing, or more than any test machine has: the OOM killer's
        r = run("backup", str(source_tree), "-mem", size, expect=exitcodes.EXIT_USAGE)
        assert "-mem" in r.stderr, r.stderr
    assert "three quarters of this host's memory" in r.stderr
    config = json.loads(run.config.read_text())
    run.config.write_text(json.dumps({**config, "buffer": {"memory_buffer": 100000}}))
    r = run("backup", str(source_tree), expect=exitcodes.EXIT_CONFIG)
    assert "buffer.memory_buffer" in r.stderr and "three quarters" in r.stderr
    r = run("backup", "--level", "weekly", str(source_tree), expect=exitcodes.EXIT_USAGE)
    assert "Invalid value for '--level'" in r.stderr
    r = run("search", "no-such-thing", expect=exitcodes.EXIT_NOT_FOUND)
    assert r.stderr.startswith("Error: No backed-up file")
    run("backup", "--bogus", expect=exitcodes.EXIT_USAGE)


def test_tape_from_another_pool_is_refused(run, source_tree: Path) -> None:
    run("backup", str(source_tree / "docs"), "-d", "d0", "--keep-loaded")
    r = run("backup", str(source_tree / "docs"), "-d", "d0", "--pool", "offsite", "--keep-loaded")
    # With a changer pytp puts the default-pool tape back and takes a blank one.
    assert "Job 2 ok" in r.stdout
    tapes = {t["label"]: t for t in json.loads(run("tapes", "--format", "json").stdout) if t["label"]}
    assert sorted(t["pool"] for t in tapes.values()) == ["default", "offsite"]
    # Restoring from job 1 swaps its tape into the drive through the changer, and
    # afterwards puts the library back as it found it (issue 9): the offsite tape is loaded again.
    run("restore", str(source_tree.parent / "out"), "--job", "1", "-d", "d0")
    assert (source_tree.parent / "out" / str(source_tree).lstrip("/") / "docs" / "report.txt").exists()
    drive0 = json.loads(run("list", "--format", "json").stdout)[0]
    assert drive0["barcode"] == [t for t in tapes.values() if t["pool"] == "offsite"][0]["barcode"]


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


def test_partial_job_exits_with_warning(tmp_path: Path, sqlite_url: str, source_tree: Path) -> None:
    from tests.conftest import unlistable_xattrs_file

    config = write_library_config(tmp_path / "site", sqlite_url)
    # A file whose xattrs cannot be listed makes the job partial (a socket is only a note now).
    with unlistable_xattrs_file() as crowded:
        r = invoke(config, "backup", str(source_tree), str(crowded.parent), expect=exitcodes.EXIT_WARNING)
    assert "Job 1 partial" in r.stdout
    assert "Warning:" in r.stderr and "crowded.txt" in r.stderr
    assert json.loads(invoke(config, "jobs", "--format", "json").stdout)[0]["problems"] == 1


def test_standalone_drive_with_a_tape_of_another_pool(tmp_path: Path, sqlite_url: str, source_tree: Path) -> None:
    drive = create_virtual_drive(tmp_path / "drive")
    load_tape(drive, create_virtual_tape(tmp_path / "tape", "LONE01L9", 64 << 20))
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "catalog": {"url": sqlite_url},
                "pools": [{"name": "default"}, {"name": "offsite"}],
                "tape_drives": [{"name": "solo", "device_path": str(drive), "block_size": 65536, "type": "virtual"}],
            }
        )
    )
    invoke(config, "rewind")
    assert "Job 1 ok" in invoke(config, "backup", str(source_tree / "docs")).stdout
    r = invoke(config, "backup", str(source_tree / "docs"), "--pool", "offsite", expect=exitcodes.EXIT_WRONG_TAPE)
    assert "belongs to pool 'default'" in r.stderr and "--pool default" in r.stderr
    r = invoke(config, "backup", str(source_tree / "docs"), "--pool", "nosuch", expect=exitcodes.EXIT_CONFIG)
    assert "Unknown pool 'nosuch'" in r.stderr
    r = invoke(config, "load", "1", expect=exitcodes.EXIT_CONFIG)
    assert "not in a library" in r.stderr
